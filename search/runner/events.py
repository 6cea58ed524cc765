"""What a run tells whoever drives it, the same in this process and through a worker's pipe.

During a run: `EpochEnd` after every epoch and `StageEnd` after every stage that reports its end
(search.recipe.schedule.StagePlan.report_end); the driver answers each with True to stop the run
there (a pruner's word). A run ends in one of `Finished`, `Stopped` (the driver stopped it) or
`Diverged` (a non-finite loss); any other error is raised to the driver (`RunFailed` from a
worker)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class EpochEnd:
    epoch: int  # global epoch index, across stages
    logs: dict[str, float]
    stage: int = 0  # the stage this epoch belongs to
    depth: int = 0  # base layers open in it


@dataclass(frozen=True)
class StageEnd:
    stage: int
    best: float  # best validation accuracy so far


@dataclass(frozen=True)
class Finished:
    value: float  # best validation accuracy
    history: dict[str, list]  # one list per column of search.recipe.train's history
    stages: list[dict]  # StageRecord fields per stage
    cache: str | None = None  # the cache's hits and misses during the run
    kept: bool = False  # its model was saved (the run's `keep`)


@dataclass(frozen=True)
class Keep:
    """Where a finished run's model is saved (a .keras file, classes.json beside it), and only
    when its value is at least `above`: a trial keeps its model only if it may still be among
    the top trials the final step re-uses, which it can tell at its start."""

    path: str
    above: float = float("-inf")


@dataclass(frozen=True)
class Stopped:
    at: str  # "at epoch 4", "after stage 1"
    epochs: int = 0


@dataclass(frozen=True)
class Diverged:
    message: str


@dataclass(frozen=True)
class Failed:
    """An error inside a worker, sent to the parent (which raises RunFailed)."""

    message: str
    traceback: str = field(default="", repr=False)


class RunFailed(RuntimeError):
    """A worker process failed a run (its error) or died."""


Event = EpochEnd | StageEnd
Outcome = Finished | Stopped | Diverged
Listener = Callable[[Event], bool]  # True: stop the run here

"""What a search tells the tools that watch it, in the search process: `SearchCallback`'s hooks
and the `SearchInfo` they start with.

The hooks are called from the events a run already sends (search.runner.events), so training
knows nothing of any tracker. With --jobs N they are called from N threads: a callback that
keeps state guards it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from search.runner.events import EpochEnd


@dataclass(frozen=True)
class SearchInfo:
    """What a tracker records about the search as a whole (no secret in any field)."""

    study_name: str
    storage: str  # masked
    study_dir: str
    sampler: str
    pruner: str
    space_file: str
    base_config: dict
    command: list[str]
    tags: dict = field(default_factory=dict)  # package versions, git commit


class SearchCallback:
    """Override any hook. `trial_finished` has Optuna's callback signature, so an Optuna
    callback (a function of study and frozen trial) can be passed to run_search as it is."""

    def search_started(self, info: SearchInfo) -> None: ...

    def trial_started(self, number: int, params: dict) -> None: ...

    def epoch_ended(self, number: int, event: EpochEnd) -> None: ...

    def trial_finished(self, study, trial) -> None: ...

    def search_finalized(self, test: dict, files: dict[str, Path]) -> None:
        """test: test_metrics.json's content; files: the final outputs by name."""

    def close(self) -> None: ...


def finite_logs(event: EpochEnd) -> dict[str, float]:
    return {k: float(v) for k, v in event.logs.items() if math.isfinite(float(v))}

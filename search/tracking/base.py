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


def epoch_metrics(event: EpochEnd) -> dict[str, float]:
    """What a tracker logs of an epoch: its finite Keras logs, its stage and the layers open."""
    return {**{k: float(v) for k, v in event.logs.items() if math.isfinite(float(v))},
            "stage": float(event.stage), "layers_open": float(event.depth)}


def test_figures(test: dict) -> tuple[list[float], dict[str, float], dict[str, float]]:
    """What a tracker logs of a finalize (test_metrics.json's content): the test accuracy per
    retrain seed; the summary numbers present (mean, std, the best trial's val accuracy, the
    seed recipe's test mean); and the test accuracy per class (mean over seeds; NaN dropped)."""
    summary = {k: float(test[k]) for k in ("test_accuracy_mean", "test_accuracy_std",
                                           "best_trial_value")
               if isinstance(test.get(k), (int, float))}
    recipe = (test.get("seed_recipe") or {}).get("test_accuracy_mean")
    if isinstance(recipe, (int, float)):
        summary["seed_recipe.test_accuracy_mean"] = float(recipe)
    per_class = {name: float(v) for name, v in (test.get("per_class_accuracy_mean") or {}).items()
                 if v == v}
    return [float(a) for a in test.get("test_accuracy") or []], summary, per_class

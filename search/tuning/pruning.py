"""Stage pruners that judge trials at stage ends while every epoch is reported.

Every trial reports its val accuracy at every epoch (step = global epoch), whatever the pruner,
so the dashboard draws a running trial's curve. A staged recipe's stage ends fall at different
epochs in different trials, so the stage pruners do not compare intermediate values at equal
steps (what Optuna's pruners do); at each stage end the objective records the best val accuracy
so far in the trial's `stage_ends` attribute, and these pruners compare trials at the same stage
end, with Optuna's own rules:
  halving   SuccessiveHalvingPruner(min_resource=1, reduction_factor=2) on stage indices: at
            stage ends 1, 2, 4 ..., a trial goes on only if in the top half of every trial that
            reached that stage end (pruned ones included; the first ones always go on)
            (with `lag`, only trials started `lag` or more trials earlier count: --jobs N)
  median    MedianPruner(n_startup_trials=4, n_warmup_steps=1): from stage end 1, once 4 trials
            completed, a trial behind the median of the completed ones at that stage end stops
Studies from before 2026-11-30 reported stage ends as intermediate values (step = stage); their
trials, which have no `stage_ends` attribute, are read that way.
"""

from __future__ import annotations

import math

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

STAGE_ENDS = "stage_ends"  # user attr: {"<stage>": best val accuracy so far at its end}


def stage_ends(t: FrozenTrial) -> dict[int, float]:
    """A trial's best val accuracy at each stage end it reported."""
    ends = t.user_attrs.get(STAGE_ENDS)
    if ends is None:  # a trial of a study from before: stage ends were its intermediate values
        return dict(t.intermediate_values)
    return {int(k): float(v) for k, v in ends.items()}


def promotable(value: float, competing: list[float], reduction_factor: int) -> bool:
    """Optuna's SuccessiveHalving rule (maximize): within the top 1/reduction_factor of the
    competing values (the trial's own among them); the first few always go on."""
    k = max(len(competing) // reduction_factor - 1, 0)
    return value >= sorted(competing)[-(k + 1)]


class StageEndPruner(optuna.pruners.BasePruner):
    def __init__(self, rule: str = "halving", reduction_factor: int = 2, n_startup_trials: int = 4,
                 first_stage: int = 1, lag: int = 0):
        """lag > 0: trial k is judged only against trials 0 .. k-lag, which have ended before it
        started when trials run in order (search.tuning.in_order): a verdict that does not
        depend on which trials beside it got how far."""
        if rule not in ("halving", "median"):
            raise ValueError(f"rule must be 'halving' or 'median', not {rule!r}")
        self.rule, self.reduction_factor = rule, reduction_factor
        self.n_startup_trials, self.first_stage, self.lag = n_startup_trials, first_stage, lag

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        ends = stage_ends(trial)
        if not ends:
            return False
        stage = max(ends)
        others = study.get_trials(deepcopy=False)
        if self.lag:
            others = [t for t in others if t.number <= trial.number - self.lag]
        if self.rule == "median":  # PercentilePruner.prune's order of checks
            done = [t for t in others if t.state == TrialState.COMPLETE]
            if len(done) == 0 or len(done) < self.n_startup_trials or stage < self.first_stage:
                return False
            best = np.nanmax(np.array(list(ends.values()), float))
            if math.isnan(best):
                return True
            at = [v for v in (stage_ends(t).get(stage) for t in done) if v is not None]
            if not at:
                return False
            return bool(best < np.nanpercentile(np.array(at, float), 50))
        if not self._is_rung(stage):  # SuccessiveHalvingPruner.prune's order of checks
            return False
        value = ends[stage]
        if math.isnan(value):
            return True
        competing = [stage_ends(t).get(stage) for t in others if t.number != trial.number]
        competing = [v for v in competing if v is not None and not math.isnan(v)] + [value]
        return not promotable(value, competing, self.reduction_factor)

    def _is_rung(self, stage: int) -> bool:
        """Stage ends first_stage × reduction_factor^k: SuccessiveHalving's rungs."""
        r = self.first_stage
        while r < stage:
            r *= self.reduction_factor
        return r == stage

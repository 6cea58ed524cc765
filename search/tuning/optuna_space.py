"""The Optuna adapter of a Space: suggest values, and the distributions they are drawn from."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from search.tuning.space import Param, Space


def distribution(p: Param) -> BaseDistribution:
    if p.type == "categorical":
        return CategoricalDistribution(list(p.choices))
    if p.type == "int":
        return IntDistribution(p.low, p.high, log=p.log, step=p.step or 1)
    return FloatDistribution(p.low, p.high, log=p.log, step=p.step)


def suggest_one(trial: optuna.Trial, name: str, p: Param) -> Any:
    if p.type == "categorical":
        return trial.suggest_categorical(name, list(p.choices))
    if p.type == "int":
        return trial.suggest_int(name, p.low, p.high, step=p.step or 1, log=p.log)
    return trial.suggest_float(name, p.low, p.high, step=p.step, log=p.log)


def suggest(trial: optuna.Trial, space: Space) -> dict[str, Any]:
    """Define-by-run: the per-stage LRs exist only for the stages this trial runs."""
    values = {p.name: suggest_one(trial, p.name, p) for p in space.params if not p.per_stage}
    sp = space.stage_param
    if sp is not None:
        for name in space.stage_names(space.stage_count(values)):
            values[name] = suggest_one(trial, name, sp)
    return values


def all_distributions(space: Space) -> dict[str, BaseDistribution]:
    """Every name a trial of this space may carry, the conditional stage LRs at maximum depth."""
    out = {p.name: distribution(p) for p in space.params if not p.per_stage}
    sp = space.stage_param
    if sp is not None:
        out.update({n: distribution(sp) for n in space.stage_names(space.max_stages())})
    return out

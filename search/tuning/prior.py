"""`--sampler prior`: the user's seed recipe as a prior all along, not only as trial 0.

After PriorBand (Mallik et al., NeurIPS 2023), each new trial draws its params from one of three
sources: around the prior (the seed recipe), around the incumbent (the best completed trial so
far), or from TPE (the model of every trial, itself random at first). "Around" is a Gaussian of
width `width` in each param's own unit interval (log scale where the space says log), a
categorical keeping the centre's choice with probability 1 - width. The mix follows results:
during the first `warmup` completed trials two thirds of the draws come from the prior and a
third from TPE; after that TPE keeps its third, and the other two thirds are split between prior and
incumbent in the ratio of how likely the top quarter of the completed trials is under each
(each keeps at least `floor`). A good prior is used more, a bad one fades as the incumbent
moves away from it. Which source drew a trial is kept in this process only (`sources`).
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

SOURCES = ("prior", "incumbent", "model")


def to_unit(dist: BaseDistribution, value) -> float | None:
    """A numeric value as its place in [0, 1] of the distribution's range (log where it is)."""
    if isinstance(dist, CategoricalDistribution):
        return None
    lo, hi, v = float(dist.low), float(dist.high), float(value)
    if dist.log:
        lo, hi, v = math.log(lo), math.log(hi), math.log(max(v, 1e-300))
    return 0.5 if hi == lo else min(max((v - lo) / (hi - lo), 0.0), 1.0)


def from_unit(dist: BaseDistribution, u: float):
    lo, hi = float(dist.low), float(dist.high)
    v = (math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))) if dist.log
         else lo + u * (hi - lo))
    step = getattr(dist, "step", None)
    if step:
        v = lo + round((v - lo) / step) * step
    v = min(max(v, lo), hi)
    return int(round(v)) if isinstance(dist, IntDistribution) else float(v)


class PriorSampler(optuna.samplers.BaseSampler):
    def __init__(self, prior: dict[str, Any], model: optuna.samplers.BaseSampler,
                 seed: int | None = None, width: float = 0.15, warmup: int = 5,
                 floor: float = 0.1):
        self.prior, self.model = dict(prior), model
        self.rng = np.random.default_rng(seed)
        self.width, self.warmup, self.floor = width, warmup, floor
        self.sources: dict[int, str] = {}  # trial number -> the source that drew it
        self.centres: dict[int, dict] = {}  # trial number -> what it is drawn around (not TPE)
        self.lock = threading.Lock()  # --jobs: trials start in several threads

    # -- the mix ---------------------------------------------------------------------------
    def _log_density(self, params: dict, centre: dict, dists: dict) -> float:
        total = 0.0
        for name, value in params.items():
            dist = dists.get(name)
            if dist is None or name not in centre:
                continue
            if isinstance(dist, CategoricalDistribution):
                n = len(dist.choices)
                p = (1 - self.width + self.width / n) if value == centre[name] else self.width / n
                total += math.log(p)
            else:
                d = to_unit(dist, value) - to_unit(dist, centre[name])
                total += -0.5 * (d / self.width) ** 2
        return total

    def weights(self, study: optuna.Study) -> dict[str, float]:
        return self._weights(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))

    def _weights(self, done: list[FrozenTrial]) -> dict[str, float]:
        if len(done) < self.warmup:
            return {"prior": 2 / 3, "incumbent": 0.0, "model": 1 / 3}
        done = sorted(done, key=lambda t: -t.value)
        incumbent, top = done[0], done[:max(2, math.ceil(len(done) / 4))]
        like = {}
        for source, centre in (("prior", self.prior), ("incumbent", incumbent.params)):
            logs = [self._log_density(t.params, centre, t.distributions) for t in top]
            m = max(logs)
            like[source] = m + math.log(sum(math.exp(v - m) for v in logs))
        m = max(like.values())
        share = {k: math.exp(v - m) for k, v in like.items()}
        total = sum(share.values())
        split = {k: max(v / total, self.floor) for k, v in share.items()}
        norm = sum(split.values())
        return {"prior": 2 / 3 * split["prior"] / norm,
                "incumbent": 2 / 3 * split["incumbent"] / norm, "model": 1 / 3}

    # -- Optuna's sampler interface ------------------------------------------------------
    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Picks the trial's source, and its centre once (every param is drawn around it)."""
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        w = self._weights(done)
        with self.lock:
            source = str(self.rng.choice(SOURCES, p=[w[s] for s in SOURCES]))
            self.sources[trial.number] = source
            if source == "incumbent" and done:
                self.centres[trial.number] = max(done, key=lambda t: t.value).params
            elif source != "model":
                self.centres[trial.number] = self.prior
        self.model.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        if self.sources.get(trial.number, "model") != "model":
            return {}
        return self.model.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        if not search_space:  # a prior or incumbent trial: TPE's grouped model was not inferred
            return {}
        return self.model.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, name, dist):
        centre = self.centres.get(trial.number)
        if centre is None or name not in centre:
            return self.model.sample_independent(study, trial, name, dist)
        with self.lock:
            if isinstance(dist, CategoricalDistribution):
                if centre[name] in dist.choices and self.rng.random() >= self.width:
                    return centre[name]
                return dist.choices[int(self.rng.integers(len(dist.choices)))]
            u0 = to_unit(dist, centre[name])
            for _ in range(100):  # a Gaussian truncated to the range
                u = u0 + self.width * self.rng.standard_normal()
                if 0.0 <= u <= 1.0:
                    break
            else:
                u = u0
        return from_unit(dist, u)

    def after_trial(self, study, trial, state, values) -> None:
        self.centres.pop(trial.number, None)
        self.model.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.rng = np.random.default_rng()
        self.model.reseed_rng()

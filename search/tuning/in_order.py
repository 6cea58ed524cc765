"""`--jobs N` with the study reproducible: trials side by side, each sampled from a fixed view.

Optuna's `n_jobs` samples a trial from whatever has finished when it starts, so with two workers
the same seed gives another study on every run. Here trial k is sampled from a view that does not
depend on timing:
  trials 0 .. k-lag            as they ended (values, states, params)
  trials k-lag+1 .. k-1        with their params only, as pruned before their first step: TPE
                               ranks such a trial below every other, as its constant liar does
                               a running one, so trials side by side are drawn apart
Before it samples, trial k waits until the first group has ended and the second has its params.
Its sampler is built afresh with seed + k, so the draws do not depend on which thread asked first.
With the stage pruners (search.tuning.pruning, `lag`) trial k is judged only against trials
0 .. k-lag, which have ended before it started. Given a trial's value depends on its config alone
(tests/test_workers.py), the same seed and N then give the same study.

The price is waiting: a free worker idles while trial k-lag still runs. With lag = 2N and the
trial times of a 50-trial search, a simulation puts it at about 6% of the wall for N = 2
(docs/benchmarks.md). `--any-order` turns this off (Optuna's n_jobs with the constant liar).
Trials numbered below `start` (a resumed study's earlier runs), and another process's trials on
the same SQLite file, are taken as they are, never waited for; that case is not reproducible. A
storage with a heartbeat does not run in order (search.jobs): a trial waiting to be drawn has no
heartbeat yet, so a long wait would get it failed as stale.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

PARAMS_SET = "config"  # user attr a trial has once all its params are drawn (search.tuning.objective)
WAITED = "waited_s"  # user attr: the seconds a trial waited for its view before it was drawn


def default_lag(jobs: int) -> int:
    """How far back trial k's view ends: 2N keeps N workers busy most of the time."""
    return 2 * jobs


def lag_for(jobs: int, shared: bool, heartbeat: int | None, any_order: bool) -> int:
    """The lag a search runs with, 0 for Optuna's free-running n_jobs: in order only with N > 1
    in one process (not a shared storage) and no heartbeat (a trial waiting for its view has no
    heartbeat yet, so a long wait would get it failed as stale)."""
    return default_lag(jobs) if jobs > 1 and not (shared or heartbeat or any_order) else 0


def ready(t: FrozenTrial) -> bool:
    """Whether a trial's params are all drawn: it ended, or its objective recorded its config."""
    return t.state.is_finished() or PARAMS_SET in t.user_attrs


def view(trials: list[FrozenTrial], number: int, lag: int, start: int = 0,
         foreign: frozenset[int] = frozenset()) -> list[FrozenTrial] | None:
    """Trial `number`'s view of the earlier trials, or None while it is not fixed yet. Trials
    below `start` (a resumed study's earlier runs) and `foreign` ones (another process's, on the
    same SQLite file) count only if they ended, and are never waited for: one left running by a
    killed process may never end, and its params may be partial."""
    seen: list[FrozenTrial] = []
    for t in sorted(trials, key=lambda t: t.number):
        if t.number >= number:
            break
        if t.number < start or t.number in foreign:
            if t.state.is_finished():
                seen.append(t)
        elif t.number <= number - lag:
            if not t.state.is_finished():
                return None
            seen.append(t)
        elif not ready(t):
            return None
        else:  # in the window: params only, whatever it has done since; TPE's liar (a running
            # trial in a study of its own cannot be: TPE writes the liar's params to the trial)
            seen.append(optuna.trial.create_trial(
                state=TrialState.PRUNED, params=t.params, distributions=t.distributions))
    return seen


class InOrderSampler(optuna.samplers.BaseSampler):
    def __init__(self, make: Callable[[int], optuna.samplers.BaseSampler], seed: int, lag: int,
                 start: int = 0, poll: float = 0.1, grace: float = 5.0):
        """make(seed): a fresh sampler (TPE, prior ...) for one trial; `start`: see view."""
        if lag < 1:
            raise ValueError(f"lag must be at least 1, not {lag}")
        self.make, self.seed, self.lag, self.start, self.poll = make, seed, lag, start, poll
        self.grace = grace
        self._trials: dict[int, tuple[optuna.Study, optuna.samplers.BaseSampler]] = {}
        self._mine: set[int] = set()  # the trials of this process (each passes before_trial)
        self._lock = threading.Lock()

    def _view(self, study: optuna.Study, number: int) -> list[FrozenTrial]:
        """Waits for the view. A running trial that is not this process's after `grace` seconds
        (a trial is this process's from its before_trial, a moment after it is created) is
        another process's: not waited for."""
        unknown: dict[int, float] = {}
        while True:
            trials = study.get_trials(deepcopy=False)
            now = time.monotonic()
            with self._lock:
                for t in trials:
                    if (self.start <= t.number < number and t.number not in self._mine
                            and not t.state.is_finished()):
                        unknown.setdefault(t.number, now)
            foreign = frozenset(n for n, t0 in unknown.items() if now - t0 >= self.grace)
            seen = view(trials, number, self.lag, self.start, foreign)
            if seen is not None:
                return seen
            time.sleep(self.poll)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        with self._lock:
            self._mine.add(trial.number)
        shadow = optuna.create_study(storage=optuna.storages.InMemoryStorage(),
                                     directions=study.directions)
        shadow.add_trials(self._view(study, trial.number))
        inner = self.make(self.seed + trial.number)
        with self._lock:
            self._trials[trial.number] = (shadow, inner)
        inner.before_trial(shadow, trial)

    def _of(self, trial: FrozenTrial):
        with self._lock:
            return self._trials[trial.number]

    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        shadow, inner = self._of(trial)
        return inner.infer_relative_search_space(shadow, trial)

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        shadow, inner = self._of(trial)
        return inner.sample_relative(shadow, trial, search_space)

    def sample_independent(self, study, trial, name: str, dist: BaseDistribution) -> Any:
        shadow, inner = self._of(trial)
        return inner.sample_independent(shadow, trial, name, dist)

    def after_trial(self, study, trial, state, values) -> None:
        with self._lock:
            shadow, inner = self._trials.pop(trial.number, (None, None))
        if inner is not None:
            inner.after_trial(shadow, trial, state, values)

    def reseed_rng(self) -> None:  # Optuna calls it in forked processes; draws use seed + k
        pass

"""The pick's re-runs made while the last trials run (search.tuning.pick_ahead): only candidates
that are certain, only on workers no trial waits for, and the same pick as without them."""

import threading
import time

import optuna
import pytest

from search.recipe.config import TrainConfig
from search.runner.events import Finished
from search.runner.pool import RunnerPool
from search.tuning.final_runs import Kept
from search.tuning.pick import candidates, certain, choose, rerun
from search.tuning.pick_ahead import PickAhead

VALUES = [0.50, 0.70, 0.60, 0.65, 0.90]  # trial k's value on its own seed; trial 0: the seed recipe


def config_of(k: int) -> TrainConfig:
    return TrainConfig(head_lr=1e-3 * (k + 1))


def number_of(config: TrainConfig) -> int:
    return round(config.head_lr / 1e-3) - 1


class Stub:
    """A worker: a config's value depends on the config and its seed alone."""

    def __init__(self, seconds):
        self.seconds = seconds  # trial number, or (number, seed) -> how long its runs take
        self.runs: list[tuple[int, int]] = []
        self.times: dict[tuple[int, int], tuple[float, float]] = {}  # start, end

    def run(self, config, listen=lambda e: False, epoch_budget=None, keep=None):
        k = number_of(config)
        self.runs.append((k, config.seed))
        t0 = time.monotonic()
        time.sleep(self.seconds.get((k, config.seed), self.seconds.get(k, 0.02)))
        self.times[k, config.seed] = (t0, time.monotonic())
        return Finished(VALUES[k] + 0.01 * config.seed, {}, [])


class Watched(RunnerPool):
    """Records each blocking take that found no free worker: a trial made to wait."""

    waited = 0

    def take(self, block=True):
        if block and self._free.qsize() == 0:
            self.waited += 1
        return super().take(block)


def search(pool, ahead, before=lambda k: None, rest=None):
    """5 trials of VALUES, 2 or 3 at a time, through `ahead.runner`; `before(k)` runs in trial k's
    objective before its run (as a trial's wait for its in-order view). Then the re-runs of the
    `rest` best candidates (run_rest), else none (finish)."""
    study = optuna.create_study(direction="maximize")
    for k in range(len(VALUES)):
        study.enqueue_trial({"k": k}, user_attrs={"seed_recipe": True} if k == 0 else {})

    def objective(trial):
        k = trial.suggest_int("k", 0, len(VALUES) - 1)
        trial.set_user_attr("config", config_of(k).to_dict())
        before(k)
        return ahead.runner.run(config_of(k)).value

    ahead.start()
    try:
        study.optimize(objective, n_trials=len(VALUES), n_jobs=len(pool),
                       callbacks=[ahead.trial_ended])
        if rest:
            return study, ahead.run_rest(candidates(study, rest))
    finally:
        early = ahead.finish()
    return study, early


def test_certain_candidates_are_those_no_trial_still_to_end_can_push_out():
    study = optuna.create_study(direction="maximize")
    for k, v in enumerate(VALUES[:4]):
        t = study.ask()
        t.set_user_attr("seed_recipe", k == 0)
        study.tell(t, v)
    assert [t.number for t in certain(study, 3, 0)] == [1, 3, 2, 0]
    assert [t.number for t in certain(study, 3, 1)] == [1, 3, 0]
    assert [t.number for t in certain(study, 3, 2)] == [1, 0]
    assert [t.number for t in certain(study, 3, 5)] == [0]  # the seed recipe always


def test_the_idle_worker_runs_the_certain_re_runs_and_the_pick_is_the_same(tmp_path):
    slow_last = {4: 2.0}  # the last trial runs long: the other worker is idle meanwhile
    stubs = [Stub(slow_last), Stub(slow_last)]
    pool = Watched(stubs)
    made = []

    def make_kept():
        made.append(1)
        return Kept(tmp_path / "pick", seeds=0)  # values only: nothing kept

    ahead = PickAhead(pool, len(VALUES), top=2, seeds=2, make_kept=make_kept, log=lambda *_: None)
    study, early = search(pool, ahead, rest=2)
    # While trial 4 ran, the certain candidates were the best of trials 0-3 (trial 1) and the seed
    # recipe (trial 0); nothing else may run ahead, and the 2 s trial leaves time for all four.
    assert early.early == {(1, 1), (1, 2), (0, 1), (0, 2)}
    assert set(early.done) == early.early | {(4, 1), (4, 2)}  # then the rest
    assert early.done[1, 2] == pytest.approx(0.72) and early.done[0, 1] == pytest.approx(0.51)
    assert made == [1] and early.kept is not None
    assert pool.waited == 0
    # The pick takes them all and runs nothing; its values are those of a pick run afresh.
    trials = candidates(study, 2)
    before = sum(len(s.runs) for s in stubs)
    values = rerun(trials, pool, 2, log=lambda *_: None, done=early.done)
    assert sum(len(s.runs) for s in stubs) == before == len(VALUES) + 6
    fresh = rerun(trials, RunnerPool([Stub({}), Stub({})]), 2, log=lambda *_: None)
    assert values == fresh and choose(values, 0) == choose(fresh, 0)


def test_the_rest_starts_at_once_beside_a_re_run_still_going(tmp_path):
    """Trial 4 ends while the seed recipe's first re-run (1 s) still goes on the other worker:
    the rest of the pick starts on the freed worker then, not after that re-run."""
    seconds = {4: 0.6, (0, 1): 1.0, (0, 2): 1.0}
    stubs = [Stub(seconds), Stub(seconds)]
    pool = RunnerPool(stubs)
    ahead = PickAhead(pool, len(VALUES), top=2, seeds=2,
                      make_kept=lambda: Kept(tmp_path / "pick", seeds=0), log=lambda *_: None)
    study, early = search(pool, ahead, rest=2)
    times = {k: v for s in stubs for k, v in s.times.items()}
    assert (0, 1) in early.early and (4, 1) not in early.early
    assert set(early.done) == {(n, i) for n in (4, 1, 0) for i in (1, 2)}
    trial_4_end = times[4, 0][1]
    assert times[0, 1][0] < trial_4_end < times[0, 1][1]  # it was going when the trials ended
    first_of_rest = min(times[k][0] for k in ((4, 1), (4, 2), (0, 2)))
    assert first_of_rest < times[0, 1][1] - 0.2


def test_a_re_run_never_takes_a_worker_that_a_trial_is_about_to_ask_for(tmp_path):
    """3 workers, the last two trials late to ask for theirs (as while waiting for their view):
    once fewer trials are left than workers, re-runs are certain, but none may start until both
    trials hold a worker, so no trial finds every worker taken."""
    stubs = [Stub({1: 0.5, 3: 0.6, 4: 0.6, 0: 0.3}) for _ in range(3)]
    pool = Watched(stubs)
    late = {3: 0.4, 4: 0.4}
    ahead = PickAhead(pool, len(VALUES), top=3, seeds=2,
                      make_kept=lambda: Kept(tmp_path / "pick", seeds=0), log=lambda *_: None)
    started = {}
    lock = threading.Lock()

    def before(k):
        time.sleep(late.get(k, 0.0))
        with lock:
            started[k] = time.monotonic()

    study, early = search(pool, ahead, before)
    assert pool.waited == 0
    assert early.done  # the seed recipe's re-runs (0.3 s) fit beside the last trials' 0.6 s
    assert {k for k, _ in early.done} <= {0, 1, 3}  # trial 2 was in the top 3, never certain


def test_finish_leaves_what_has_not_started_to_the_pick(tmp_path):
    pool = RunnerPool([Stub({}), Stub({})])
    ahead = PickAhead(pool, 10, top=3, seeds=2,
                      make_kept=lambda: Kept(tmp_path / "pick", seeds=0), log=lambda *_: None)
    ahead.start()
    early = ahead.finish()  # the trials ended early (a Ctrl-C, a stop): nothing was certain
    assert early.done == {} and early.kept is None
    assert len(pool._free.queue) == 2


def test_a_re_run_that_fails_ahead_is_left_to_the_pick(tmp_path):
    from search.runner.events import RunFailed

    class Dies(Stub):  # the worker of the seed recipe's first re-run dies under it
        def run(self, config, *args, **kwargs):
            if number_of(config) == 0 and config.seed == 1:
                raise RunFailed("the worker died")
            return super().run(config, *args, **kwargs)

    pool = RunnerPool([Dies({4: 2.0}), Dies({4: 2.0})])
    logged = []
    ahead = PickAhead(pool, len(VALUES), top=2, seeds=2,
                      make_kept=lambda: Kept(tmp_path / "pick", seeds=0), log=logged.append)
    study, early = search(pool, ahead)
    assert (0, 1) not in early.done and (1, 1) in early.done
    assert any("not run ahead (the worker died)" in line for line in logged)
    assert len(pool._free.queue) == 2  # the worker was given back

"""--jobs N in order (search.tuning.in_order): trial k drawn from a view fixed by k alone, so the
same seed gives the same study however the trials' times fall."""

import random
import threading
import time
from datetime import datetime

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from search.tuning.in_order import PARAMS_SET, InOrderSampler, default_lag, lag_for, view
from search.tuning.pruning import STAGE_ENDS, StageEndPruner

X = FloatDistribution(1e-5, 1e-2, log=True)
D = CategoricalDistribution([0, 5, 10])


def tpe(seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=4, multivariate=True,
                                      group=True, constant_liar=False)


def search(timing_seed: int, jobs: int = 3, trials: int = 18, lag: int | None = None):
    """A study of a fake recipe whose trials take random times (from `timing_seed`) and report
    stage ends to the stage pruner, `jobs` at a time."""
    lag = default_lag(jobs) if lag is None else lag
    clock, lock = random.Random(timing_seed), threading.Lock()
    study = optuna.create_study(direction="maximize", sampler=InOrderSampler(tpe, 7, lag),
                                pruner=StageEndPruner("halving", first_stage=1, lag=lag))
    study.enqueue_trial({"x": 1e-4, "d": 5})  # the seed recipe

    def objective(trial: optuna.Trial) -> float:
        began = datetime.now()  # after its wait (a trial's datetime_start is before it)
        x, d = trial.suggest_float("x", 1e-5, 1e-2, log=True), trial.suggest_categorical("d", D.choices)
        trial.set_user_attr("began", began.isoformat())
        trial.set_user_attr(PARAMS_SET, {"x": x, "d": d})
        ends = {}
        for stage in (1, 2, 3):
            with lock:
                pause = clock.uniform(0.03, 0.1)
            time.sleep(pause)
            ends[str(stage)] = 1 - abs(x - 3e-4) * 100 - 0.01 * abs(d - 5 * stage) / stage
            trial.set_user_attr(STAGE_ENDS, dict(ends))
            if trial.should_prune():
                raise optuna.TrialPruned()
        return ends["3"]

    study.optimize(objective, n_trials=trials, n_jobs=jobs)
    return study


def outcome(study):
    return [(t.number, t.state, t.params, t.value) for t in study.trials]


def test_the_same_seed_gives_the_same_study_whatever_the_trials_times():
    a, b = search(timing_seed=1), search(timing_seed=2)
    assert outcome(a) == outcome(b)
    assert {t.state for t in a.trials} == {TrialState.COMPLETE, TrialState.PRUNED}  # both ran
    assert len({(t.params["x"], t.params["d"]) for t in a.trials}) == len(a.trials)
    lag = default_lag(3)
    began = {t.number: datetime.fromisoformat(t.user_attrs["began"]) for t in a.trials}
    for t in a.trials:  # trial k was drawn only once trials 0 .. k-lag had ended
        before = [u for u in a.trials if u.number <= t.number - lag]
        assert all(u.datetime_complete <= began[t.number] for u in before), t.number
    overlaps = sum(began[u.number] < t.datetime_complete and began[t.number] < u.datetime_complete
                   for t in a.trials for u in a.trials if u.number < t.number)
    assert overlaps >= len(a.trials) // 3  # trials ran side by side, not one after another


def test_a_trial_waits_until_the_trials_lag_before_it_ended_and_sees_the_rest_running():
    done = create_trial(state=TrialState.COMPLETE, value=0.5, params={"x": 1e-3},
                        distributions={"x": X})
    going = create_trial(state=TrialState.RUNNING, params={"x": 2e-3}, distributions={"x": X},
                         user_attrs={PARAMS_SET: {}})
    drawing = create_trial(state=TrialState.RUNNING, params={}, distributions={})
    ended = create_trial(state=TrialState.PRUNED, params={"x": 3e-3}, distributions={"x": X},
                         intermediate_values={1: 0.2})

    def numbered(*ts):
        out = []
        for i, t in enumerate(ts):
            t = create_trial(state=t.state, value=t.value, params=t.params,
                             distributions=t.distributions, user_attrs=t.user_attrs,
                             intermediate_values=t.intermediate_values)
            t.number = i
            out.append(t)
        return out

    assert view(numbered(done, going, going), 3, lag=2) is None  # trial 1 has not ended
    assert view(numbered(done, ended, drawing), 3, lag=2) is None  # trial 2 still draws
    seen = view(numbered(done, ended, going, ended), 3, lag=2)
    assert [t.state for t in seen] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.PRUNED]
    assert seen[1].intermediate_values == {1: 0.2}  # trial 1 as it ended
    assert seen[2].params == {"x": 2e-3} and not seen[2].intermediate_values  # 2: params only
    late = view(numbered(done, ended, ended), 3, lag=2)  # trial 2 ended early: params only here
    assert late[2].params == {"x": 3e-3} and not late[2].intermediate_values
    # a resumed study: an earlier run's stale trial (below start) is left out, not waited for
    resumed = view(numbered(drawing, done, going), 3, lag=2, start=2)
    assert [t.params for t in resumed] == [{"x": 1e-3}, {"x": 2e-3}]


def test_the_stage_pruner_with_a_lag_judges_a_trial_only_against_trials_started_lag_before():
    study = optuna.create_study(direction="maximize")
    for v in (0.1, 0.1, 0.9, 0.9):
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=v, params={},
                                     distributions={}, user_attrs={STAGE_ENDS: {"1": v}}))
    study.add_trial(create_trial(state=TrialState.RUNNING, params={}, distributions={},
                                 user_attrs={STAGE_ENDS: {"1": 0.5}}))
    trial = study.trials[4]
    assert StageEndPruner("halving", first_stage=1).prune(study, trial)  # behind trials 2, 3
    assert not StageEndPruner("halving", first_stage=1, lag=3).prune(study, trial)  # sees 0, 1
    assert StageEndPruner("halving", first_stage=1, lag=1).prune(study, trial)


def test_a_trials_line_shows_its_training_time_apart_from_its_wait():
    from datetime import timedelta

    from search.tuning.study import trial_line

    t = create_trial(state=TrialState.COMPLETE, value=0.5, params={"x": 1e-3},
                     distributions={"x": X}, user_attrs={"waited_s": 12.0})
    t.datetime_start = datetime(2026, 1, 1)
    t.datetime_complete = t.datetime_start + timedelta(seconds=20)
    line = trial_line(t)
    assert "   8.0s" in line and "[waited 12s for trials before it]" in line
    t.user_attrs = {}
    assert "  20.0s" in trial_line(t) and "waited" not in trial_line(t)


def test_only_samplers_that_draw_from_the_view_alone_run_in_order(tmp_path, capsys):
    from search.tuning.space import SPACES_DIR, load_space
    from search.tuning.study import create_or_resume

    space = load_space(str(SPACES_DIR / "tiny.yaml"))
    url = f"sqlite:///{tmp_path / 'o.db'}"
    for sampler, in_order in (("tpe", True), ("prior", True), ("random", True), ("qmc", False),
                              ("cmaes", False)):
        study, _ = create_or_resume(sampler, url, space, sampler, "stage", 0, lag=4)
        assert isinstance(study.sampler, InOrderSampler) == in_order, sampler
        assert study.pruner.lag == (4 if in_order else 0)  # without waiting, no lag
    assert "the cmaes sampler keeps its state in the study" in capsys.readouterr().out


def test_another_processs_running_trial_is_not_waited_for():
    """A trial this process did not draw (another process on the same SQLite file) is taken as it
    is once it has been unknown for the grace period: a killed process's trial never ends."""
    sampler = InOrderSampler(tpe, 0, lag=1, poll=0.01, grace=0.3)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.add_trial(create_trial(state=TrialState.RUNNING, params={"x": 1e-3},
                                 distributions={"x": X}))  # not through before_trial: foreign
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.4, params={"x": 2e-3},
                                 distributions={"x": X}))
    t0 = time.monotonic()
    trial = study.ask()  # trial 2: trials 0 .. 1 must have ended, but 0 is foreign
    assert 0.3 <= time.monotonic() - t0 < 5
    shadow, _ = sampler._of(study.trials[2])
    assert [t.params for t in shadow.trials] == [{"x": 2e-3}]  # the foreign running one left out
    study.tell(trial, 0.5)
    assert view(study.trials, 3, lag=1, foreign=frozenset({0})) is not None


def test_in_order_only_in_one_process_without_a_heartbeat_and_not_asked_otherwise():
    assert lag_for(2, shared=False, heartbeat=None, any_order=False) == 4
    assert lag_for(3, shared=False, heartbeat=0, any_order=False) == 6
    assert lag_for(1, shared=False, heartbeat=None, any_order=False) == 0  # one at a time
    assert lag_for(2, shared=True, heartbeat=None, any_order=False) == 0  # PostgreSQL, journal
    assert lag_for(2, shared=False, heartbeat=60, any_order=False) == 0  # SQLite --heartbeat
    assert lag_for(2, shared=False, heartbeat=None, any_order=True) == 0

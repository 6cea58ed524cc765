"""The final pick: the best mean over seeds, and a plain word when it is within the noise."""

import math

import optuna
import pytest

from search.tuning.pick import candidates, choose, rerun


def test_the_best_mean_wins_not_the_luckiest_single_run():
    values = {4: [0.700, 0.680, 0.681], 7: [0.695, 0.694, 0.696], 0: [0.690, 0.688, 0.689]}
    pick = choose(values, seed_trial=0)
    assert pick.trial == 7 and pick.mean == pytest.approx(0.695)
    assert pick.margin == pytest.approx(0.695 - 0.689)
    assert not pick.within_noise
    assert "+0.0060 over the seed recipe (trial 0)" in pick.line()


def test_a_margin_inside_the_seed_spread_is_said_to_be_one():
    pick = choose({3: [0.70, 0.66, 0.69], 0: [0.68, 0.67, 0.685]}, seed_trial=0)
    assert pick.trial == 3 and pick.within_noise
    assert pick.spread == pytest.approx(max(0.0208167, 0.0076376), rel=1e-4)
    assert "within the seed spread" in pick.line()


def test_the_seed_recipe_may_win_and_a_diverged_seed_counts_as_zero():
    pick = choose({0: [0.69, 0.69], 5: [0.71, math.nan]}, seed_trial=0)
    assert pick.trial == 0 and pick.margin is None and "the seed recipe itself" in pick.line()
    assert choose({1: [0.5], 2: [0.5]}, None).trial == 1  # ties: the lower number


def test_candidates_are_the_top_trials_and_the_seed_recipe():
    study = optuna.create_study(direction="maximize")
    for i, v in enumerate([0.60, 0.70, 0.65, 0.68, 0.50]):
        t = study.ask()
        if i == 0:
            t.set_user_attr("seed_recipe", True)
        study.tell(t, v)
    assert [t.number for t in candidates(study, 2)] == [1, 3, 0]
    assert [t.number for t in candidates(study, 9)] == [1, 3, 2, 0, 4]


def test_a_ctrl_c_in_the_re_runs_starts_no_queued_one():
    from search.recipe.config import TrainConfig

    study = optuna.create_study(direction="maximize")
    for v in (0.6, 0.7, 0.65):
        t = study.ask()
        t.set_user_attr("config", TrainConfig().to_dict())
        study.tell(t, v)

    class Interrupted:  # one worker; the first re-run gets the Ctrl-C
        calls = 0

        def run(self, config):
            self.calls += 1
            raise KeyboardInterrupt

    runner = Interrupted()
    with pytest.raises(KeyboardInterrupt):
        rerun(study.trials, runner, seeds=3, log=lambda *_: None)
    assert runner.calls == 1  # of the 9 queued (Executor.map cancels the rest)

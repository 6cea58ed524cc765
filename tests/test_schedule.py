"""The schedule's arithmetic, as pure functions: stages, depths, learning rates, budget cuts."""

import math

import pytest

from search.recipe.config import TrainConfig
from search.recipe.schedule import cosine, cosine_step, plan

SEED = TrainConfig(head_epochs=10, head_lr=1e-3, unfreeze_step=5, unfreeze_depth=20,
                   stage_lrs=(1e-4, 5e-5, 2e-5, 1e-5), finetune_epochs=5, early_stop_patience=3,
                   reduce_lr_factor=0.5, reduce_lr_patience=2, min_lr=1e-7)


def test_the_seed_recipe_opens_5_10_15_20_layers_at_its_own_rates():
    stages = plan(SEED)
    assert [s.depth for s in stages] == [0, 5, 10, 15, 20]
    assert [s.lr for s in stages] == [1e-3, 1e-4, 5e-5, 2e-5, 1e-5]
    assert [s.epochs for s in stages] == [10, 5, 5, 5, 5] == [s.cosine_epochs for s in stages]
    assert [s.report_end for s in stages] == [True, True, True, True, False]
    assert {(s.early_stop_patience, s.reduce_lr_factor, s.reduce_lr_patience, s.min_lr)
            for s in stages} == {(3, 0.5, 2, 1e-7)}
    assert sum(s.epochs for s in stages) == 30


def test_head_only_is_one_stage_that_reports_nothing():
    (only,) = plan(SEED.replace(unfreeze_depth=0, stage_lrs=()))
    assert (only.depth, only.epochs, only.report_end) == (0, 10, False)


@pytest.mark.parametrize("budget,epochs", [(1, [1]), (10, [10]), (12, [10, 2]), (23, [10, 5, 5, 3]),
                                           (30, [10, 5, 5, 5, 5]), (99, [10, 5, 5, 5, 5])])
def test_a_budget_cuts_the_last_stages_and_keeps_their_planned_cosine(budget, epochs):
    stages = plan(SEED, budget)
    assert [s.epochs for s in stages] == epochs and sum(s.epochs for s in stages) == min(budget, 30)
    assert [s.cosine_epochs for s in stages] == [10, 5, 5, 5, 5][:len(epochs)]
    assert [s.report_end for s in stages] == [True, True, True, True, False][:len(epochs)]


def test_a_budget_below_one_epoch_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        plan(SEED, 0)


def test_the_cosine_falls_from_1_and_its_steps_multiply_to_it():
    n = 5
    assert cosine(0, n) == 1.0 and all(cosine(e, n) > 0 for e in range(n))
    assert [cosine(e, n) > cosine(e + 1, n) for e in range(n - 1)] == [True] * (n - 1)
    for e in range(1, n):
        assert math.prod(cosine_step(k, n) for k in range(1, e + 1)) == pytest.approx(cosine(e, n))
    assert cosine(2, 4) == pytest.approx(0.5)

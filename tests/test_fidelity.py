"""The fidelity benchmark's table: rank correlations of early signals with final values."""

import math

import optuna
import pytest
from optuna.distributions import FloatDistribution

from search.bench.fidelity import signals, table


def study_of(trials):
    """Completed trials from (stage bests, stage seconds, per-epoch values)."""
    study = optuna.create_study(direction="maximize")
    for k, (best, secs, epochs) in enumerate(trials):
        study.add_trial(optuna.trial.create_trial(
            params={"x": float(k)}, distributions={"x": FloatDistribution(0, 100)},
            value=max(best), intermediate_values=dict(enumerate(epochs)),
            user_attrs={"stage_best_val": best, "stage_seconds": secs}))
    return study


def test_a_stage_end_that_orders_trials_as_their_end_does_correlates_fully():
    # four trials of 3 stages: stage 1 ranks them as the final does; epoch 1 ranks them reversed
    trials = [([0.1, 0.2 + d, 0.5 + d], [1, 2, 3], [0.4 - d, 0.3, 0.2]) for d in (0, .1, .2, .3)]
    df = signals(study_of(trials))
    t = table(df).set_index("signal")
    assert t.loc["end of stage 1", "spearman"] == pytest.approx(1.0)
    assert t.loc["val acc after 1 epochs", "spearman"] == pytest.approx(-1.0)
    assert t.loc["end of stage 1", "share of their time"] == pytest.approx(0.5)  # 1+2 of 1+2+3
    assert t.loc["end of stage 1", "trials going on"] == 4
    assert t.loc["end of stage 1", "spearman among them"] == pytest.approx(1.0)
    assert t.loc["end of stage 1", "same depth only"] == pytest.approx(1.0)


def test_a_trial_with_fewer_stages_counts_its_final_value_at_later_stage_ends():
    df = signals(study_of([([0.3], [4.0], [0.3]), ([0.1, 0.2, 0.6], [1, 1, 1], [0.1, 0.2, 0.6])]))
    assert list(df["stage 2"]) == [0.3, 0.6] and list(df["stage 1 s"]) == [4.0, 2.0]
    assert math.isnan(table(df).set_index("signal").loc["end of stage 1", "same depth only"])

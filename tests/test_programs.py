"""Stage programs reused across trials: the same values as a fresh model per stage, and no new
trace for a later trial of the same structure."""

import keras
import numpy as np
import pytest

from helpers import tiny_data
from search.cache import programs
from search.cache.features import cached_stages
from search.cache.programs import TRACES, RateDropout, SmoothedCrossentropy
from search.cache.store import FeatureCache
from search.recipe.config import TrainConfig
from search.recipe.train import train

CFG = TrainConfig(weights="none", train_samples=200, val_samples=50, head_epochs=2,
                  unfreeze_depth=10, unfreeze_step=5, stage_lrs=(1e-3, 5e-4), finetune_epochs=2,
                  batch_size=48, early_stop_patience=5, dropout=0.3, label_smoothing=0.1)
# Another trial of the same structure: every variable-held value differs, and dropout is off.
OTHER = CFG.replace(seed=3, dropout=0.0, label_smoothing=0.0, head_lr=3e-3, stage_lrs=(2e-4, 1e-4))


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.37, 0.6])
def test_rate_dropout_is_keras_dropout_bit_for_bit(rate):
    x = np.random.default_rng(0).normal(size=(64, 33)).astype("float32")
    theirs = keras.layers.Dropout(rate, seed=7)
    mine = RateDropout(0.5, seed=7)
    mine.set_rate(rate)
    for _ in range(3):  # the seed state advances alike
        np.testing.assert_array_equal(np.asarray(mine(x, training=True)),
                                      np.asarray(theirs(x, training=True)))
    np.testing.assert_array_equal(np.asarray(mine(x, training=False)), x)


@pytest.mark.parametrize("smoothing", [0.0, 0.017, 0.1, 0.2])
def test_smoothed_crossentropy_is_keras_bit_for_bit(smoothing):
    rng = np.random.default_rng(1)
    y = keras.utils.to_categorical(rng.integers(0, 10, 32), 10)
    p = keras.ops.softmax(rng.normal(size=(32, 10)).astype("float32"))
    mine = SmoothedCrossentropy()
    mine.set(smoothing, 10)
    want = keras.losses.CategoricalCrossentropy(label_smoothing=smoothing)(y, p)
    assert float(mine(y, p)) == float(want)


def run(config, cache, reuse):
    return train(config, tiny_data(200, 50, seed=config.seed), log=lambda *_: None,
                 stages=cached_stages(cache, 10, reuse=reuse))


@pytest.mark.slow
def test_reused_programs_give_a_fresh_model_s_values_and_trace_once(tmp_path):
    programs.clear()
    cache = FeatureCache(tmp_path, views=2)
    fresh = [run(c, cache, reuse=False) for c in (CFG, OTHER)]
    first = run(CFG, cache, reuse=True)
    traced = dict(TRACES)
    assert traced and all(n >= 1 for n in traced.values())
    second = run(OTHER, cache, reuse=True)  # reuses the first's programs
    assert dict(TRACES) == traced, "a later trial of the same structure traced again"
    for want, got in zip(fresh, (first, second)):
        assert list(got.history["depth"]) == [0, 0, 5, 5, 10, 10]
        np.testing.assert_array_equal(got.history.to_numpy(), want.history.to_numpy())
        for a, b in zip(got.model.weights, want.model.weights):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # Three programs (depths 0, 5, 10), each with a train and a test step.
    assert len(traced) == 6


def test_xla_programs_are_their_own_and_train_to_the_same_numbers_within_float_noise(tmp_path):
    """--xla: the cache's programs compile with XLA, apart from the plain ones (a process may hold
    both), and give the plain programs' first epoch up to float noise. Dropout is off: under XLA
    the stateless generator picks another algorithm, so dropout draws other masks."""
    programs.clear()
    cfg = CFG.replace(unfreeze_depth=0, stage_lrs=(), head_epochs=1, dropout=0.0)
    plain = run(cfg, FeatureCache(tmp_path, views=2), reuse=True)
    xla = run(cfg, FeatureCache(tmp_path, views=2, xla=True), reuse=True)
    compiled = {key[-1]: p.models[0].jit_compile for key, p in programs._HEADS.items()}
    assert compiled == {False: False, True: True}
    np.testing.assert_allclose(xla.history[["loss", "val_loss"]].to_numpy(),
                               plain.history[["loss", "val_loss"]].to_numpy(), rtol=1e-4)

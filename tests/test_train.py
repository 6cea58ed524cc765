import keras
import numpy as np
import pytest

from helpers import tiny_config, tiny_data
from search.errors import DivergedError
from search.recipe.train import train

# Two stages (head, then the top 5 layers), 2 epochs each: small enough for CI, long enough to learn.
CFG = tiny_config(head_epochs=2, stage_lrs=(1e-4,), finetune_epochs=2)


@pytest.fixture(scope="module")
def data():
    return tiny_data(200, 50)


@pytest.fixture(scope="module")
def result(data):
    return train(CFG, data, log=lambda *_: None)


def test_learns_above_chance_on_data_with_signal(result):
    assert result.val_accuracy > 0.3  # chance is 0.1
    assert result.history["accuracy"].iloc[-1] > 0.5


def test_same_seed_gives_identical_history(result, data):
    again = train(CFG, data, log=lambda *_: None)
    cols = ["loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]
    np.testing.assert_array_equal(again.history[cols].to_numpy(), result.history[cols].to_numpy())
    assert again.val_accuracy == result.val_accuracy


def test_epoch_index_is_continuous_across_stages(result):
    h = result.history
    assert h["epoch"].tolist() == list(range(len(h)))
    assert h["stage"].tolist() == [0, 0, 1, 1]
    assert h["depth"].tolist() == [0, 0, 5, 5]
    assert [s.first_epoch for s in result.stages] == [0, 2]
    assert [s.epochs for s in result.stages] == [2, 2]


def test_lr_follows_the_stage_schedule(result):
    lr = result.history["learning_rate"].to_numpy()
    # stage 0 starts at head_lr, cosine-decays; stage 1 restarts at its own lr
    assert lr[0] == pytest.approx(1e-3) and lr[1] == pytest.approx(1e-3 * 0.5)
    assert lr[2] == pytest.approx(1e-4) and lr[3] < lr[2]


def test_model_holds_the_best_validation_epoch(result, data):
    probs = result.model.predict(data.x_val.astype("float32"), verbose=0)
    acc = float((probs.argmax(1) == data.y_val).mean())
    assert acc == pytest.approx(result.val_accuracy, abs=1e-6)


def test_divergence_raises_a_training_error(data):
    cfg = CFG.replace(head_lr=1e32, unfreeze_depth=0, stage_lrs=(), head_epochs=1)
    with pytest.raises(DivergedError, match="non-finite"):
        train(cfg, data, log=lambda *_: None)



class StageEnds(keras.callbacks.Callback):
    def __init__(self, stop_after=None):
        super().__init__()
        self.seen, self.stop_after = [], stop_after

    def on_stage_end(self, stage, best):
        self.seen.append((stage, best))
        if stage == self.stop_after:
            raise KeyboardInterrupt  # any exception ends training there


def test_stage_end_hooks_get_the_best_so_far_after_every_stage_but_the_last(data):
    from search.cache.features import cached_stages
    from search.cache.store import FeatureCache

    cfg = CFG.replace(unfreeze_depth=10, stage_lrs=(1e-4, 5e-5), finetune_epochs=1)
    hook = StageEnds()
    cached = cached_stages(FeatureCache(None, views=1), 10)  # the hooks, not the live path: fast
    res = train(cfg, data, callbacks=[hook], log=lambda *_: None, stages=cached)
    best = np.maximum.accumulate([s.best_val_accuracy for s in res.stages])
    assert [s for s, _ in hook.seen] == [0, 1]  # not after the last stage: that is the result
    assert [b for _, b in hook.seen] == best[:2].tolist()

    stopper = StageEnds(stop_after=0)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, data, callbacks=[stopper], log=lambda *_: None, stages=cached)
    assert [s for s, _ in stopper.seen] == [0]

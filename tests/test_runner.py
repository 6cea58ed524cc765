"""One network per worker: a run's results depend on its config alone, first or fifth in a runner,
in this process or a worker; a later run of a known structure traces nothing."""

import keras
import numpy as np
import pytest
from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

from helpers import tiny_config, tiny_data
from search.cache.features import cached_stages
from search.cache.store import FeatureCache
from search.recipe.network import Networks, RateDropout
from search.recipe.train import train
from search.runner.events import EpochEnd, Finished, StageEnd, Stopped
from search.runner.trial import TrialRunner
from search.runner.worker import WorkerRunner, WorkerSpec

CFG = tiny_config(head_epochs=2, unfreeze_depth=10, unfreeze_step=5, stage_lrs=(1e-3, 5e-4),
                  finetune_epochs=2, batch_size=48, dropout=0.3, label_smoothing=0.1)
# Other trials of the same structure: every value a network holds in variables differs.
OTHERS = [CFG.replace(seed=3, dropout=0.0, label_smoothing=0.0, head_lr=3e-3,
                      stage_lrs=(2e-4, 1e-4)),
          CFG.replace(seed=5, dropout=0.6, unfreeze_depth=5, stage_lrs=(1e-4,)),
          CFG.replace(seed=1, head_width=64, weight_decay=0.01)]  # another structure between


class Traces:
    """Counts the traces of every model's train and test step (Keras calls the step only while
    tracing its compiled function)."""

    def __init__(self, monkeypatch):
        self.counts: dict[tuple, int] = {}
        for kind in ("train_step", "test_step"):
            real = getattr(TensorFlowTrainer, kind)

            def counted(model, data, real=real, kind=kind):
                key = (kind, id(model))
                self.counts[key] = self.counts.get(key, 0) + 1
                return real(model, data)
            monkeypatch.setattr(TensorFlowTrainer, kind, counted)


def values(result):
    return result.history.drop(columns=["epoch"]).to_numpy(), result.val_accuracy


@pytest.mark.slow
def test_a_run_depends_on_its_config_alone_and_a_known_structure_traces_nothing(tmp_path,
                                                                                monkeypatch):
    data = tiny_data(200, 50)
    cache = FeatureCache(tmp_path, views=2)
    stages = cached_stages(cache, 10)
    shared = Networks()
    traces = Traces(monkeypatch)
    first = train(CFG, data, log=lambda *_: None, stages=stages, networks=shared)
    after_first = dict(traces.counts)
    # Depths 0, 5, 10, each a train and a test step; one trace of Keras' train function calls
    # train_step twice (its output structure, then the loop body), test_step once.
    assert sorted(after_first.values()) == [1, 1, 1, 2, 2, 2]
    later = [train(c, data, log=lambda *_: None, stages=stages, networks=shared) for c in OTHERS]
    again = train(CFG, data, log=lambda *_: None, stages=stages, networks=shared)  # fifth
    assert {k: traces.counts[k] for k in after_first} == after_first  # reused: no new trace
    assert shared.built == 2  # the head_width=64 trial built its own structure
    np.testing.assert_array_equal(values(again)[0], values(first)[0])
    assert values(again)[1] == values(first)[1]
    for config, got in zip(OTHERS, later):  # each as a fresh process's first run gives it
        want = train(config, data, log=lambda *_: None, stages=stages, networks=Networks())
        np.testing.assert_array_equal(values(got)[0], values(want)[0])
        assert values(got)[1] == values(want)[1]
    assert list(first.history["depth"]) == [0, 0, 5, 5, 10, 10]
    assert first.history["loss"].iloc[0] != later[0].history["loss"].iloc[0]  # they differ


def test_rate_dropout_drops_at_its_rate_scales_what_it_keeps_and_restarts_on_reset():
    x = np.ones((400, 50), "float32")
    layer = RateDropout(name="d")
    for rate in (0.0, 0.25, 0.6):
        layer.reset(rate, seed=7)
        a = np.asarray(layer(x, training=True))
        kept = a != 0
        assert abs(1 - kept.mean() - rate) < 0.02
        np.testing.assert_allclose(a[kept], 1 / (1 - rate), rtol=1e-6)
        b = np.asarray(layer(x, training=True))
        assert rate == 0 or not np.array_equal(a, b)  # the draws go on
        layer.reset(rate, seed=7)
        np.testing.assert_array_equal(np.asarray(layer(x, training=True)), a)  # and restart
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)


def test_a_network_s_classifier_is_plain_keras_and_shares_the_trained_variables():
    cfg = tiny_config(head_layers=2, head_width=16, dropout=0.4)
    networks = Networks()
    net = networks.get(cfg, (32, 32, 3), 10)
    net.reset(cfg, networks.bank)
    model = net.classifier(cfg)
    head = model.get_layer("head")
    assert [type(la).__name__ for la in head.layers] == [
        "InputLayer", "GlobalAveragePooling2D", "Dense", "BatchNormalization", "Dropout", "Dense",
        "BatchNormalization", "Dropout", "Dense"]
    assert head.get_layer("head_dropout_1").rate == 0.4
    kernel = net.out.kernel
    assert any(w is kernel for w in model.weights)  # no copy: the network's own variable
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), net.model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-7)


def test_reset_restores_the_same_initial_weights_for_the_same_seed():
    cfg = tiny_config()
    networks = Networks()
    net = networks.get(cfg, (32, 32, 3), 10)
    net.reset(cfg, networks.bank)
    start = [np.array(w) for w in net.model.weights]
    for w in net.movable(5):  # as a run would leave them
        w.assign(np.asarray(w) + 1.0)
    net.reset(cfg, networks.bank)
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(start, net.model.weights))
    net.reset(cfg.replace(seed=1), networks.bank)
    head = np.asarray(net.out.kernel)
    assert not np.array_equal(head, start[[i for i, w in enumerate(net.model.weights)
                                           if w is net.out.kernel][0]])


class Pruner:
    """Stops a run at the first event that `stop` says yes to, and records what it saw."""

    def __init__(self, stop=lambda event: False):
        self.stop, self.seen = stop, []

    def __call__(self, event):
        self.seen.append(event)
        return self.stop(event)


@pytest.mark.slow
def test_a_worker_runs_what_this_process_runs_event_for_event(tmp_path):
    data = tiny_data(100, 30)
    cfg = tiny_config(train_samples=100, val_samples=30, unfreeze_depth=10, unfreeze_step=5,
                      stage_lrs=(1e-3, 5e-4))
    cache = {"directory": tmp_path, "views": 2}  # one on-disk cache: the worker reads the fill
    here = TrialRunner(data, FeatureCache(**cache), 10)
    there = WorkerRunner(WorkerSpec(data, cache, 10), max_runs=2)
    try:
        outcomes, seen = [], []
        for runner in (here, there):
            p = Pruner()
            outcomes.append(runner.run(cfg, p))
            seen.append(p.seen)
        a, b = outcomes
        assert isinstance(a, Finished) and a.value == b.value and a.history == b.history
        assert seen[0] == seen[1]
        kinds = [type(e) for e in seen[0]]
        assert kinds == [EpochEnd, StageEnd, EpochEnd, StageEnd, EpochEnd]
        stop = Pruner(lambda e: isinstance(e, StageEnd) and e.stage == 1)
        assert there.run(cfg, stop) == Stopped("after stage 1", 2)
        pid = there.proc.pid  # a stopped run ends cleanly: the worker is kept ...
        assert there.run(cfg, Pruner()).value == outcomes[0].value
        assert there.proc.pid != pid and there.started == 2  # ... until its max_runs (2)
    finally:
        there.close()


def test_xla_programs_are_kept_apart_from_the_plain_ones(tmp_path):
    """--xla: the cache's programs compile with XLA, apart from the plain ones (a network may hold
    both), and give the plain programs' first epoch up to float noise. Dropout is off: under XLA
    the stateless generator picks another algorithm, so dropout draws other masks."""
    cfg = CFG.replace(unfreeze_depth=0, stage_lrs=(), head_epochs=1, dropout=0.0)
    data = tiny_data(200, 50)
    networks = Networks()
    plain = train(cfg, data, log=lambda *_: None, networks=networks,
                  stages=cached_stages(FeatureCache(tmp_path, views=2), 0))
    xla = train(cfg, data, log=lambda *_: None, networks=networks,
                stages=cached_stages(FeatureCache(tmp_path, views=2, xla=True), 0))
    (net,) = networks._nets.values()
    compiled = {key[2]: model.jit_compile for key, (model, _) in net.programs.items()
                if key[0] == "cached"}
    assert compiled == {False: False, True: True}
    np.testing.assert_allclose(xla.history[["loss", "val_loss"]].to_numpy(),
                               plain.history[["loss", "val_loss"]].to_numpy(), rtol=1e-4)


def test_label_smoothing_is_a_transform_of_the_targets_as_keras_loss_applies_it():
    from search.recipe.train import smoothed

    y = np.array([0, 3, 9])
    for s in (0.0, 0.1, 0.3):
        t = smoothed(y, 10, s)
        assert (t.argmax(1) == y).all() and np.allclose(t.sum(1), 1.0)
        p = keras.ops.softmax(np.random.default_rng(1).normal(size=(3, 10)).astype("float32"))
        ours = float(keras.losses.CategoricalCrossentropy()(t, p))
        keras_own = float(keras.losses.CategoricalCrossentropy(label_smoothing=s)(
            keras.utils.to_categorical(y, 10), p))
        assert ours == pytest.approx(keras_own, rel=1e-6)

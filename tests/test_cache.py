"""The exact cache: the suffix on cached prefix outputs is the full model, and trains the same."""

import functools
import json
from dataclasses import dataclass

import keras
import numpy as np
import pytest

from helpers import fill, run_python, tiny_config, tiny_data
from search.cache.features import augment_view, boundary_features, cached_stages, predict_boundary
from search.cache.matmul import MatmulConv
from search.cache.store import FeatureCache
from search.cache.surgery import boundary, build_bridge, build_cached_model, build_prefix
from search.recipe.model import BASE, HEAD
from search.recipe.network import Networks
from search.recipe.schedule import plan
from search.recipe.train import StageFit, compile_program, fit_plan, smoothed

CFG = tiny_config()


@pytest.fixture(scope="module")
def full():
    """A network reset for CFG (random base drawn from its seed), as a plain-Keras model."""
    networks = Networks()
    net = networks.get(CFG, (32, 32, 3), 10)
    net.reset(CFG, networks.bank)
    return net.classifier(CFG)


@pytest.mark.parametrize("depth", [0, 5, 7, 10, 20, 30])
def test_suffix_of_cached_prefix_equals_the_full_model(full, depth):
    base, head = full.get_layer(BASE), full.get_layer(HEAD)
    x = np.random.default_rng(depth).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    feats = predict_boundary(build_prefix(CFG, base, (32, 32, 3), depth), x)
    cached, shapes = build_cached_model(CFG, base, head, depth)
    assert [tuple(f.shape[1:]) for f in feats] == shapes
    got = cached.predict(feats if len(feats) > 1 else feats[0], verbose=0)
    want = full.predict(x, verbose=0)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_cut_inside_a_residual_block_carries_main_path_and_shortcut(full):
    base = full.get_layer(BASE)
    names = [t._keras_history.operation.name for t in boundary(base, 5)]
    assert names == ["conv5_block3_2_bn", "conv5_block2_out"]  # main path, shortcut
    assert [t._keras_history.operation.name for t in boundary(base, 0)] == ["conv5_block3_out"]


@pytest.mark.parametrize("outer,inner", [(30, 0), (30, 5), (30, 7), (10, 5), (20, 10), (5, 0)])
def test_bridge_from_a_deeper_boundary_equals_the_prefix(full, outer, inner):
    base = full.get_layer(BASE)
    x = np.random.default_rng(outer + inner).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    deep = predict_boundary(build_prefix(CFG, base, (32, 32, 3), outer), x)
    got = predict_boundary(build_bridge(base, outer, inner), deep)
    want = predict_boundary(build_prefix(CFG, base, (32, 32, 3), inner), x)
    assert len(got) == len(want)
    for g, w in zip(got, want):  # matmuls for convs (MatmulConv) sum in another order
        np.testing.assert_allclose(g, w, atol=1e-6 * np.abs(w).max(), rtol=1e-5)


def SGD(config, lr):  # noqa: N802
    """Plain SGD: a step is lr x gradient, so float-order noise in a gradient stays noise-sized
    (Adam divides by sqrt(v): near-zero gradients' noise becomes steps of about lr)."""
    return keras.optimizers.SGD(lr)


@dataclass
class Trained:
    values: list  # the variables as the last epoch left them
    initial: list  # ... and as training found them
    val_probs: np.ndarray  # the full model on the validation images, at the last epoch's weights


class Fixed:
    """A StageSource whose stages all fit `make(network, depth)`'s model on fixed inputs: the full
    network on fixed augmented views ("full"), or one suffix of the deepest stage's depth on its
    boundary tensors for every stage ("cached", the same ops in the same order)."""

    def __init__(self, path: str, views_raw, depth: int):
        self.path, self.views_raw, self.depth = path, views_raw, depth

    def begin(self, network, config, data):
        if self.path == "full":
            views = [[v] for v in self.views_raw]
            val = [data.x_val.astype("float32")]
        else:
            prefix = build_prefix(config, network.base, (32, 32, 3), self.depth)
            views = [predict_boundary(prefix, v) for v in self.views_raw]
            val = predict_boundary(prefix, data.x_val)
            suffix = build_cached_model(config, network.base, network.train_head, self.depth,
                                        fast=False)[0]

        def stage(depth):
            def build():
                if self.path == "full":
                    image = keras.Input(shape=(32, 32, 3))
                    model = keras.Model(image, network.model(image))
                else:
                    inputs = [keras.Input(shape=t.shape[1:]) for t in suffix.inputs]
                    model = keras.Model(inputs, suffix(inputs))
                return compile_program(model, network, depth, config)
            return StageFit(network.program((self.path, depth), build), views, val)
        return stage


def train_one_fine_tuning_stage(path: str, data, views_raw, depth: int = 5,
                                optimizer=SGD) -> Trained:
    """Stage 0 + one stage opening `depth` layers on fixed views: by the full model ("full"), by
    one suffix of that depth on its boundary tensors for both stages, with the same ops
    ("cached"), or by what train() runs on the cache ("recut": CachedStages, each stage's own
    suffix on its own boundary, bridged from cached tensors at twice the depth, convolutions as
    matmuls), each compiled with `optimizer`."""
    import search.recipe.train as train_module

    cfg = CFG.replace(unfreeze_depth=depth, unfreeze_step=depth)
    networks = Networks()
    net = networks.get(cfg, (32, 32, 3), 10)
    net.reset(cfg, networks.bank)
    if path == "recut":
        source = cached_stages(FeatureCache(None, views=len(views_raw)), 2 * depth)
    else:
        source = Fixed(path, views_raw, depth)
    top = [la for la in net.base.layers[-depth:]
           if isinstance(la, keras.layers.Conv2D)]  # the convs the last stage opens
    variables = [w for la in [*top, *net.head_layers] for w in la.trainable_weights]
    last = Snapshot(variables)
    real = train_module.make_optimizer
    train_module.make_optimizer = optimizer
    try:
        stage_fit = source.begin(net, cfg, data)
        n = data.num_classes
        y = smoothed(data.y_train, n, cfg.label_smoothing)
        yv = smoothed(data.y_val, n, cfg.label_smoothing)
        fit_plan(net, plan(cfg), stage_fit, y, yv, cfg.batch_size, cfg.seed, [last],
                 log=lambda *_: None)
    finally:
        train_module.make_optimizer = real
    for var, value in zip(variables, last.values):  # the full model at the last epoch's weights
        var.assign(value)
    probs = net.classifier(cfg).predict(data.x_val.astype("float32"), verbose=0)
    return Trained(last.values, last.initial, probs)


class Snapshot(keras.callbacks.Callback):
    """The variables as the last epoch left them (what the stage trained, before any best-epoch
    restore), read after the trainer's own end-of-epoch callbacks."""

    def __init__(self, variables):
        super().__init__()
        self.variables, self.values, self.initial = variables, None, None

    def on_train_begin(self, logs=None):
        if self.initial is None:
            self.initial = [v.numpy() for v in self.variables]

    def on_epoch_end(self, epoch, logs=None):
        self.values = [v.numpy() for v in self.variables]


@functools.cache
def trained(path: str, depth: int) -> Trained:
    data = tiny_data(200, 50)
    views = tuple(augment_view(CFG, data.x_train, v) for v in range(2))
    return train_one_fine_tuning_stage(path, data, views, depth)


def assert_same_training(a: Trained, b: Trained, rel: float = 1e-2) -> None:
    """Two paths trained the same network: every trained array agrees with the reference to
    `rel` of how far training moved that array. Under plain SGD the recut path's float-order
    noise (a matmul sums in another order than a convolution) stays near 1e-4 of the move, while
    a real difference (a skipped step, a wrong view, a stale centre tap) is of the order of the
    move itself."""
    assert len(a.values) == len(b.values)
    for i, (wa, wb, w0, v0) in enumerate(zip(a.values, b.values, a.initial, b.initial)):
        np.testing.assert_array_equal(w0, v0)  # same start
        moved = np.abs(wa - w0).max()
        assert moved > 1e-6, f"array {i} did not train"
        off = np.abs(wa - wb).max()
        assert off <= rel * moved, f"array {i}: {off:.3g} apart after a move of {moved:.3g}"


@pytest.mark.slow
@pytest.mark.parametrize("depth,n_weights", [(5, 2 + 6), (10, 6 + 6)])
def test_training_on_the_cache_matches_training_the_full_model(depth, n_weights):
    """At depth 10 the stage opens conv5_block3_2_conv, a 3×3 kernel on 1×1 maps that the cached
    path trains as its centre tap alone (MatmulConv): the whole kernel must still match."""
    a = trained("full", depth)
    assert len(a.values) == n_weights  # (kernel, bias) per open conv + head (3 x 2)
    # The same ops in the same order still differ in the last bits across CPUs (3 of 524,288
    # elements by 1.6e-7 on an AMD EPYC): the bound below holds on any CPU, and a real
    # difference (a skipped step, a wrong view) is of the order of the move itself.
    same_ops = trained("cached", depth)
    assert_same_training(a, same_ops)
    recut = trained("recut", depth)  # what train() runs on the cache
    assert_same_training(a, recut)
    np.testing.assert_allclose(recut.val_probs, a.val_probs, atol=1e-3)
    if depth == 10:  # conv5_block3_2_conv, trained as its centre tap: the outer taps never move
        k_full, k_recut, k0 = a.values[2], recut.values[2], a.initial[2]
        assert (k_full[1, 1] != k0[1, 1]).mean() > 0.25  # the centre did
        outer = np.ones((3, 3), bool)
        outer[1, 1] = False
        np.testing.assert_array_equal(k_full[outer], k0[outer])
        np.testing.assert_array_equal(k_recut[outer], k0[outer])


@pytest.mark.slow
def test_the_training_check_fails_when_the_centre_tap_is_not_written_back(monkeypatch):
    """The check above has teeth: with MatmulConv's write-back disabled, the full model keeps the
    3×3 kernel's initial centre while the stage trained a copy, and the check fails."""
    monkeypatch.setattr(MatmulConv, "write_back", lambda self: None)
    data = tiny_data(200, 50)
    views = tuple(augment_view(CFG, data.x_train, v) for v in range(2))
    stale = train_one_fine_tuning_stage("recut", data, views, 10)
    with pytest.raises(AssertionError, match="array 2"):
        assert_same_training(trained("full", 10), stale)


def test_views_are_deterministic_and_distinct():
    data = tiny_data(200, 50)
    v0, v0b, v1 = (augment_view(CFG, data.x_train, v) for v in (0, 0, 1))
    np.testing.assert_array_equal(v0, v0b)
    assert not np.array_equal(v0, v1) and not np.array_equal(v0, data.x_train)


@pytest.mark.slow
def test_cache_keys_miss_on_any_change_and_hit_in_a_new_process(tmp_path, full):
    cache = FeatureCache(tmp_path, views=2)
    views, val = fill(cache)
    assert (cache.stats.hits, cache.stats.misses) == (0, 3)  # val + 2 views
    assert len(views) == 2 and len(val) == 2 and views[0][1].shape == (150, 1, 1, 2048)
    fill(cache)
    assert (cache.stats.hits, cache.stats.misses) == (3, 3)
    for change in (dict(depth=10), dict(data=tiny_data(200, 50, seed=1)),
                   dict(cfg=CFG.replace(image_size=40)), dict(cfg=CFG.replace(aug_zoom=0.2))):
        c = FeatureCache(tmp_path, views=2)
        fill(c, **change)
        assert c.stats.misses >= (1 if "cfg" in change and change["cfg"].aug_zoom == 0.2 else 3)
    w1, w2 = tmp_path / "w1.weights.h5", tmp_path / "w2.weights.h5"
    for i, w in enumerate((w1, w2)):
        keras.utils.set_random_seed(i)  # a test process: Keras' global seed is fine here
        keras.applications.ResNet50(include_top=False, weights=None,
                                    input_shape=(32, 32, 3)).save_weights(w)
    c = FeatureCache(tmp_path, views=2)
    fill(c, cfg=CFG.replace(weights=str(w1)))
    fill(c, cfg=CFG.replace(weights=str(w2)))
    assert c.stats.misses == 6

    code = ("from helpers import fill; "
            "from search.cache.store import FeatureCache; "
            f"c = FeatureCache({str(tmp_path)!r}, views=2); fill(c); "
            "print(c.stats.hits, c.stats.misses)")
    assert run_python(code)[-2:] == ["3", "0"]


def test_an_interrupted_write_leaves_no_readable_entry(tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path, views=1)
    real_save = np.save
    calls = []

    def dying_save(path, arr):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed mid-write")
        real_save(path, arr)

    monkeypatch.setattr(np, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        cache.get({"k": 1}, lambda: [np.ones((4, 2)), np.zeros((4, 3))])
    monkeypatch.setattr(np, "save", real_save)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    fresh = FeatureCache(tmp_path, views=1)
    got = fresh.get({"k": 1}, lambda: [np.full((4, 2), 7.0), np.zeros((4, 3))])
    assert fresh.stats.misses == 1 and got[0][0, 0] == 7.0  # recomputed, not half-read
    again = FeatureCache(tmp_path, views=1).get({"k": 1}, lambda: pytest.fail("must hit"))
    np.testing.assert_array_equal(again[0], got[0])
    meta = json.loads(next(tmp_path.glob("*/meta.json")).read_text())
    assert meta["arrays"] == 2


def test_memory_limit_maps_entries_from_disk(tmp_path):
    cache = FeatureCache(tmp_path, mem_limit_mb=0.001, views=1)
    got = cache.get({"k": 2}, lambda: [np.ones((100, 100))])
    assert isinstance(got[0], np.memmap) and cache.memory_bytes == 0
    np.testing.assert_array_equal(got[0], 1.0)


def test_shallow_boundaries_are_filled_from_the_deep_one(tmp_path):
    cache = FeatureCache(tmp_path, views=2)
    fill(cache, depth=10)
    assert (cache.stats.hits, cache.stats.misses) == (0, 3)
    data = tiny_data(200, 50)
    networks = Networks()
    net = networks.get(CFG, (32, 32, 3), 10)
    net.reset(CFG, networks.bank)  # the same random base as fill()'s: drawn from the seed
    base = net.base
    views, val = boundary_features(CFG, data, base, 5, cache, source_depth=10)
    assert (cache.stats.hits, cache.stats.misses) == (3, 6)  # the deep entries, then the new ones
    direct, direct_val = boundary_features(CFG, data, base, 5, FeatureCache(None, views=2))
    for a, b in zip([*views[1], *val], [*direct[1], *direct_val]):
        np.testing.assert_allclose(a, b, atol=1e-6 * np.abs(b).max(), rtol=1e-5)
    boundary_features(CFG, data, base, 5, cache, source_depth=10)
    assert (cache.stats.hits, cache.stats.misses) == (6, 6)


def _fill_slowly(directory, marker_dir, go, out):
    """In a process of its own: get six entries whose computation takes a second each, and
    leave a file per computation, named after this process."""
    import os
    import time

    from search.cache.store import FeatureCache

    def compute(i):
        (marker_dir / f"{i}-{os.getpid()}").touch()
        time.sleep(1.0)
        return [np.full((3, 4), i, dtype="float32")]

    c = FeatureCache(directory, 64, 1, "float32")
    go.wait(60)  # both start together, as --jobs 2's first two trials do
    got = c.get_many([({"entry": i}, lambda i=i: compute(i)) for i in range(6)])
    out.put((os.getpid(), c.stats.hits, c.stats.misses,
             [float(np.asarray(a[0]).mean()) for a in got]))


def test_workers_that_start_together_split_a_fill_and_compute_each_entry_once(tmp_path):
    """Two worker processes ask for the same six missing entries at once: each entry is
    computed by one of them (an entry the other is filling is left for last, then read), both
    do part of the work, and both get every entry's values."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    markers = tmp_path / "computed"
    markers.mkdir()
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_fill_slowly, args=(tmp_path / "cache", markers, go, out))
             for _ in range(2)]
    for p in procs:
        p.start()
    go.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    computed = sorted(m.name.split("-") for m in markers.iterdir())
    assert sorted(int(i) for i, _ in computed) == list(range(6))  # each entry once
    assert {pid for _, pid in computed} == {str(r[0]) for r in results}  # both did some
    for _, hits, misses, means in results:
        assert hits + misses == 6 and means == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]

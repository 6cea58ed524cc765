"""The pipelines handed to Keras: the same batches as the generator, in order, autotuning off."""

import sys

import numpy as np
import pytest

from search.recipe.feed import Batches, array_stream, training_stream


def _views(rng, n, n_views, shapes):
    return [[rng.normal(size=(n, *s)).astype("float32") for s in shapes] for _ in range(n_views)]


@pytest.mark.parametrize("shapes", [[(3,)], [(2, 2, 3), (5,)]])
def test_training_stream_is_the_generator_batch_for_batch(shapes):
    rng = np.random.default_rng(0)
    views, y = _views(rng, 50, 3, shapes), np.eye(4)[rng.integers(0, 4, 50)]
    expected = list(Batches(views, y, 16, seed=7, first_epoch=2, epochs=2))
    ds = training_stream(views, y, 16, seed=7, first_epoch=2, epochs=2)
    got = list(ds.as_numpy_iterator())
    assert len(got) == len(expected) == 8  # 4 batches an epoch, the last of 2 images
    for (gx, gy), (ex, ey) in zip(got, expected):
        gx, ex = (gx, ex) if len(shapes) > 1 else ((gx,), (ex,))
        assert all(np.array_equal(a, b) and a.dtype == np.float32 for a, b in zip(gx, ex))
        assert np.array_equal(gy, ey) and gy.dtype == y.dtype
    assert ds.options().autotune.enabled is False


def test_array_stream_keeps_order_and_batch_size_and_tells_inputs_from_targets():
    x, y = np.arange(10, dtype="float32").reshape(5, 2), np.arange(5)
    with_y = list(array_stream(x, y, batch_size=2).as_numpy_iterator())
    assert [len(b[1]) for b in with_y] == [2, 2, 1]
    assert np.array_equal(np.concatenate([b[0] for b in with_y]), x)
    pair = (x, x + 100)  # two model inputs, no targets: one element, not (x, y)
    only_x = list(array_stream(pair, batch_size=4).as_numpy_iterator())
    assert [len(b) for b in only_x] == [1, 1] and len(only_x[0][0]) == 2
    assert np.array_equal(np.concatenate([b[0][1] for b in only_x]), x + 100)
    assert array_stream(x).options().autotune.enabled is False


def _faults_of_big_allocations() -> int:
    """Minor page faults of allocating and freeing a 4 MiB array 50 times."""
    import resource
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):
        np.ones(2**20, dtype="float32")
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_batches_depend_on_seed_and_epoch_alone():
    rng = np.random.default_rng(0)
    views, y = _views(rng, 30, 2, [(3,)]), np.arange(30)
    whole = list(Batches(views, y, 8, seed=3, first_epoch=0, epochs=3))
    later = list(Batches(views, y, 8, seed=3, first_epoch=2, epochs=1))  # a later stage's start
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(whole[8:], later))
    other = list(Batches(views, y, 8, seed=4, first_epoch=0, epochs=1))
    assert not np.array_equal(np.concatenate([b[1] for b in other]),
                              np.concatenate([b[1] for b in whole[:4]]))
    assert sorted(np.concatenate([b[1] for b in whole[:4]])) == list(range(30))  # each image once


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc")
def test_the_training_stream_leaves_malloc_s_thresholds_alone():
    """TensorFlow's from_generator op sets M_TRIM_THRESHOLD to 128 KiB for the whole process,
    which freezes the mmap threshold too: every 4 MiB array below was then mapped afresh (50 x
    1,024 pages faulted; 25,700 counted with a from_generator stream). Our stream maps step
    indices instead, and sets nothing."""
    rng = np.random.default_rng(0)
    views, y = _views(rng, 20, 1, [(3,)]), np.eye(2)[rng.integers(0, 2, 20)]
    list(training_stream(views, y, 8, seed=0, first_epoch=0, epochs=1))
    assert _faults_of_big_allocations() < 5_000

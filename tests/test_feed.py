"""The pipelines handed to Keras: the same batches as the generator, in order, autotuning off."""

import numpy as np
import pytest

from search.recipe.feed import array_stream, batches, malloc_like_glibc, training_stream


def _views(rng, n, n_views, shapes):
    return [[rng.normal(size=(n, *s)).astype("float32") for s in shapes] for _ in range(n_views)]


@pytest.mark.parametrize("shapes", [[(3,)], [(2, 2, 3), (5,)]])
def test_training_stream_is_the_generator_batch_for_batch(shapes):
    rng = np.random.default_rng(0)
    views, y = _views(rng, 50, 3, shapes), np.eye(4)[rng.integers(0, 4, 50)]
    expected = list(batches(views, y, 16, seed=7, first_epoch=2, epochs=2))
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


@pytest.mark.skipif(not malloc_like_glibc(), reason="glibc's mallopt only")
def test_training_stream_undoes_tensorflows_malloc_setting():
    rng = np.random.default_rng(0)
    views, y = _views(rng, 20, 1, [(3,)]), np.eye(2)[rng.integers(0, 2, 20)]
    list(training_stream(views, y, 8, seed=0, first_epoch=0, epochs=1))  # TensorFlow's setting
    training_stream(views, y, 8, seed=0, first_epoch=0, epochs=1)  # ours, again
    # With an mmap threshold of 128 KiB each array is mapped afresh: 50 x 1,024 pages faulted.
    assert _faults_of_big_allocations() < 5_000

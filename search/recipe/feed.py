"""How arrays reach Keras: the training batch stream and tf.data pipelines with autotuning off.

Keras turns numpy arrays and Python generators into tf.data pipelines with autotuning on. On a
2-core machine that cost whole seconds: each iterator (one per fit, validation pass, predict)
runs an autotuning thread that sleeps 10 ms, 20 ms, 40 ms... (doubling), and calls ended near
the grid 10 ms x (2^k - 1) with a core idle, at random. Every pipeline made here has autotuning
off and a prefetch of one batch; the batches and their order are unchanged, so results are the
same bit for bit (docs/design.md, "Feeding Keras without tf.data's autotuning", has the figures).

The training stream also undoes a malloc setting that TensorFlow's generator pipelines make
(`malloc_like_glibc`)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
import platform

import numpy as np
import tensorflow as tf


def batches(views: list[list[np.ndarray]], y: np.ndarray, batch_size: int, seed: int,
            first_epoch: int, epochs: int):
    """Training batches for epochs first_epoch.. as one stream: epoch e shuffles with
    rng(seed, e) and draws one view per image, so order and views depend only on (seed, epoch).

    views[v][j] is input j of view v (N × ...); one view = no choice."""
    n, n_views, n_inputs = len(y), len(views), len(views[0])
    steps = math.ceil(n / batch_size)
    for e in range(first_epoch, first_epoch + epochs):
        rng = np.random.default_rng([seed, e])
        order = rng.permutation(n)
        pick = rng.integers(0, n_views, n) if n_views > 1 else np.zeros(n, dtype=int)
        for s in range(steps):
            idx = order[s * batch_size:(s + 1) * batch_size]
            v = pick[idx]
            xs = []
            for j in range(n_inputs):
                first = views[0][j]
                out = np.empty((len(idx), *first.shape[1:]), dtype="float32")
                for view in np.unique(v):
                    m = v == view
                    out[m] = views[view][j][idx[m]]
                xs.append(out)
            yield (tuple(xs) if n_inputs > 1 else xs[0]), y[idx]


def _quiet(ds: tf.data.Dataset) -> tf.data.Dataset:
    """`ds` with tf.data's autotuning (and its thread) off."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def _spec(a: np.ndarray, dtype=None) -> tf.TensorSpec:
    return tf.TensorSpec((None, *a.shape[1:]), tf.as_dtype(dtype or a.dtype))


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt() parameters
MMAP_MAX = 32 * 2**20  # glibc's ceiling for its dynamic mmap threshold on 64-bit (trim: twice)


@functools.cache
def _mallopt():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(ctypes.util.find_library("c")).mallopt


def malloc_like_glibc() -> bool:
    """Give glibc's malloc back the thresholds it would reach by itself (glibc only; else False).

    The first tf.data generator pipeline of a process calls mallopt(M_TRIM_THRESHOLD, 128 KiB)
    (its log: "Memory patch applied"). Setting any threshold switches off glibc's dynamic mmap
    threshold, which then stays at 128 KiB: every larger tensor (a batch's activations) is
    mmap'ed and unmapped at every step, and its pages faulted in again (figures in
    docs/benchmarks.md). Set here: the mmap threshold glibc's dynamic rule tops out at, and
    trimming at twice that, as that rule does."""
    mallopt = _mallopt()
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_MAX) and mallopt(M_TRIM_THRESHOLD, 2 * MMAP_MAX))


def training_stream(views: list[list[np.ndarray]], y: np.ndarray, batch_size: int, seed: int,
                    first_epoch: int, epochs: int) -> tf.data.Dataset:
    """`batches(...)` as a tf.data pipeline (the generator runs one batch ahead of the step).
    Each call also re-asserts malloc's thresholds over TensorFlow's (`malloc_like_glibc`)."""
    malloc_like_glibc()
    xs = tuple(_spec(a, "float32") for a in views[0])
    signature = (xs if len(xs) > 1 else xs[0], _spec(y))
    ds = tf.data.Dataset.from_generator(
        lambda: batches(views, y, batch_size, seed, first_epoch, epochs),
        output_signature=signature)
    return _quiet(ds.prefetch(1))


def array_stream(x, y=None, batch_size: int = 256) -> tf.data.Dataset:
    """Arrays (one, or a tuple or list of model inputs; a list of one is that one) and optional
    targets, in order, in batches of `batch_size`: what Keras makes of arrays with shuffle off,
    without autotuning."""
    if isinstance(x, (list, tuple)):
        x = x[0] if len(x) == 1 else tuple(x)
    items = (x,) if y is None else (x, y)  # a 1-tuple: inputs only, even when x is a tuple
    return _quiet(tf.data.Dataset.from_tensor_slices(items).batch(batch_size).prefetch(1))

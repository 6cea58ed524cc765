"""How arrays reach Keras: the training batch stream and tf.data pipelines with autotuning off.

Keras turns numpy arrays and Python generators into tf.data pipelines with autotuning on. On a
2-core machine that cost whole seconds: each iterator (one per fit, validation pass, predict)
runs an autotuning thread that sleeps 10 ms, 20 ms, 40 ms... (doubling), and calls ended near
the grid 10 ms x (2^k - 1) with a core idle, at random. Every pipeline made here has autotuning
off and a prefetch of one batch; the batches and their order are unchanged, so results are the
same bit for bit (docs/design.md, "Feeding Keras without tf.data's autotuning", has the figures).

The training stream maps step indices to batches with `tf.numpy_function` rather than
`from_generator`, whose op changes malloc's settings for the whole process (`training_stream`)."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf


class Batches:
    """Training batches for epochs first_epoch.. as one indexed stream: epoch e shuffles with
    rng(seed, e) and draws one view per image, so order and views depend only on (seed, epoch).
    `batch(step)` is the step-th batch counted from first_epoch; iterating gives them all.

    views[v][j] is input j of view v (N × ...); one view = no choice."""

    def __init__(self, views: list[list[np.ndarray]], y: np.ndarray, batch_size: int, seed: int,
                 first_epoch: int, epochs: int):
        self.views, self.y, self.batch_size = views, y, batch_size
        self.seed, self.first_epoch, self.epochs = seed, first_epoch, epochs
        self.steps = math.ceil(len(y) / batch_size)  # per epoch
        self._epoch: tuple[int, np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.steps * self.epochs

    def _order(self, e: int) -> tuple[np.ndarray, np.ndarray]:
        if self._epoch is None or self._epoch[0] != e:
            n, n_views = len(self.y), len(self.views)
            rng = np.random.default_rng([self.seed, e])
            order = rng.permutation(n)
            pick = rng.integers(0, n_views, n) if n_views > 1 else np.zeros(n, dtype=int)
            self._epoch = (e, order, pick)
        return self._epoch[1], self._epoch[2]

    def batch(self, step: int) -> tuple:
        """(input arrays..., targets) of one batch, inputs as float32."""
        e, s = self.first_epoch + step // self.steps, step % self.steps
        order, pick = self._order(e)
        idx = order[s * self.batch_size:(s + 1) * self.batch_size]
        v = pick[idx]
        xs = []
        for j in range(len(self.views[0])):
            out = np.empty((len(idx), *self.views[0][j].shape[1:]), dtype="float32")
            for view in np.unique(v):
                m = v == view
                out[m] = self.views[view][j][idx[m]]
            xs.append(out)
        return (*xs, self.y[idx])

    def __iter__(self):
        for step in range(len(self)):
            *xs, y = self.batch(step)
            yield (tuple(xs) if len(xs) > 1 else xs[0]), y


def _quiet(ds: tf.data.Dataset) -> tf.data.Dataset:
    """`ds` with tf.data's autotuning (and its thread) off."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def _spec(a: np.ndarray, dtype=None) -> tf.TensorSpec:
    return tf.TensorSpec((None, *a.shape[1:]), tf.as_dtype(dtype or a.dtype))


def training_stream(views: list[list[np.ndarray]], y: np.ndarray, batch_size: int, seed: int,
                    first_epoch: int, epochs: int) -> tf.data.Dataset:
    """`Batches(...)` as a tf.data pipeline: the step index, mapped (in order) through
    `tf.numpy_function` to its batch, which runs one batch ahead of the training step.

    Not `from_generator`: its op sets glibc's M_TRIM_THRESHOLD to 128 KiB in the whole process
    (TensorFlow logs "Memory patch applied"), which freezes malloc's mmap threshold there too, so
    every larger tensor was mapped, faulted in and unmapped at every step (docs/design.md)."""
    stream = Batches(views, y, batch_size, seed, first_epoch, epochs)
    specs = [_spec(a, "float32") for a in views[0]] + [_spec(y)]

    def one(step):
        out = tf.numpy_function(lambda i: stream.batch(int(i)), [step],
                                [s.dtype for s in specs], stateful=False)
        out = [tf.ensure_shape(t, s.shape) for t, s in zip(out, specs)]
        xs = tuple(out[:-1])
        return (xs if len(xs) > 1 else xs[0]), out[-1]

    ds = tf.data.Dataset.range(len(stream)).map(one)  # sequential: in order
    return _quiet(ds.prefetch(1))


def array_stream(x, y=None, batch_size: int = 256) -> tf.data.Dataset:
    """Arrays (one, or a tuple or list of model inputs; a list of one is that one) and optional
    targets, in order, in batches of `batch_size`: what Keras makes of arrays with shuffle off,
    without autotuning."""
    if isinstance(x, (list, tuple)):
        x = x[0] if len(x) == 1 else tuple(x)
    items = (x,) if y is None else (x, y)  # a 1-tuple: inputs only, even when x is a tuple
    return _quiet(tf.data.Dataset.from_tensor_slices(items).batch(batch_size).prefetch(1))

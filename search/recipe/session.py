"""A fresh Keras session per trial that keeps TensorFlow's compiled functions.

Every trial starts from `keras.backend.clear_session()` and `keras.utils.set_random_seed(seed)`,
so that layer names and random draws depend on the seed alone. Both also clear TensorFlow's
eager kernel cache (`clear_session` directly, `tf.random.set_seed` "to reset any existing seeds"),
which holds every tf.function as instantiated and optimised by Grappler. A stage program that is
traced once per worker (search.cache.programs) then still paid that instantiation again on its
first step in every trial: 0.1-0.4 s per program (train and test step of each stage), growing
with the layers it opens, about 2.6 s of a 7-stage trial (docs/benchmarks.md).

Clearing that cache does one thing besides: stateful random kernels (tf.random.uniform and the
like, which keep a position in their stream inside the kernel) restart from the seed. No graph
we build holds one (Keras 3 draws with stateless ops seeded by SeedGenerator variables, and so
does search.cache.programs.RateDropout), and tests/test_programs.py checks that a reused program
gives every trial the values of a fresh model. So `reset_session` does what the two Keras calls
do but leaves the kernel cache alone.
"""

from __future__ import annotations

import contextlib
import gc

import keras


@contextlib.contextmanager
def _kernels_kept():
    """Inside the block, TensorFlow's request to clear its eager caches does nothing.

    Both keras.backend.clear_session() and tf.random.set_seed() end in
    pywrap_tfe.TFE_ContextClearCaches; if a TensorFlow release renames it, this does nothing
    and the caches are cleared as before (slower, not wrong)."""
    from tensorflow.python import pywrap_tfe

    clear = getattr(pywrap_tfe, "TFE_ContextClearCaches", None)
    if clear is None:
        yield
        return
    pywrap_tfe.TFE_ContextClearCaches = lambda handle: None
    try:
        yield
    finally:
        pywrap_tfe.TFE_ContextClearCaches = clear


def reset_session(seed: int | None = None, free_memory: bool = False) -> None:
    """keras.backend.clear_session() and, with a seed, keras.utils.set_random_seed(seed), keeping
    TensorFlow's instantiated functions. `free_memory`: also run Python's garbage collector."""
    with _kernels_kept():
        keras.backend.clear_session(free_memory=False)
        if seed is not None:
            keras.utils.set_random_seed(seed)
    if free_memory:
        gc.collect()

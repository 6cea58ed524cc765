"""A fresh Keras session per trial that keeps TensorFlow's compiled functions.

Every trial starts from `keras.backend.clear_session()` and `keras.utils.set_random_seed(seed)`,
so that layer names and random draws depend on the seed alone. Both also clear TensorFlow's
eager kernel cache (`tf.random.set_seed` "to reset any existing seeds"), where every tf.function
sits instantiated and optimised by Grappler, so a stage program traced once per worker
(search.cache.programs) was instantiated again in every trial. The only other effect of that
clearing, restarting stateful random kernels, touches no graph here: Keras 3 and RateDropout draw
with stateless ops. Why, the figures and the tests: docs/design.md, "Keeping compiled functions
across trials".
"""

from __future__ import annotations

import contextlib

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


def reset_session(seed: int) -> None:
    """keras.backend.clear_session() (garbage collection included) and
    keras.utils.set_random_seed(seed), keeping TensorFlow's instantiated functions."""
    with _kernels_kept():
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)

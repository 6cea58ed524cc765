"""Process-wide set-up, done once at a process's start (the CLI's `main`, a worker's entry), never
on import: TensorFlow's log level (before it starts), the Python loggers and warning filters, and
optionally TensorFlow's thread pools."""

from __future__ import annotations

import logging
import os
import warnings


def configure(search: bool = False, threads: int | None = None) -> None:
    """Quiet TensorFlow's start-up chatter (users can still set TF_CPP_MIN_LOG_LEVEL) and its
    Python logger; draw figures with matplotlib's file backend (Agg) unless MPLBACKEND says
    otherwise. With `search`, also Optuna's per-trial INFO lines (we print our own) and the
    warnings its samplers give by design here (TPE's `group` is experimental; conditional params
    fall back to independent sampling). With `threads`, TensorFlow's intra- and inter-op pools
    (before it runs any op)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("MPLBACKEND", "Agg")  # figures go to files, display or not
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if search:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message=".*independent sampl.*")
    if threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)

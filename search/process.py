"""Process-wide set-up, done once at a process's start (the CLI's `main`, a worker's entry), never
on import: TensorFlow's log level (before it starts), the Python loggers and warning filters, and
optionally TensorFlow's thread pools; and the interrupt latch (Ctrl-C remembered for the process).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager


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


_signals: list[int] = []  # the interrupts received (the latch); interrupt_latch clears it


def note_interrupt(signum: int, frame=None) -> None:
    """A signal handler: remember the interrupt, then raise KeyboardInterrupt as Python's own
    handler does. The exception alone is not enough: one raised while TensorFlow's C++ code is
    running Python (tracing a function) can be dropped, or turned into a RuntimeError by pybind11.
    The latch is what check_interrupt and the CLI's exit status rely on."""
    _signals.append(signum)
    raise KeyboardInterrupt(f"signal {signum}")


def interrupted() -> int | None:
    """The first interrupt's signal number since the latch was installed, or None."""
    return _signals[0] if _signals else None


def check_interrupt() -> None:
    """Raise KeyboardInterrupt if an interrupt was received, even one whose exception was lost:
    called before any step that must not run after a Ctrl-C (publishing final outputs)."""
    if _signals:
        raise KeyboardInterrupt(f"signal {_signals[0]} (received earlier)")


@contextmanager
def interrupt_latch() -> Iterator[None]:
    """Ctrl-C goes through note_interrupt for the block, with a latch that is fresh at its start and
    cleared at its end; then the previous handler is back. Outside the main thread (no signal
    handlers there) only the latch."""
    _signals.clear()
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, note_interrupt) if main else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
        _signals.clear()

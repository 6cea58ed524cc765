"""Train in a child process, so that every trial's memory goes back to the OS when it ends.

TensorFlow keeps the variables of every model trained in graph mode alive for the life of the
process, whatever clear_session and gc do (tensorflow/tensorflow#61791; measured here: about
170 MB per full-network trial, see search.bench_memory). A study of 50 trials in one process
therefore grows by gigabytes. With isolation the parent (which holds the Optuna trial) spawns a
fresh process per trial; the child trains and sends each epoch's logs back through a pipe, and
waits for the parent's word on pruning, so the pruner acts exactly as in-process.
Training still never imports Optuna: the child only sees a Keras callback and a pipe.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import traceback

import keras

from search.config import TrainConfig
from search.data import Data
from search.errors import DivergedError


class StopRequested(Exception):
    """The parent asked the child to stop (the trial was pruned)."""


class PipeReporter(keras.callbacks.Callback):
    """Sends every epoch's logs to the parent and stops when it answers 'stop'."""

    def __init__(self, conn):
        super().__init__()
        self.conn = conn

    def on_epoch_end(self, epoch, logs=None):
        self.conn.send(("epoch", epoch, {k: float(v) for k, v in (logs or {}).items()}))
        if self.conn.recv() == "stop":
            raise StopRequested(f"stopped at epoch {epoch}")


def _child(conn, config_dict: dict, data: Data, cache_args: dict | None, cache_depth: int) -> None:
    import os

    # TensorFlow's start-up lines would repeat once per trial; errors travel through the pipe.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        from search.cache import FeatureCache
        from search.train import train

        cache = FeatureCache(**cache_args) if cache_args is not None else None
        config = TrainConfig.from_dict(config_dict)
        result = train(config, data, callbacks=[PipeReporter(conn)], log=lambda *_: None,
                       cache=cache, cache_depth=cache_depth)
        conn.send(("done", result.val_accuracy, result.history.to_dict("list"),
                   [s.__dict__ for s in result.stages], cache and cache.summary()))
    except StopRequested:
        conn.send(("stopped",))
    except DivergedError as e:
        conn.send(("diverged", str(e)))
    except KeyboardInterrupt:
        pass
    except BaseException as e:  # report, never hang the parent
        conn.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc()[-2000:]))
    finally:
        conn.close()


class ChildFailed(RuntimeError):
    pass


def train_in_child(config: TrainConfig, data: Data, on_epoch, cache_args: dict | None,
                   cache_depth: int):
    """Run train() in a fresh process. on_epoch(epoch, logs) -> True to stop (prune).

    Returns ("done", val_accuracy, history dict, stages, cache summary) or ("stopped",);
    raises DivergedError or ChildFailed as the child reports."""
    ctx = mp.get_context("spawn")  # fork after TensorFlow has started is unsafe
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child, args=(child, config.to_dict(), data, cache_args, cache_depth),
                       daemon=True)
    # A Ctrl-C inside start() would leave a half-started child holding our stdout and stderr
    # (a caller waiting for them to close hangs). Hold SIGINT until the child is tracked; the
    # child inherits the mask, so Ctrl-C reaches only us, and the finally below ends the child.
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        proc.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    child.close()
    try:
        while True:
            try:
                msg = parent.recv()
            except EOFError:
                proc.join(10)
                raise ChildFailed(f"training process died (exit code {proc.exitcode})") from None
            if msg[0] == "epoch":
                parent.send("stop" if on_epoch(msg[1], msg[2]) else "go")
                continue
            if msg[0] == "diverged":
                raise DivergedError(msg[1])
            if msg[0] == "error":
                raise ChildFailed(msg[1])
            return msg
    finally:
        parent.close()
        if proc.is_alive():
            proc.join(5)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)

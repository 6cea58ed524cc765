"""Train in a child process, so that trials' memory goes back to the OS when the child ends.

TensorFlow keeps the variables of every model trained in graph mode alive for the life of the
process, whatever clear_session and gc do (tensorflow/tensorflow#61791; search.bench.memory
measures it, docs/benchmarks.md has the figures). A study of 50 trials in one process therefore
grows by gigabytes. With isolation the parent (which holds the Optuna trial) hands each
trial to a worker process that it replaces every few trials; the worker trains and sends each
epoch's logs back through a pipe, and waits for the parent's word on pruning, so the pruner acts
exactly as in-process.
Training still never imports Optuna: the child only sees a Keras callback and a pipe.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import traceback

import keras

from search.errors import DivergedError
from search.recipe.config import TrainConfig
from search.recipe.data import Data


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

    def on_stage_end(self, stage, best):
        self.conn.send(("stage", stage, float(best)))
        if self.conn.recv() == "stop":
            raise StopRequested(f"stopped after stage {stage}")


def _serve(conn, data: Data, cache_args: dict | None, cache_depth: int) -> None:
    """The child: trains each config the parent sends, until it sends None or goes away."""
    import os

    # TensorFlow's start-up lines would repeat once per worker; errors travel through the pipe.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        from search.cache.features import cached_stages
        from search.cache.store import FeatureCache
        from search.recipe.train import train

        cache = FeatureCache(**cache_args) if cache_args is not None else None
        stages = cached_stages(cache, cache_depth)
        while True:
            try:
                job = conn.recv()
            except EOFError:
                return
            if job is None:
                return
            before = cache.stats.copy() if cache is not None else None
            try:
                result = train(TrainConfig.from_dict(job), data, callbacks=[PipeReporter(conn)],
                               log=lambda *_: None, stages=stages)
                conn.send(("done", result.val_accuracy, result.history.to_dict("list"),
                           [s.__dict__ for s in result.stages], cache and cache.summary(before)))
            except StopRequested:
                conn.send(("stopped",))
            except DivergedError as e:
                conn.send(("diverged", str(e)))
    except KeyboardInterrupt:
        pass
    except BaseException as e:  # report, never hang the parent; this worker then ends
        try:
            conn.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc()[-2000:]))
        except OSError:
            pass
    finally:
        conn.close()


class ChildFailed(RuntimeError):
    pass


class Worker:
    """A child process that trains trial after trial, started on first use and replaced after
    `max_trials` trials (bounding TensorFlow's per-trial leak) or whenever a trial did not end
    cleanly (an error, an interrupt, a broken pipe). Reusing it saves each trial the child's
    start-up (Python, TensorFlow, the cache's maps; figures in docs/benchmarks.md).

    A trial's result does not depend on which worker ran it: train() clears Keras' session and
    seeds everything at its start (tested: identical to a fresh process per trial)."""

    def __init__(self, data: Data, cache_args: dict | None, cache_depth: int, max_trials: int = 10):
        if max_trials < 1:
            raise ValueError("max_trials must be at least 1")
        self.data, self.cache_args, self.cache_depth = data, cache_args, cache_depth
        self.max_trials = max_trials
        self.proc = self.conn = None
        self.trials = 0  # trials run by the current child
        self.started = 0  # children started, for tests and logs

    def _start(self) -> None:
        ctx = mp.get_context("spawn")  # fork after TensorFlow has started is unsafe
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(child, self.data, self.cache_args,
                                                self.cache_depth), daemon=True)
        # A Ctrl-C inside start() would leave a half-started child holding our stdout and stderr
        # (a caller waiting for them to close hangs). Hold SIGINT until the child is tracked; the
        # child inherits the mask, so Ctrl-C reaches only us, and we end the child.
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        child.close()
        self.proc, self.conn, self.trials = proc, parent, 0
        self.started += 1

    def train(self, config: TrainConfig, on_epoch, on_stage=None):
        """Train `config` in the worker. on_epoch(epoch, logs) and on_stage(stage, best val
        accuracy so far; every stage but the last) -> True to stop (prune).

        Returns ("done", val_accuracy, history dict, stages, cache summary) or ("stopped",);
        raises DivergedError or ChildFailed as the child reports."""
        if self.proc is not None and not self.proc.is_alive():  # died while idle (e.g. OOM)
            self.close(wait=False)
        if self.proc is not None and self.trials >= self.max_trials:
            self.close()
        if self.proc is None:
            self._start()
        self.trials += 1
        clean = False
        try:
            self.conn.send(config.to_dict())
            while True:
                try:
                    msg = self.conn.recv()
                except EOFError:
                    self.proc.join(10)
                    raise ChildFailed(f"training process died (exit code {self.proc.exitcode})") from None
                if msg[0] in ("epoch", "stage"):
                    hook = on_epoch if msg[0] == "epoch" else on_stage
                    self.conn.send("stop" if hook is not None and hook(msg[1], msg[2]) else "go")
                    continue
                if msg[0] == "error":
                    raise ChildFailed(msg[1])
                clean = True
                if msg[0] == "diverged":
                    raise DivergedError(msg[1])
                return msg
        finally:
            if not clean:  # mid-trial or broken: this child cannot take another trial
                self.close(wait=False)

    def close(self, wait: bool = True) -> None:
        """End the child: asked politely between trials (`wait`), terminated otherwise."""
        proc, conn, self.proc, self.conn = self.proc, self.conn, None, None
        if proc is None:
            return
        try:
            if wait and proc.is_alive():
                conn.send(None)
                proc.join(10)
        except OSError:
            pass
        finally:
            conn.close()
            if proc.is_alive():
                proc.terminate()
                proc.join(5)

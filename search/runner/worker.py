"""WorkerRunner: a TrialRunner in a reused child process, with the same `run(config, listen)`.

TensorFlow keeps the variables of every model trained in graph mode alive for the life of the
process (tensorflow/tensorflow#61791), so runs happen in a child that is replaced every
`max_runs` runs, and at once after a run that did not end cleanly. The child owns its networks
and compiled programs for its life; it sends every event (search.runner.events) through a pipe
and waits for the parent's word, so a driver prunes exactly as with a TrialRunner in process.
The child never imports a search backend.

Protocol (pickled dataclasses between this package's own processes): parent -> child
`Job(config, epoch_budget, keep)` or None (end); child -> parent events, each answered True (stop) or
False, then the outcome, or `Failed`.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import traceback
from dataclasses import dataclass
from multiprocessing import resource_tracker

from search.recipe.config import TrainConfig
from search.recipe.data import Data
from search.runner.events import EpochEnd, Failed, Keep, Listener, Outcome, RunFailed, StageEnd

STOPPED = "the search was interrupted: no trial starts after a Ctrl-C"


@dataclass(frozen=True)
class Job:
    config: dict
    epoch_budget: int | None = None
    keep: str | Keep | None = None  # where the finished run's model is saved (TrialRunner.run)


@dataclass(frozen=True)
class WorkerSpec:
    """What a child needs to build its TrialRunner: the split, the cache's arguments (None: the
    live recipe), the deepest boundary, its TensorFlow thread count (None: TensorFlow's) and
    its GPU (None: whatever TensorFlow sees; a device id: that one alone, memory growth on)."""

    data: Data
    cache_args: dict | None = None
    cache_depth: int = 0
    threads: int | None = None
    device: str | None = None


def _serve(conn, spec: WorkerSpec) -> None:
    """The child: runs each job the parent sends, until it sends None or goes away."""
    import os

    from search.process import configure

    # TensorFlow's start-up lines would repeat once per worker; errors travel through the pipe.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    if spec.device is not None:  # before TensorFlow starts in this process
        os.environ["CUDA_VISIBLE_DEVICES"] = spec.device
        os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    try:
        configure(threads=spec.threads)
        from search.cache.store import FeatureCache
        from search.runner.trial import TrialRunner

        cache = FeatureCache(**spec.cache_args) if spec.cache_args is not None else None
        runner = TrialRunner(spec.data, cache, spec.cache_depth)

        def listen(event) -> bool:
            conn.send(event)
            return bool(conn.recv())

        while True:
            try:
                job = conn.recv()
            except EOFError:
                return
            if job is None:
                return
            conn.send(runner.run(TrainConfig.from_dict(job.config), listen, job.epoch_budget,
                                 job.keep))
    except KeyboardInterrupt:
        pass
    except BaseException as e:  # report, never hang the parent; this worker then ends
        try:
            conn.send(Failed(f"{type(e).__name__}: {e}", traceback.format_exc()[-2000:]))
        except OSError:
            pass
    finally:
        conn.close()


class WorkerRunner:
    """Runs configs in a child process that is started on first use and replaced after
    `max_runs` runs (bounding TensorFlow's per-run leak) or whenever a run did not end cleanly
    (an error, an interrupt, a broken pipe). Reusing it saves each run the child's start-up and
    its networks' traces."""

    def __init__(self, spec: WorkerSpec, max_runs: int = 50):
        if max_runs < 1:
            raise ValueError("max_runs must be at least 1")
        self.spec, self.max_runs = spec, max_runs
        self.proc = self.conn = None
        self.runs = 0  # runs by the current child
        self.started = 0  # children started
        self.stopped = False  # stop(): no run starts again

    def _start(self) -> None:
        ctx = mp.get_context("spawn")  # fork after TensorFlow has started is unsafe
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(child, self.spec), daemon=True)
        # A Ctrl-C inside start() would leave a half-started child holding our stdout and stderr
        # (a caller waiting for them to close hangs), and one that kills the child before it has
        # read its arguments leaves start() writing to a pipe it holds open itself, for ever. Hold
        # SIGINT until the child is tracked; the child inherits the mask, so Ctrl-C (the
        # terminal's, or a signal to our process group) reaches only us, and we end the child.
        # multiprocessing's resource tracker unblocks SIGINT in the thread that starts it, so it
        # is started first.
        resource_tracker.ensure_running()
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        child.close()
        self.proc, self.conn, self.runs = proc, parent, 0
        self.started += 1

    def run(self, config: TrainConfig, listen: Listener = lambda event: False,
            epoch_budget: int | None = None, keep: str | Keep | None = None) -> Outcome:
        if self.stopped:
            raise RunFailed(STOPPED)
        if self.proc is not None and not self.proc.is_alive():  # died while idle (e.g. OOM)
            self.close(wait=False)
        if self.proc is not None and self.runs >= self.max_runs:
            self.close()
        if self.proc is None:
            self._start()
        self.runs += 1
        proc, conn, clean = self.proc, self.conn, False  # close() from another thread may clear them
        try:
            if self.stopped or proc is None:  # stop() came while the child was starting
                raise RunFailed(STOPPED)
            conn.send(Job(config.to_dict(), epoch_budget, keep))
            while True:
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    proc.join(10)
                    raise RunFailed(f"training process died (exit code {proc.exitcode})") from None
                if isinstance(msg, (EpochEnd, StageEnd)):
                    conn.send(bool(listen(msg)))
                    continue
                if isinstance(msg, Failed):
                    raise RunFailed(msg.message)
                clean = True
                return msg
        finally:
            if not clean and self.proc is proc:  # mid-run or broken: it cannot take another run
                self.close(wait=False)

    def stop(self) -> None:
        """End the child at once (its run fails) and refuse every later run: after a Ctrl-C,
        a thread that was about to start a trial must not start a fresh child for it."""
        self.stopped = True
        self.close(wait=False)

    def close(self, wait: bool = True) -> None:
        """End the child: asked politely between runs (`wait`), terminated otherwise."""
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

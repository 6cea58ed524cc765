"""Several runners side by side: `--jobs N` worker processes sharing one study.

`RunnerPool.run(config, listen)` takes a free runner, runs the config on it and gives it back, so
N threads of the search process (Optuna's `n_jobs`) keep N workers busy. On CPUs the cores are
split between the workers (TensorFlow's intra- and inter-op pools set per worker); with GPUs each
worker gets one (`CUDA_VISIBLE_DEVICES`, memory growth on) and the search process none.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from search.process import note_interrupt
from search.recipe.config import TrainConfig
from search.recipe.data import Data
from search.runner.events import Keep, Listener, Outcome
from search.runner.worker import WorkerRunner, WorkerSpec

MIB_PER_WORKER = 3072  # a worker on the cache at 32 px: networks, programs, batches (measured ~1.1 GiB)


def side_by_side(runner, fn: Callable, items: Iterable) -> list:
    """fn over items, as many at once as `runner` takes (a pool's workers, else one); results in
    the items' order. When one raises (a Ctrl-C's RunFailed), the calls not yet started never
    start."""
    items = list(items)
    if not items:
        return []
    n = len(runner) if isinstance(runner, RunnerPool) else 1
    with ThreadPoolExecutor(max_workers=min(n, len(items))) as ex:
        return list(ex.map(fn, items))


def gpu_count() -> int:
    """GPUs visible to this process, counted without starting TensorFlow or CUDA here:
    CUDA_VISIBLE_DEVICES when set, else `nvidia-smi -L`."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def memory_mib() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (ValueError, OSError, AttributeError):
        return None


def default_jobs(gpus: int | None = None, cores: int | None = None) -> int:
    """One worker per GPU; without GPUs, one per core (each on one thread: small per-trial
    steps leave a two-thread trial's second core half idle), at most as many as memory holds
    (MIB_PER_WORKER each) and at most 8."""
    gpus = gpu_count() if gpus is None else gpus
    if gpus:
        return gpus
    cores = cores or usable_cores()
    mem = memory_mib()
    fit = max(1, mem // MIB_PER_WORKER) if mem else cores
    return max(1, min(cores, fit, 8))


def worker_specs(spec: WorkerSpec, jobs: int, gpus: int | None = None,
                 cores: int | None = None) -> list[WorkerSpec]:
    """`jobs` copies of `spec`: on GPUs one device each, on CPUs the cores split between them."""
    gpus = gpu_count() if gpus is None else gpus
    if gpus:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = [d.strip() for d in visible.split(",")] if visible else [str(i) for i in range(gpus)]
        return [dataclasses.replace(spec, device=ids[i % len(ids)]) for i in range(jobs)]
    if jobs == 1:
        return [spec]
    threads = max(1, (cores or usable_cores()) // jobs)
    return [dataclasses.replace(spec, threads=threads) for _ in range(jobs)]


class RunnerPool:
    """Runners lent one run at a time to whichever thread asks (see the module docstring)."""

    def __init__(self, runners: list):
        self.runners = list(runners)
        self._free: queue.Queue = queue.Queue()
        for r in self.runners:
            self._free.put(r)
        self._stale: set[int] = set()  # ids of runners to end before their next run (renew)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.runners)

    def run(self, config: TrainConfig, listen: Listener = lambda event: False,
            epoch_budget: int | None = None, keep: str | Keep | None = None) -> Outcome:
        runner = self.take()
        try:
            return runner.run(config, listen, epoch_budget, keep)
        finally:
            self.give(runner)

    def take(self, block: bool = True):
        """A free runner, lent until `give`; with block=False, None when none is free."""
        try:
            runner = self._free.get(block=block)
        except queue.Empty:
            return None
        self._end_if_stale(runner)
        return runner

    def give(self, runner) -> None:
        self._end_if_stale(runner)
        self._free.put(runner)

    def renew(self) -> None:
        """Fresh workers from here on: each ends now if free, else when its run ends, and its next
        run starts a new one (what a worker grew to over the trials is freed; the pick's
        re-runs started before, search.tuning.pick_ahead, go on meanwhile)."""
        with self._lock:
            self._stale = {id(r) for r in self.runners}
        free = []
        while (runner := self.take(block=False)) is not None:
            free.append(runner)
        for runner in free:
            self._free.put(runner)

    def _end_if_stale(self, runner) -> None:
        with self._lock:
            stale = id(runner) in self._stale
            self._stale.discard(id(runner))
        if stale:
            runner.close()  # idle here: asked politely, the next run starts a fresh child

    def stop(self) -> None:
        """End every worker at once (their runs fail) and refuse later runs (WorkerRunner.stop).
        Called from a signal handler: it takes no lock, which a second Ctrl-C would deadlock on."""
        for r in self.runners:
            r.stop()

    def close(self, wait: bool = True) -> None:
        """End every worker (wait=False: at once, failing the runs they are in)."""
        for r in self.runners:
            r.close(wait=wait)


def cache_args(cache, jobs: int) -> dict | None:
    """The cache's arguments for each of `jobs` workers: its in-memory budget (--cache-mem) is
    the whole search's, split between them. An entry one worker computes is on disk for the
    others, which map it (one copy in the OS page cache), so a full budget per worker would hold
    the same entries once per worker in its own memory for little gain."""
    if cache is None:
        return None
    args = cache.args()
    return {**args, "mem_limit_mb": args["mem_limit_mb"] / max(jobs, 1)}


# Runs a worker takes before it is replaced: on the cache it keeps its networks and compiled
# programs and grows little a run; the live path grows by about 200 MiB a run (docs/benchmarks.md).
DEFAULT_RUNS = {"cache": 50, "live": 1}


def make_runner(data: Data, cache=None, cache_depth: int = 0, isolate: bool = True,
                max_runs: int | None = None, log=None, jobs: int = 1):
    """A WorkerRunner (isolate; replaced every `max_runs` runs, by default DEFAULT_RUNS), a
    RunnerPool of `jobs` of them (search.runner.pool), or a TrialRunner in this process."""
    if not isolate:
        if jobs != 1:
            raise ValueError("runs side by side need worker processes")
        from search.runner.trial import TrialRunner

        return TrialRunner(data, cache, cache_depth, log=log)
    spec = WorkerSpec(data, cache_args(cache, jobs), cache_depth)
    runs = max_runs or DEFAULT_RUNS["cache" if cache is not None else "live"]
    if jobs == 1:
        return WorkerRunner(spec, runs)
    return RunnerPool([WorkerRunner(s, runs) for s in worker_specs(spec, jobs)])


@contextmanager
def closing_on_interrupt(runner) -> Iterator:
    """`runner` for the block; Ctrl-C or SIGTERM inside it ends its workers at once (so the runs
    in them fail instead of finishing first), refuses any later run (a trial that another thread
    of `--jobs` was about to start fails at once) and then raises KeyboardInterrupt; the workers
    end when the block does. Main thread only (signal handlers)."""
    def interrupt(signum, frame):
        runner.stop()
        note_interrupt(signum)  # raises KeyboardInterrupt, and latches it for the exit status

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, interrupt)
    try:
        yield runner
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        runner.close()

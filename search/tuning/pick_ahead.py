"""The pick's re-runs started while the last trials run, on the workers they leave idle, and
then the rest of them, with no gap.

With `--jobs N`, once every trial of the search has started, a worker whose trial ends has
nothing to do until the last ones end: at the end of every study some worker idles for about half
a trial. The pick (search.tuning.pick) then re-runs the top trials and the seed recipe on further
seeds. Some of its candidates are known before the last trials end: the seed recipe, and the best
`top` - r completed trials while r trials are still to end (each can push a completed trial down
one place at most; search.tuning.pick.certain). A run depends on its config and seed alone, so
their re-runs start here, on whichever worker is idle, and the pick takes their values and kept
models instead of running them again: the same pick, sooner.

A worker counts as idle only when every trial of the search has ended or holds a worker of its
own, so a re-run never takes a worker that a trial would wait for. When the trials end, the pick
hands the rest of its re-runs to the same threads (`run_rest`): a re-run still going then is not
waited for before the others start, so no worker idles behind it. A re-run that fails here (a
stopped or dead worker) ends its thread and is left to the pick's own loop, which runs it again.
On a storage that other processes share, whose trials may still rank above, this is not used
(search.jobs).

    ahead = PickAhead(pool, trials, top, seeds, make_kept)
    ahead.runner            the pool as the trials see it: it counts the workers they hold
    ahead.trial_ended       an Optuna callback: counts ended trials, finds the certain candidates
                            (none once the last has ended: the pick takes over then)
    ahead.start()           one thread per worker, waiting for an idle one
    ahead.run_rest(trials)  the trials ended: every re-run of these candidates not yet started
                            too, and wait for all -> Ahead: the values by (trial number, i) for
                            seed + i, the Kept that holds their runs (None when none ran), and
                            which ran before the trials ended
    ahead.finish()          no re-run starts from now on; those running end first (idempotent)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial

from search.runner.events import Listener
from search.tuning.final_runs import Kept
from search.tuning.pick import certain, rerun_one


@dataclass(frozen=True)
class Ahead:
    done: dict[tuple[int, int], float]  # (trial number, i) -> val accuracy on seed + i
    kept: Kept | None  # where the runs on the first kept.seeds seeds are kept
    early: frozenset[tuple[int, int]] = frozenset()  # those started before the trials ended


class _Held:
    """The pool lent to the trials: while a trial's run holds a worker, PickAhead counts it."""

    def __init__(self, ahead: PickAhead):
        self.ahead = ahead

    def __len__(self) -> int:
        return len(self.ahead.pool)

    def run(self, config, listen: Listener = lambda event: False, epoch_budget=None, keep=None):
        ahead = self.ahead
        runner = ahead.pool.take()
        with ahead._cond:
            ahead._holding += 1
        try:
            return runner.run(config, listen, epoch_budget, keep)
        finally:
            with ahead._cond:
                ahead._holding -= 1
            ahead.pool.give(runner)


class PickAhead:
    def __init__(self, pool, trials: int, top: int, seeds: int, make_kept: Callable[[], Kept],
                 log=print, poll: float = 0.1):
        """pool: the search's RunnerPool (take/give); trials: how many this search runs;
        top, seeds: the pick's --confirm-top and --confirm-seeds; make_kept: the Kept the pick
        will use, made at the first re-run here."""
        self.pool, self.trials, self.top, self.seeds = pool, trials, top, seeds
        self.make_kept, self.log, self.poll = make_kept, log, poll
        self.runner = _Held(self)
        self._cond = threading.Condition()
        self._holding = 0  # trials' runs that hold a worker
        self._ended = 0  # trials of this search that ended (Optuna's callback)
        self._jobs: list[tuple[FrozenTrial, int]] = []  # certain re-runs, not started
        self._started: set[tuple[int, int]] = set()
        self._early: frozenset[tuple[int, int]] = frozenset()  # started before run_rest
        self._running = 0  # re-runs going now
        self._final = False  # the trials have ended: every worker is idle when free
        self._done: dict[tuple[int, int], float] = {}
        self._kept: Kept | None = None
        self._stopped = False
        self._threads: list[threading.Thread] = []

    def trial_ended(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """An Optuna callback (after the trial is stored): once fewer trials are still to end than
        there are workers, the re-runs of the candidates certain by now."""
        with self._cond:
            if self._final:  # run_rest has the jobs now
                return
            self._ended += 1
            unended = self.trials - self._ended
            if unended <= 0:  # the trials are over: the pick takes it from here
                self._jobs = []
                return
        if unended >= len(self.pool):
            return
        sure = certain(study, self.top, unended)
        with self._cond:
            self._jobs = [(t, i) for t in sure for i in range(1, self.seeds + 1)
                          if (t.number, i) not in self._started]
            self._cond.notify_all()

    def _idle(self) -> bool:
        """Every trial of the search has ended or holds a worker (under the lock)."""
        return self._final or self._ended + self._holding >= self.trials

    def start(self) -> None:
        for _ in range(len(self.pool)):
            thread = threading.Thread(target=self._work, name="pick-ahead", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _next(self):
        """The next re-run and an idle worker for it, or None once finish() is called."""
        with self._cond:
            while not self._stopped:
                if self._jobs and self._idle():
                    runner = self.pool.take(block=False)
                    if runner is not None:
                        trial, i = self._jobs.pop(0)
                        self._started.add((trial.number, i))
                        self._running += 1
                        if self._kept is None:
                            self._kept = self.make_kept()
                        return trial, i, runner, self._kept, self._final
                self._cond.wait(self.poll)
            return None

    def _work(self) -> None:
        while (job := self._next()) is not None:
            trial, i, runner, kept, after = job
            try:
                value = rerun_one(runner, trial, i, kept=kept, log=self.log,
                                  note="" if after else " (while the last trials ran)")
            except Exception as e:  # a stopped (Ctrl-C) or dead worker: this thread ends,
                # and the pick's own loop, if it comes, runs the re-run again
                self.log(f"  trial {trial.number} on seed + {i}: not run ahead ({e})")
                value = None
            finally:
                self.pool.give(runner)
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()
            if value is None:
                return
            with self._cond:
                self._done[trial.number, i] = value
                self._cond.notify_all()

    def run_rest(self, trials: list[FrozenTrial]) -> Ahead:
        """The trials have ended and `trials` are the pick's candidates: their re-runs not started
        yet start on the same threads (several at once, whatever is still going), and this
        returns once all have ended, or once no thread is left to run them (a worker failed:
        the caller runs what is missing)."""
        with self._cond:
            self._early = frozenset(self._started)
            self._final = True
            self._jobs = [(t, i) for t in trials for i in range(1, self.seeds + 1)
                          if (t.number, i) not in self._started]
            self._cond.notify_all()
            while (self._jobs or self._running) and any(t.is_alive() for t in self._threads):
                self._cond.wait(self.poll)
        return self.finish()

    def finish(self) -> Ahead:
        """No re-run starts from now on; those running end first. What ran, for the pick."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()
        with self._cond:
            return Ahead(dict(self._done), self._kept, self._early)

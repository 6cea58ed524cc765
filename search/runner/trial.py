"""TrialRunner: runs configs in this process on the networks it owns, as typed events.

It owns what a process keeps between runs: its `Networks` (one network per structure with its
compiled stage programs, and the weights bank) and its stage source (the cache, or the live
recipe). `run(config, listen)` trains one config; every epoch end and stage end goes to
`listen` as an event, whose True stops the run there; with `keep` (a path, or a `Keep` with the
least value worth keeping), a finished run's model is saved there (a .keras file, with
classes.json beside it). A run's results depend on its config alone,
not on the runs before it (tests/test_runner.py). search.runner.worker runs the same runner in a
child process; a search backend drives either through the same `run`.
"""

from __future__ import annotations

from pathlib import Path

import keras

from search.cache.features import cached_stages
from search.cache.store import FeatureCache
from search.errors import DivergedError
from search.recipe.config import TrainConfig
from search.recipe.data import Data
from search.recipe.network import Networks
from search.recipe.run_dir import save_model
from search.recipe.train import train
from search.runner.events import Diverged, EpochEnd, Finished, Keep, Listener, Outcome, StageEnd, Stopped


class StopRequested(Exception):
    """The driver asked to stop the run (a pruner's word)."""


class EventReporter(keras.callbacks.Callback):
    """Turns a run's epoch and stage ends into events for `listen`; stops where it says so."""

    def __init__(self, listen: Listener):
        super().__init__()
        self.listen, self.epochs = listen, 0
        self.stage = self.depth = 0

    def on_stage_begin(self, stage, depth):
        self.stage, self.depth = stage, depth

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1
        logs = {k: float(v) for k, v in (logs or {}).items()}
        if self.listen(EpochEnd(epoch, logs, self.stage, self.depth)):
            raise StopRequested(f"at epoch {epoch}")

    def on_stage_end(self, stage, best):
        if self.listen(StageEnd(stage, float(best))):
            raise StopRequested(f"after stage {stage}")


class TrialRunner:
    """Runs configs on one split, in this process (see the module docstring).

    cache: the frozen part's cache (None: the live recipe); cache_depth: the deepest boundary any
    config of the search reaches, so that one fill serves them all."""

    def __init__(self, data: Data, cache: FeatureCache | None = None, cache_depth: int = 0,
                 log=None):
        self.data, self.cache = data, cache
        self.networks = Networks()
        self.stages = cached_stages(cache, cache_depth)
        self.log = log or (lambda *_: None)
        self.runs = 0

    def run(self, config: TrainConfig, listen: Listener = lambda event: False,
            epoch_budget: int | None = None, keep: str | Keep | None = None) -> Outcome:
        self.runs += 1
        before = self.cache.stats.copy() if self.cache is not None else None
        reporter = EventReporter(listen)
        try:
            result = train(config, self.data, callbacks=[reporter], log=self.log,
                           stages=self.stages, epoch_budget=epoch_budget, networks=self.networks)
        except StopRequested as e:
            return Stopped(str(e), reporter.epochs)
        except DivergedError as e:
            return Diverged(str(e))
        keep = Keep(keep) if isinstance(keep, str) else keep
        kept = keep is not None and float(result.val_accuracy) >= keep.above
        if kept:
            save_model(result.model, Path(keep.path), self.data.class_names)
        return Finished(float(result.val_accuracy), result.history.to_dict("list"),
                        [s.__dict__ for s in result.stages],
                        self.cache.summary(before) if self.cache is not None else None, kept)

    def stop(self) -> None:
        """Nothing to end: a Ctrl-C reaches the run in this process itself."""

    def close(self, wait: bool = True) -> None:
        """Nothing to end in this process (the same interface as WorkerRunner)."""

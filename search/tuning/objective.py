"""The Optuna objective: trial → TrainConfig → train() → validation accuracy.

Optuna reaches training only through Keras callbacks (pruning). What a trial leaves:
  user attrs  config (the full resolved TrainConfig), stage_seconds, stage_epochs, stage_best_val,
              epochs, run_dir, and failure (why a trial was pruned for divergence or failed)
  files       <study dir>/trials/<number>/{config.yaml,command.txt,history.csv,curves.png}
  note        an optuna-dashboard note on every finished trial: outcome, and per stage the layers
              open, LR, epochs, seconds, best val accuracy and why it stopped
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import optuna
import pandas as pd
from optuna_integration import KerasPruningCallback

from search.cache.features import cached_stages
from search.errors import DivergedError
from search.files import write_atomic
from search.recipe.data import Data
from search.recipe.run_dir import write_history, write_start
from search.recipe.train import train
from search.secrets import mask_url
from search.tuning.optuna_space import suggest
from search.tuning.records import artifact_dir, stage_attrs, trial_dir
from search.tuning.space import Space

MONITOR = "val_accuracy"


class EpochLog(keras.callbacks.Callback):
    """Keeps every epoch's logs, so a pruned or failed trial still records what it ran."""

    def __init__(self):
        super().__init__()
        self.rows: list[dict] = []

    def on_epoch_end(self, epoch, logs=None):
        self.rows.append({"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}})


class StagePruning(keras.callbacks.Callback):
    """Reports the best val accuracy so far at the end of every stage but the last (step = the
    stage's index) and stops a trial the pruner prunes: trials are compared at the same point
    of their recipe, which EarlyStopping cannot shift."""

    def __init__(self, trial: optuna.Trial):
        super().__init__()
        self.trial = trial

    def on_stage_end(self, stage: int, best: float) -> None:
        if report_stage(self.trial, stage, best):
            raise optuna.TrialPruned(f"pruned after stage {stage}")


def report_stage(trial: optuna.Trial, stage: int, best: float) -> bool:
    """Report stage `stage`'s best-so-far; True when the pruner prunes the trial there."""
    if math.isfinite(best):
        trial.report(best, step=stage)
    return trial.should_prune()


def note(trial: optuna.Trial, outcome: str, stages: list[dict] | None = None,
         epochs: int | None = None) -> None:
    """An optuna-dashboard note on the trial (markdown): outcome, then a table of its stages."""
    lines = [outcome]
    if epochs is not None:
        lines.append(f"\n{epochs} epochs ran before it stopped.")
    if stages:
        lines += ["", f"{sum(s['epochs'] for s in stages)} epochs in "
                  f"{sum(s['seconds'] for s in stages):.1f} s", "",
                  "| stage | layers open | LR | epochs | seconds | best val acc | stopped by |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {s['index']} | {s['depth']} | {s['lr']:.2e} | {s['epochs']} | "
                  f"{s['seconds']:.1f} | {s['best_val_accuracy']:.4f} | "
                  f"{'early stopping' if s['stopped_early'] else 'epoch budget'} |" for s in stages]
    try:
        import optuna_dashboard

        optuna_dashboard.save_note(trial, mask_url("\n".join(lines)))  # errors may quote a URL
    except Exception as e:  # a note must never fail a trial
        print(f"  (note not saved: {type(e).__name__}: {e})")


class Objective:
    def __init__(self, space: Space, data: Data, study_dir: Path, verbose: bool = False,
                 argv: list[str] | None = None, cache=None, isolate: bool = False,
                 worker_trials: int | None = None, report: str = "epoch"):
        """isolate: train in a worker process (search.tuning.worker.Worker), replaced every
        `worker_trials` trials (default 50 on the cache, where later trials reuse the traced stage
        programs and leak little; 1 without, where a trial leaks more).
        report: what the pruner sees, "epoch" (val accuracy at every epoch, step = global
        epoch) or "stage" (best val accuracy at every stage end, step = stage index)."""
        if report not in ("epoch", "stage"):
            raise ValueError(f"report must be 'epoch' or 'stage', not {report!r}")
        self.report = report
        self.space, self.data, self.study_dir = space, data, Path(study_dir)
        self.verbose, self.argv, self.cache = verbose, argv, cache
        self.worker = None
        if isolate:
            from search.tuning.worker import Worker  # the parent never loads the cache's code

            self.worker = Worker(data, cache.args() if cache is not None else None,
                                 space.max_depth(),
                                 worker_trials or (50 if cache is not None else 1))

    def close(self) -> None:
        """End the worker process, if any (between trials; safe to call twice)."""
        if self.worker is not None:
            self.worker.close()

    def __call__(self, trial: optuna.Trial) -> float:
        values = suggest(trial, self.space)
        config = self.space.to_config(values)
        run_dir = trial_dir(self.study_dir, trial.number)
        write_start(run_dir, config, self.argv)
        trial.set_user_attr("config", config.to_dict())
        trial.set_user_attr("run_dir", str(run_dir))
        epochs = EpochLog()
        try:
            run = self._in_child if self.worker is not None else self._in_process
            value, history, stages = run(trial, config, epochs)
        except DivergedError as e:
            trial.set_user_attr("failure", f"diverged: {e}")
            self._record_partial(trial, epochs, run_dir)
            note(trial, f"**pruned: diverged**: {e}", epochs=len(epochs.rows))
            raise optuna.TrialPruned(f"diverged: {e}") from None
        except optuna.TrialPruned as e:
            self._record_partial(trial, epochs, run_dir)
            note(trial, f"**pruned** by the pruner ({e}): its val accuracy was behind earlier "
                 f"trials at the same {self.report}", epochs=len(epochs.rows))
            raise
        except Exception as e:
            trial.set_user_attr("failure", mask_url(f"{type(e).__name__}: {e}")[:1000])
            self._record_partial(trial, epochs, run_dir)
            note(trial, f"**failed**: {type(e).__name__}: {e}"[:1000], epochs=len(epochs.rows))
            raise
        for attr, values in stage_attrs(stages).items():
            trial.set_user_attr(attr, values)
        trial.set_user_attr("epochs", int(len(history)))
        write_history(run_dir, history)
        if not math.isfinite(value):
            trial.set_user_attr("failure", "no finite validation accuracy")
            note(trial, "**pruned**: no finite validation accuracy", stages=stages)
            raise optuna.TrialPruned("no finite validation accuracy")
        note(trial, f"**complete**: best val accuracy {value:.4f}", stages=stages)
        self._upload(trial, run_dir)
        return value

    def _upload(self, trial: optuna.Trial, run_dir: Path) -> None:
        """The trial's curves and history as Optuna artifacts (while it runs: Optuna attaches
        files only to a running trial), for optuna-dashboard --artifact-dir."""
        from optuna.artifacts import FileSystemArtifactStore, upload_artifact

        store_dir = artifact_dir(self.study_dir)
        store_dir.mkdir(parents=True, exist_ok=True)
        store = FileSystemArtifactStore(str(store_dir))
        for name in ("curves.png", "history.csv"):
            if (run_dir / name).is_file():
                upload_artifact(artifact_store=store, file_path=str(run_dir / name),
                                study_or_trial=trial)

    def _in_process(self, trial: optuna.Trial, config, epochs: EpochLog):
        log = print if self.verbose else (lambda *_: None)
        before = self.cache.stats.copy() if self.cache is not None else None
        try:
            pruning = (StagePruning(trial) if self.report == "stage"
                       else KerasPruningCallback(trial, MONITOR))
            result = train(config, self.data, callbacks=[epochs, pruning],
                           log=log, stages=cached_stages(self.cache, self.space.max_depth()))
        finally:
            if self.cache is not None:
                trial.set_user_attr("cache", self.cache.summary(before))
        return float(result.val_accuracy), result.history, [s.__dict__ for s in result.stages]

    def _in_child(self, trial: optuna.Trial, config, epochs: EpochLog):
        where = {}

        def on_epoch(epoch: int, logs: dict) -> bool:
            epochs.on_epoch_end(epoch, logs)
            if self.report != "epoch":
                return False
            where["at"] = f"at epoch {epoch}"
            if MONITOR in logs:
                trial.report(logs[MONITOR], step=epoch)
            return trial.should_prune()

        def on_stage(stage: int, best: float) -> bool:
            where["at"] = f"after stage {stage}"
            return self.report == "stage" and report_stage(trial, stage, best)

        msg = self.worker.train(config, on_epoch, on_stage)
        if msg[0] == "stopped":
            raise optuna.TrialPruned(f"pruned {where.get('at', '')}")
        _, value, history, stages, cache_summary = msg
        if cache_summary is not None:
            trial.set_user_attr("cache", cache_summary)
        return float(value), pd.DataFrame(history), stages

    @staticmethod
    def _record_partial(trial: optuna.Trial, epochs: EpochLog, run_dir: Path) -> None:
        trial.set_user_attr("epochs", len(epochs.rows))
        if epochs.rows:  # no stage columns yet, so a table without the curves plot
            write_atomic(run_dir / "history.csv", pd.DataFrame(epochs.rows).to_csv(index=False))

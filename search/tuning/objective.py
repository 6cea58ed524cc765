"""The Optuna objective: trial → TrainConfig → a runner's run → validation accuracy.

Optuna reaches training only through the runner's events (search.runner.events), answered by one
listener whatever runs the trial (this process or a worker): at every epoch end (the per-epoch
pruners) or every stage end (the stage pruners) it reports to the trial and asks the pruner, as
optuna-integration's KerasPruningCallback does, for both units. What a trial leaves:
  user attrs  config (the full resolved TrainConfig), stage_seconds, stage_epochs, stage_best_val,
              epochs, run_dir, waited_s (before it was drawn), and failure (why a trial was
              pruned for divergence or failed)
  files       <study dir>/trials/<number>/{config.yaml,command.txt,history.csv,curves.png}, and
              model.keras while the trial may be used by the final step (keep_top;
              search.tuning.trial_models: user attr "model")
  note        an optuna-dashboard note on every finished trial: outcome, and per stage the layers
              open, LR, epochs, seconds, best val accuracy and why it stopped
"""

from __future__ import annotations

import math
import threading
from datetime import datetime
from pathlib import Path

import optuna
import pandas as pd

from search.files import write_atomic
from search.recipe.run_dir import write_history, write_start
from search.runner.events import Diverged, EpochEnd, StageEnd, Stopped
from search.secrets import scrub
from search.tuning import trial_models
from search.tuning.in_order import PARAMS_SET, WAITED
from search.tuning.optuna_space import suggest
from search.tuning.pruning import STAGE_ENDS
from search.tuning.records import artifact_dir, stage_attrs, trial_dir
from search.tuning.space import Space

MONITOR = "val_accuracy"


def note(trial: optuna.Trial, outcome: str, stages: list[dict] | None = None,
         epochs: int | None = None, secrets: tuple[str, ...] = ()) -> None:
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

        optuna_dashboard.save_note(trial, scrub("\n".join(lines), *secrets))  # errors may quote it
    except Exception as e:  # a note must never fail a trial
        print(f"  (note not saved: {type(e).__name__}: {e})")
class Objective:
    def __init__(self, space: Space, runner, study_dir: Path, argv: list[str] | None = None,
                 report: str = "epoch", secrets: tuple[str, ...] = (), watch=None,
                 keep_top: int = 0):
        """runner: what trains (search.runner: a TrialRunner in this process or a WorkerRunner).
        report: when the pruner is asked, "epoch" (at every epoch) or "stage" (at every stage
        end, search.tuning.pruning); either way every epoch's val accuracy is reported.
        watch: told of each trial's start and epochs (search.tracking.SearchCallback's
        trial_started and epoch_ended), or None.
        keep_top: a trial keeps its model while it is among this many best (and the seed recipe
        always), for the final step to take (search.tuning.trial_models); 0: none is kept.
        `trial_finished` (an Optuna callback) deletes those that fall out."""
        if report not in ("epoch", "stage"):
            raise ValueError(f"report must be 'epoch' or 'stage', not {report!r}")
        self.space, self.runner, self.study_dir = space, runner, Path(study_dir)
        self.argv, self.report = argv, report
        self.secrets = secrets  # storage URLs whose passwords no note or attribute may hold
        self.watch = watch
        self.keep_top = keep_top
        self._dropping = threading.Lock()  # with --jobs, trials end in several threads

    def listener(self, trial: optuna.Trial, rows: list[dict]):
        """The one pruning path: every event of the run, in this process or from a worker.
        Every epoch's val accuracy is reported (step = global epoch: the dashboard's curve);
        with report "stage" the pruner is asked at stage ends, which it reads from the trial's
        `stage_ends` attribute (search.tuning.pruning)."""
        ends: dict[str, float] = {}

        def listen(event) -> bool:
            if isinstance(event, EpochEnd):
                rows.append({"epoch": event.epoch, "stage": event.stage, "depth": event.depth,
                             **event.logs})
                if self.watch is not None:
                    self.watch.epoch_ended(trial.number, event)
                if MONITOR in event.logs and math.isfinite(event.logs[MONITOR]):
                    trial.report(event.logs[MONITOR], step=event.epoch)
                return self.report == "epoch" and trial.should_prune()
            if isinstance(event, StageEnd) and self.report == "stage":
                ends[str(event.stage)] = event.best
                trial.set_user_attr(STAGE_ENDS, dict(ends))
                return trial.should_prune()
            return False
        return listen

    def __call__(self, trial: optuna.Trial) -> float:
        # the seconds between the trial's creation and now: its wait for its in-order view
        # (search.tuning.in_order); the line and report show how long it trained, without it
        waited = (datetime.now() - trial.datetime_start).total_seconds()
        trial.set_user_attr(WAITED, round(waited, 1))
        values = suggest(trial, self.space)
        config = self.space.to_config(values)
        run_dir = trial_dir(self.study_dir, trial.number)
        write_start(run_dir, config, self.argv)
        trial.set_user_attr(PARAMS_SET, config.to_dict())
        trial.set_user_attr("run_dir", str(run_dir))
        if self.report == "stage":
            trial.set_user_attr(STAGE_ENDS, {})  # marks this trial's intermediate values per epoch
        if self.watch is not None:
            self.watch.trial_started(trial.number, values)
        rows: list[dict] = []
        try:
            outcome = self.runner.run(config, self.listener(trial, rows),
                                      keep=trial_models.trial_keep(trial, run_dir, self.keep_top))
        except Exception as e:
            why = scrub(f"{type(e).__name__}: {e}", *self.secrets)[:1000]
            trial.set_user_attr("failure", why)
            self._record_partial(trial, rows, run_dir)
            note(trial, f"**failed**: {why}", epochs=len(rows), secrets=self.secrets)
            raise
        if isinstance(outcome, Diverged):
            trial.set_user_attr("failure", f"diverged: {outcome.message}")
            self._record_partial(trial, rows, run_dir)
            note(trial, f"**pruned: diverged**: {outcome.message}", epochs=len(rows))
            raise optuna.TrialPruned(f"diverged: {outcome.message}")
        if isinstance(outcome, Stopped):
            trial.set_user_attr("pruned", f"by the pruner {outcome.at}")
            self._record_partial(trial, rows, run_dir)
            note(trial, f"**pruned** by the pruner ({outcome.at}): its val accuracy was behind "
                 f"earlier trials at the same {self.report}", epochs=len(rows))
            raise optuna.TrialPruned(f"pruned {outcome.at}")
        if outcome.cache is not None:
            trial.set_user_attr("cache", outcome.cache)
        for attr, v in stage_attrs(outcome.stages).items():
            trial.set_user_attr(attr, v)
        history = pd.DataFrame(outcome.history)
        trial.set_user_attr("epochs", int(len(history)))
        write_history(run_dir, history)
        if not math.isfinite(outcome.value):
            trial.set_user_attr("failure", "no finite validation accuracy")
            note(trial, "**pruned**: no finite validation accuracy", stages=outcome.stages)
            raise optuna.TrialPruned("no finite validation accuracy")
        note(trial, f"**complete**: best val accuracy {outcome.value:.4f}", stages=outcome.stages)
        self._upload(trial, run_dir)
        if outcome.kept:
            trial_models.record(trial, run_dir)
        return outcome.value

    def trial_finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """An Optuna callback: the kept models of trials no longer among the top deleted."""
        if self.keep_top:
            with self._dropping:
                trial_models.drop_outside(study, self.study_dir, self.keep_top)

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

    @staticmethod
    def _record_partial(trial: optuna.Trial, rows: list[dict], run_dir: Path) -> None:
        trial.set_user_attr("epochs", len(rows))
        if rows:
            write_atomic(run_dir / "history.csv", pd.DataFrame(rows).to_csv(index=False))

"""Runs whose model is kept: the pick's re-runs and the retrains, on the search's own workers.

After the trials, the top candidates are re-run on further seeds (search.tuning.pick) and the
winner is retrained on seeds config.seed .. +n-1 and tested (search.tuning.retrain). Both are the
same run: a config and a seed on the search's runner, on the trials' cache. So each such run
keeps its folder (config.yaml, command.txt, history.csv, curves.png, metrics.json and the model,
model.keras), and a retrain reuses the pick's run of the same config and seed instead of training
it again; the trials' own runs (their seed) are reused the same way where a trial kept its model
(search.tuning.trial_models). The runs go side by side, one per worker of `--jobs`.

    run_and_keep(runner, config, run_dir)      one run, its folder written; None if it did not finish
    run_all(plans, runner, log)                several, side by side, in order of the plans
    Kept(folder, seeds)                        the pick's kept runs under folder, by (trial, seed),
                                               and the trials' own (Kept.add)
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from search.files import write_json
from search.recipe.config import TrainConfig
from search.recipe.run_dir import write_history, write_start
from search.runner.events import Finished, RunFailed
from search.runner.pool import side_by_side

MODEL = "model.keras"
CLASSES = "classes.json"  # beside the model (search.recipe.run_dir.save_model)


@dataclass(frozen=True)
class FinalRun:
    seed: int
    run_dir: Path  # its folder; the model is run_dir / MODEL until it is scored
    val_accuracy: float
    seconds: float
    reused: str | None = None  # not trained again: "pick" (the pick's run) or "trial" (its own)

    @property
    def model(self) -> Path:
        return self.run_dir / MODEL

    def drop_model(self) -> None:
        """The model and its classes.json gone (about 90 MiB); the folder keeps the rest."""
        self.model.unlink(missing_ok=True)
        self.model.with_name(CLASSES).unlink(missing_ok=True)


def run_and_keep(runner, config: TrainConfig, run_dir: Path) -> FinalRun | None:
    """Train `config` on `runner` with its model kept in `run_dir`, and write the folder around
    it. None when the run did not finish (it diverged): no metrics.json, nothing to reuse."""
    write_start(run_dir, config)
    t0 = time.perf_counter()
    outcome = runner.run(config, keep=str(run_dir / MODEL))
    seconds = time.perf_counter() - t0
    if not isinstance(outcome, Finished):
        return None
    import pandas as pd

    write_history(run_dir, pd.DataFrame(outcome.history))
    write_json(run_dir / "metrics.json", {"val_accuracy": outcome.value,
                                          "seconds": round(seconds, 1), "stages": outcome.stages})
    return FinalRun(config.seed, run_dir, outcome.value, seconds)


@dataclass(frozen=True)
class Plan:
    label: str  # "best", "seed_recipe"
    config: TrainConfig
    run_dir: Path
    line: str  # what is printed when it starts


def run_all(plans: list[Plan], runner, log=print) -> list[FinalRun]:
    """Every plan on `runner`, as many at once as it has workers; results in the plans' order.
    A run that does not finish is an error: a retrain has no fallback."""
    def one(plan: Plan) -> FinalRun:
        log(plan.line)
        run = run_and_keep(runner, plan.config, plan.run_dir)
        if run is None:
            raise RunFailed(f"{plan.label} with seed {plan.config.seed} diverged in the retrain "
                            "(a non-finite loss); lower its learning rates or retrain again.")
        return run

    return side_by_side(runner, one, plans)


def _link_or_copy(src: Path, dst: Path) -> None:
    """A second name for `src` (a copy where the disk has no hard links): unlike a rename, it
    holds the file even when another process removes `src` the moment after."""
    try:
        os.link(src, dst)
    except FileNotFoundError:
        raise
    except OSError:
        shutil.copy2(src, dst)


class Kept:
    """The pick's kept runs, in trial_<number>_seed_<seed>/ under `folder`, by (trial number,
    seed): those on a trial's first `seeds` further seeds, which a retrain on `seeds` + 1 seeds
    would train again. `run` trains one and keeps it; `add` puts a trial's own run in (its folder
    under trials/ stays: its files are copied, its model moved, when taken); `take` moves one into
    a retrain's folder (copied when it was taken before: the winner may be the seed recipe
    itself)."""

    def __init__(self, folder: Path, seeds: int):
        self.folder = folder
        self.seeds = seeds
        self.runs: dict[tuple[int, int], FinalRun] = {}
        self._taken: dict[tuple[int, int], Path] = {}

    def run(self, runner, config: TrainConfig, number: int) -> FinalRun | None:
        """Trial `number`'s config (on its own seed) run on `runner` and kept; None when it did not
        finish."""
        run = run_and_keep(runner, config, self.folder / f"trial_{number}_seed_{config.seed}")
        if run is not None:
            self.runs[number, config.seed] = run
        return run

    def add(self, number: int, run: FinalRun) -> None:
        """Trial `number`'s own run (on its seed), its model kept in its trial folder."""
        self.runs[number, run.seed] = replace(run, reused="trial")

    def __contains__(self, key: tuple[int, int]) -> bool:
        return key in self.runs

    def take(self, key: tuple[int, int], run_dir: Path) -> FinalRun | None:
        """The run `key`, now in `run_dir`; None when a trial's model is gone (another
        `finalize` on the same study took it first): the caller trains it instead."""
        run = self.runs[key]
        if key in self._taken:
            shutil.copytree(self._taken[key], run_dir)
        elif run.reused == "trial":  # the trial's folder stays whole, but for its model
            model = run_dir / MODEL
            try:
                shutil.copytree(run.run_dir, run_dir,
                                ignore=shutil.ignore_patterns(MODEL, CLASSES))
                _link_or_copy(run.model, model)
            except FileNotFoundError:
                shutil.rmtree(run_dir, ignore_errors=True)
                del self.runs[key]
                return None
            run.drop_model()
            write_json(run_dir / "metrics.json", {"val_accuracy": run.val_accuracy,
                                                  "seconds": round(run.seconds, 1),
                                                  "trial": key[0]})
            self._taken[key] = run_dir
        else:
            shutil.move(run.run_dir, run_dir)
            self._taken[key] = run_dir
        return replace(run, run_dir=run_dir, reused=run.reused or "pick")

    def discard_models(self) -> None:
        """The models no retrain took (each about 90 MiB); their folders stay, for the record."""
        for key, run in self.runs.items():
            if key not in self._taken:
                run.drop_model()

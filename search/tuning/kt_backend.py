"""`--backend keras-tuner`: the same space file and training code (cache included), driven by
KerasTuner's Hyperband, Bayesian optimisation or random search.

KerasTuner sees a subclass of its tuner whose run_trial maps the trial's hyperparameters onto the
space, runs the config on the same runner as the Optuna backend (a worker process by default) and
returns the best val accuracy; Hyperband's `tuner/epochs` becomes the run's epoch budget (each
bracket retrains from scratch, since a staged recipe has no single model to resume). Files:
KerasTuner's own state in <study dir>/keras_tuner/ (rerunning resumes it), each trial's folder
in <study dir>/trials/<NNNN>/ as with Optuna, and <study dir>/report/trials.csv with Optuna's column names.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import keras_tuner as kt
import pandas as pd

from search.errors import UserError
from search.files import write_atomic
from search.recipe.run_dir import write_history, write_start
from search.runner.events import Diverged
from search.tuning.records import STAGE_ATTRS, stage_attrs, trial_dir
from search.tuning.space import Param, Space

TUNERS = ("hyperband", "bayesian", "random")


def _declare(hp: kt.HyperParameters, name: str, p: Param) -> None:
    sampling = "log" if p.log else "linear"
    if p.type == "categorical":
        hp.Choice(name, list(p.choices))
    elif p.type == "int":
        hp.Int(name, int(p.low), int(p.high), step=int(p.step or 1), sampling=sampling)
    else:
        hp.Float(name, float(p.low), float(p.high), step=p.step, sampling=sampling)


def hyperparameters(space: Space) -> kt.HyperParameters:
    """Every name a trial may use; stage LRs beyond a trial's depth are drawn and ignored."""
    hp = kt.HyperParameters()
    for p in space.params:
        if not p.per_stage:
            _declare(hp, p.name, p)
    if space.stage_param is not None:
        for name in space.stage_names(space.max_stages()):
            _declare(hp, name, space.stage_param)
    return hp


def values_of(hp: kt.HyperParameters, space: Space) -> dict:
    """The trial's values for this space, only the stage LRs its depth opens."""
    values = {p.name: hp.get(p.name) for p in space.params if not p.per_stage}
    values.update({n: hp.get(n) for n in space.stage_names(space.stage_count(values))})
    return values


class SearchDone(Exception):
    """This call's trials are done (their count, or the epoch budget): ends tuner.search()."""


def _save_state(obj, fname: str) -> None:
    """A KerasTuner object's state written whole: a temporary name, then a rename (KerasTuner's
    own `Stateful.save` writes in place, so a kill mid-write left a truncated file that no
    resume could read)."""
    write_atomic(Path(fname), json.dumps(obj.get_state()))


class SearchTuner(kt.Tuner):
    """KerasTuner's Tuner over one of three oracles (below). run_trial maps the trial's
    hyperparameters onto the space and runs the config on the runner (a worker process by
    default, as with Optuna), so KerasTuner's per-tuner classes (which differ only in their
    oracle and, for Hyperband, in how they build and resume a Keras model) add nothing;
    `pre_create_trial` ends the search once this call ran its trials or spent its epochs; its
    state is written atomically."""

    def __init__(self, *args, space: Space, runner, study_dir: Path, new_trials: int,
                 epoch_budget: int | None = None, log=print, **kwargs):
        super().__init__(*args, **kwargs)
        self.space, self.runner, self.study_dir = space, runner, Path(study_dir)
        self.new_trials, self.epoch_budget, self.log = new_trials, epoch_budget, log
        self.ran = self.epochs_used = 0

    def pre_create_trial(self):
        spent = self.epoch_budget is not None and self.epochs_used >= self.epoch_budget
        if self.ran >= self.new_trials or spent:
            raise SearchDone

    def run_trial(self, trial, *args, **kwargs):
        self.ran += 1
        number = int(trial.trial_id)
        values = values_of(trial.hyperparameters, self.space)
        config = self.space.to_config(values)
        run_dir = trial_dir(self.study_dir, number)
        write_start(run_dir, config)
        budget = trial.hyperparameters.values.get("tuner/epochs")  # Hyperband's resource
        record = {"number": number, "params": values, "budget": budget,
                  "datetime_start": time.strftime("%Y-%m-%d %H:%M:%S")}
        t0 = time.perf_counter()
        try:
            outcome = self.runner.run(config, epoch_budget=budget)
        except Exception as e:  # recorded, so that a search whose trials all failed says so
            record.update(state="FAIL", failure=f"{type(e).__name__}: {e}"[:1000])
            _write_record(run_dir, record, t0)
            raise kt.errors.FailedTrialError(str(e)[:300]) from None
        if isinstance(outcome, Diverged):
            record.update(state="FAIL", failure=f"diverged: {outcome.message}")
            _write_record(run_dir, record, t0)
            raise kt.errors.FailedTrialError(outcome.message) from None
        history = pd.DataFrame(outcome.history)
        write_history(run_dir, history)
        record.update(state="COMPLETE", value=outcome.value, epochs=len(history),
                      **stage_attrs(outcome.stages))
        _write_record(run_dir, record, t0)
        self.epochs_used += len(history)
        self.log(f"trial {number:>3}  keras-tuner  value {outcome.value:.4f}  "
                 f"{record['seconds']:6.1f}s  {len(history)} epochs"
                 + (f" (budget {budget})" if budget else "") + f"  {values}")
        return {"val_accuracy": outcome.value}

    def save(self):
        self.oracle.save()
        _save_state(self, self._get_tuner_fname())


class _AtomicOracle:
    """KerasTuner's oracle, its state and its trials' files written atomically."""

    def save(self):
        _save_state(self, self._get_oracle_fname())

    def _save_trial(self, trial):  # the oracle's hook for a trial's file (oracle.py)
        _save_state(trial, os.path.join(self._get_trial_dir(trial.trial_id), "trial.json"))


class HyperbandOracle(_AtomicOracle, kt.oracles.HyperbandOracle):
    pass


class BayesianOracle(_AtomicOracle, kt.oracles.BayesianOptimizationOracle):
    pass


class RandomOracle(_AtomicOracle, kt.oracles.RandomSearchOracle):
    pass


ORACLES = {"hyperband": HyperbandOracle, "bayesian": BayesianOracle, "random": RandomOracle}


def make_tuner(kind: str, space: Space, runner, study_dir: Path, new_trials: int,
               epoch_budget: int | None = None, log=print, max_failures: int = 5):
    """A KerasTuner tuner of `kind` over `space` that runs `new_trials` more trials (or stops
    once `epoch_budget` epochs are trained) when its `search()` is called through `search`."""
    kwargs = dict(objective=kt.Objective("val_accuracy", "max"),
                  hyperparameters=hyperparameters(space), tune_new_entries=False,
                  seed=space.base.seed, max_consecutive_failed_trials=max_failures or 10**9)
    if kind == "hyperband":
        kwargs.update(max_epochs=space.max_epochs(), factor=3)
    else:  # no total: this call's count is new_trials (pre_create_trial), however many ran before
        kwargs["max_trials"] = None
    return SearchTuner(oracle=ORACLES[kind](**kwargs), space=space, runner=runner,
                       study_dir=study_dir, new_trials=new_trials, epoch_budget=epoch_budget,
                       log=log, directory=str(study_dir), project_name="keras_tuner",
                       overwrite=False)


def search(tuner) -> str | None:
    """Run the tuner until its oracle stops or this call's trials (or epochs) are done. Returns
    why it stopped early (KerasTuner's limit of failures in a row), else None."""
    try:
        tuner.search(verbose=0)
    except SearchDone:
        pass
    except RuntimeError as e:  # KerasTuner: "Number of consecutive failures exceeded the limit"
        if "consecutive failures" not in str(e):
            raise
        limit = tuner.oracle.max_consecutive_failed_trials
        return f"the last trials failed in a row (--max-failures {limit})"
    return None


def _identity(space: Space, data: dict) -> dict:
    return {"data": data, "base_config": space.base.to_dict(),
            "params": {p.name: repr(p) for p in space.params}}


def check_identity(study_dir: Path, space: Space, data: dict) -> None:
    """Refuse to resume a KerasTuner search on another data source, space or base config."""
    f = Path(study_dir) / "keras_tuner" / "identity.json"
    if not f.is_file():
        return
    try:
        stored = json.loads(f.read_text())
    except (ValueError, OSError):
        raise UserError(f"{f} is not readable JSON; delete the study's folder to start afresh, or "
                        "pass a new --study-name.") from None
    mine = _identity(space, data)
    for key, what in (("data", "data"), ("params", "space"), ("base_config", "base config")):
        if stored.get(key) != mine[key]:
            raise UserError(f"the KerasTuner search in {Path(study_dir)} was started with another "
                            f"{what}; pass the data, space and flags it was started with, or a new "
                            "--study-name.")


def write_identity(study_dir: Path, space: Space, data: dict) -> None:
    write_atomic(Path(study_dir) / "keras_tuner" / "identity.json",
                 json.dumps(_identity(space, data), indent=1, default=str))


def _write_record(run_dir: Path, record: dict, t0: float) -> None:
    record["seconds"] = round(time.perf_counter() - t0, 1)
    record["datetime_complete"] = time.strftime("%Y-%m-%d %H:%M:%S")
    write_atomic(run_dir / "record.json", json.dumps(record, indent=1, default=float))


def trials_table(study_dir: Path) -> pd.DataFrame:
    """The KerasTuner trials with the columns of search.report.trials_table."""
    rows = []
    for r in records(study_dir):
        row = {"number": r["number"], "value": r.get("value"), "state": r["state"],
               "datetime_start": r["datetime_start"], "datetime_complete": r["datetime_complete"],
               "seconds": r["seconds"], **{f"params_{k}": v for k, v in r["params"].items()},
               "user_attrs_epochs": r.get("epochs"), "user_attrs_budget": r.get("budget"),
               "user_attrs_failure": r.get("failure")}
        for attr in STAGE_ATTRS:
            for k, v in enumerate(r.get(attr, [])):
                row[f"stage_{k}_{attr.removeprefix('stage_')}"] = v
        rows.append(row)
    return pd.DataFrame(rows)


def records(study_dir: Path) -> list[dict]:
    return [json.loads(f.read_text())
            for f in sorted((Path(study_dir) / "trials").glob("*/record.json"))]


def best(study_dir: Path) -> dict | None:
    """The completed trial with the highest val accuracy (its record), or None."""
    done = [r for r in records(study_dir) if r["state"] == "COMPLETE"]
    return max(done, key=lambda r: r["value"]) if done else None


def write_table(study_dir: Path) -> Path:
    out = Path(study_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "trials.csv", trials_table(study_dir).to_csv(index=False))
    return out / "trials.csv"

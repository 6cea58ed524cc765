"""The trials' own models, kept for the final step while they may be used there.

The final step (search.tuning.pick, then search.tuning.retrain) re-runs the top trials and the
seed recipe on further seeds and retrains the winner and the seed recipe on seeds config.seed ..:
seed config.seed is the trial itself, and a run depends on its config alone (tests/test_runner.py),
so a retrain on it would give the trial's own model again. A trial therefore keeps its model in
its folder (trials/<number>/model.keras) when it may still be a candidate, and the final step
takes it instead of training it again:

    trial_keep(trial, run_dir, top)       the Keep for a trial's run: the seed recipe always; any
                                          other only if it beats the top-th best value so far
                                          (whatever ends later only raises that bar)
    record(trial, run_dir)                after a run that kept its model: the file's SHA-256 on
                                          the trial (user attr "model")
    drop_outside(study, study_dir, top)   after each trial: models of trials no longer candidates
                                          deleted (about 90 MiB each)
    add_to(kept, study, study_dir)        the candidates' models, checked against their hash, put
                                          in the final step's Kept

A model is found through the study, so a `finalize` on the machine that ran the trials takes them
too; on another machine (a shared PostgreSQL study) the file is not there, and the run is trained.
"""

from __future__ import annotations

import math
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.cache.store import file_hash
from search.errors import UserError
from search.recipe.config import TrainConfig
from search.runner.events import Keep
from search.tuning.final_runs import CLASSES, MODEL, FinalRun, Kept
from search.tuning.pick import candidates
from search.tuning.records import trial_dir

# {"sha256": the kept file's (search.cache.store.file_hash)}; the file is <trial folder>/model.keras
ATTR = "model"


def trial_keep(trial: optuna.Trial, run_dir: Path, top: int) -> Keep | None:
    """Where the trial's model goes, and the least value for which it is kept (top < 1: never)."""
    if top < 1:
        return None
    above = -math.inf
    if not trial.user_attrs.get("seed_recipe"):
        done = sorted((t.value for t in trial.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE,))), reverse=True)
        if len(done) >= top:
            above = done[top - 1]
    return Keep(str(run_dir / MODEL), above)


def record(trial: optuna.Trial, run_dir: Path) -> None:
    trial.set_user_attr(ATTR, {"sha256": file_hash(run_dir / MODEL)})


def _path(study_dir: Path, t: FrozenTrial) -> Path | None:
    """The trial's kept model, when it has one still there. Its place is the trial's folder,
    never a path the study names, and a link out of the study's folder is not followed."""
    if not isinstance(t.user_attrs.get(ATTR), dict):
        return None
    try:
        path = trial_dir(study_dir, t.number) / MODEL
        return path if path.is_file() and not path.is_symlink() else None
    except UserError:  # a planted link: the model is trained again instead
        return None


def drop_outside(study: optuna.Study, study_dir: Path, top: int) -> None:
    """Delete the kept models of completed trials that are no longer among the top `top` nor
    the seed recipe (search.tuning.pick.candidates)."""
    keep = {t.number for t in candidates(study, top)}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.number in keep:
            continue
        path = _path(study_dir, t)
        if path is not None:
            path.unlink(missing_ok=True)
            path.with_name(CLASSES).unlink(missing_ok=True)


def add_to(kept: Kept, study: optuna.Study, study_dir: Path) -> list[int]:
    """Every completed trial's kept model that is still there and matches its hash, into `kept`
    as that trial's run on its own seed. Returns their numbers."""
    added = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        path = _path(study_dir, t)
        try:
            if path is None or file_hash(path) != t.user_attrs[ATTR].get("sha256"):
                continue
        except FileNotFoundError:  # taken the moment before by another finalize
            continue
        config = TrainConfig.from_dict(t.user_attrs["config"], source=f"trial {t.number}")
        seconds = float(sum(t.user_attrs.get("stage_seconds", [])))
        kept.add(t.number, FinalRun(config.seed, path.parent, float(t.value), seconds))
        added.append(t.number)
    return added

"""The Optuna study: samplers, pruners, resume checks, the seed trial, the run loop, and the best trial's
retrain (search.tuning.retrain does the backend-neutral part)."""

from __future__ import annotations

import os
import shlex
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.errors import SearchFailed, UserError
from search.process import check_interrupt
from search.recipe.config import TrainConfig
from search.recipe.data import Data
from search.secrets import MASK, safe_url
from search.tuning import identity
from search.tuning.in_order import WAITED, InOrderSampler
from search.tuning.optuna_space import all_distributions
from search.tuning.prior import PriorSampler
from search.tuning.pruning import StageEndPruner
from search.tuning.space import Space
from search.tuning.storage import open_storage

SAMPLERS = ("tpe", "prior", "random", "cmaes", "qmc")
IN_ORDER = ("tpe", "prior", "random")  # samplers that draw a trial from its view alone: CMA-ES
# and QMC keep their state in the study they are given, which in order is a trial's own view
METRIC = "val_accuracy"  # the objective: the best validation accuracy of a trial's run
PRUNERS = ("stage", "stage-late", "stage-median", "median", "hyperband", "sha", "none")


def make_sampler(name: str, seed: int, concurrent: bool = False,
                 prior: dict | None = None, lag: int = 0,
                 start: int = 0) -> optuna.samplers.BaseSampler:
    """`concurrent`: trials run side by side (--jobs, or workers on a shared storage), so TPE
    treats the running ones as if they had scored badly (its constant liar) rather than drawing
    the same region again while they run. `prior`: the seed recipe's values (`prior` only).
    `lag` > 0: trials side by side in this process, each drawn in order from a fixed view of the
    trials `lag` before it (search.tuning.in_order), so the same seed gives the same study."""
    if lag:
        return InOrderSampler(lambda s: make_sampler(name, s, False, prior), seed, lag, start)
    if name == "tpe":  # multivariate + group: models the conditional stage LRs jointly
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                          constant_liar=concurrent)
    if name == "prior":  # around the seed recipe and the incumbent, and TPE (search.tuning.prior)
        return PriorSampler(prior or {}, make_sampler("tpe", seed, concurrent), seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":  # categorical/conditional params fall back to random sampling
        return optuna.samplers.CmaEsSampler(seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed)
    raise UserError(f"unknown sampler '{name}'; use one of {', '.join(SAMPLERS)}.")


def make_pruner(name: str, max_epochs: int, lag: int = 0) -> optuna.pruners.BasePruner:
    """`lag`: the stage pruners judge trial k against trials 0 .. k-lag only (in-order --jobs)."""
    if name == "stage":  # successive halving on stage ends: after stages 1 and 2, a trial goes
        # on only if in the top half of every trial that reached that stage, pruned ones included.
        # Stage 0 (the head alone) is no rung: trials that differ in fine-tuning look alike there.
        return StageEndPruner("halving", reduction_factor=2, first_stage=1, lag=lag)
    if name == "stage-late":  # the same from stage 2 (rungs at stage ends 2 and 4): the end of
        # stage 1 ranks a deep recipe against a shallow one poorly (docs/benchmarks.md, fidelity)
        return StageEndPruner("halving", reduction_factor=2, first_stage=2, lag=lag)
    if name == "stage-median":  # the median of *completed* trials at each stage end from stage 1:
        # the survivors set the bar, so it rises until nearly every trial is pruned at stage 1
        return StageEndPruner("median", n_startup_trials=4, first_stage=1, lag=lag)
    if name == "median":  # compare from the 3rd epoch on, once 5 trials have finished
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    if name == "hyperband":  # Optuna's advice for TPE; rungs at epochs 2, 6, 18 (of ~40)
        return optuna.pruners.HyperbandPruner(min_resource=min(2, max_epochs),
                                              max_resource=max_epochs, reduction_factor=3)
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=2, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise UserError(f"unknown pruner '{name}'; use one of {', '.join(PRUNERS)}.")


def check_compatible(study: optuna.Study, space: Space, url: str) -> None:
    """Refuse to resume a study searched in another direction, space or base config."""
    where = f"study '{study.study_name}' in {safe_url(url)}"
    fix = "pass the space and flags it was started with, or a new --study-name."
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise UserError(f"{where} minimises, but this search maximises val_accuracy; {fix}")
    ours = all_distributions(space)
    diffs: dict[str, str] = {}
    for t in study.get_trials(deepcopy=False):
        for name, dist in t.distributions.items():
            if name not in ours:
                diffs.setdefault(name, f"'{name}' is not in {space.path.name}")
            elif dist != ours[name]:
                diffs.setdefault(name, f"'{name}' was {dist} but {space.path.name} gives {ours[name]}")
    if diffs:
        shown = "; ".join(list(diffs.values())[:4]) + ("; ..." if len(diffs) > 4 else "")
        raise UserError(f"{where} conflicts with this search: {shown}; {fix}")


def create_or_resume(name: str, url: str, space: Space, sampler: str, pruner: str, seed: int,
                     heartbeat: int | None = None, data: dict | None = None,
                     pinned: bool = True, shared: bool = False, concurrent: bool = False,
                     adopt: bool = False, lag: int = 0):
    """The study `name`, created (with the seed recipe enqueued as its first trial) or resumed
    (after checking that space, base config and data match). Returns (study, resumed).

    Only the process that creates the study enqueues the seed recipe, so workers that start
    together on a new study enqueue it exactly once. The study's identity (search.tuning.identity:
    base config, pruner step, space file, `data` = {source, fingerprint}) is written once at
    creation and checked on every join; a study without one is refused unless `adopt`. Unless the seed is
    `pinned`, a worker on a `shared` storage, or any process resuming a study (two may resume
    one SQLite file at once), draws its sampler seed from os.urandom, so no two draw the same
    trials; a new study in one process keeps the given seed (reproducible)."""
    storage = open_storage(url, heartbeat=heartbeat)
    mine = identity.make(space, pruner, data)
    outside = space.seed_outside()
    seed_params = {k: v for k, v in space.seed_values().items() if k not in outside}
    try:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
        resumed = False
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage)
        resumed = True
    if resumed:
        stored = identity.wait(study, 30 if shared else 2)  # a creator may be writing it now
        if stored is None:
            if not adopt:
                identity.refuse_unbound(study, url)
            identity.bind(study, mine)
            stored = mine
        check_compatible(study, space, url)  # the searched params first: they name the space
        identity.check(study, stored, mine, url, pruner)
        _recover(study, heartbeat)
        # A resumed study gets a fresh sampler seed so a seeded sampler does not replay its draws.
        seed = seed + len(study.get_trials(deepcopy=False))
    else:
        identity.bind(study, mine)  # before the seed trial: a joiner that sees it may go on
        study.set_metric_names([METRIC])  # the dashboard's name for the objective
        study.enqueue_trial(seed_params, user_attrs={"seed_recipe": True}, skip_if_exists=True)
        if outside:
            print(f"note: the seed recipe's {', '.join(outside)} lie outside {space.path.name}; "
                  "trial 0 samples those instead.")
    if not pinned and (shared or resumed):
        seed = salted_seed()
    if lag and sampler not in IN_ORDER:
        print(f"note: the {sampler} sampler keeps its state in the study, so with --jobs it draws "
              "from whatever has ended (as --any-order): the same seed may not give the same study.")
        lag = 0
    if lag and not pruner.startswith("stage") and pruner != "none":
        print(f"note: --pruner {pruner} judges trials against whichever ran beside them, so with "
              "--jobs the same seed may not give the same study; the stage pruners and none do.")
    start = len(study.get_trials(deepcopy=False)) if lag and resumed else 0  # see in_order.view
    study = optuna.load_study(study_name=name, storage=storage,
                              sampler=make_sampler(sampler, seed, concurrent, seed_params, lag,
                                                   start),
                              pruner=make_pruner(pruner, space.max_epochs(), lag))
    return study, resumed


def salted_seed() -> int:
    """A sampler seed from os.urandom: different for every worker, whatever its host and pid
    (containers often share both)."""
    return int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF


def _recover(study: optuna.Study, heartbeat: int | None) -> None:
    """On resume: trials whose worker died (no heartbeat for the grace period) are marked FAIL
    and, through the storage's retry callback, queued again once."""
    if not heartbeat:
        return
    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    optuna.storages.fail_stale_trials(study)
    failed = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
              if t.number in before]
    if failed:
        print(f"trials {failed} lost their worker (no heartbeat): marked FAIL and queued again")


def trial_line(t: FrozenTrial, best: FrozenTrial | None = None, unit: str = "epoch") -> str:
    waited = float(t.user_attrs.get(WAITED, 0.0))  # for its in-order view (--jobs)
    secs = t.duration.total_seconds() - waited if t.duration else float("nan")
    value = f"{t.value:.4f}" if t.value is not None else "  -   "
    params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in t.params.items())
    why = t.user_attrs.get("failure", "")
    if t.state == TrialState.PRUNED and not why and t.user_attrs.get("pruned"):
        why = f"pruned {t.user_attrs['pruned'].removeprefix('by the pruner ')}"
    elif t.state == TrialState.PRUNED and not why:
        steps = sorted(t.intermediate_values)
        where = f"after stage {steps[-1]}" if unit == "stage" else f"at epoch {steps[-1]}"
        why = f"pruned {where}" if steps else "pruned"
    tag = " (seed recipe)" if t.user_attrs.get("seed_recipe") else ""
    best_s = f"  best {best.value:.4f} (#{best.number})" if best is not None else ""
    tail = f"  [{t.user_attrs['cache']}]" if "cache" in t.user_attrs else ""
    tail += f"  [waited {waited:.0f}s for trials before it]" if waited >= 1 else ""
    return (f"trial {t.number:>3}{tag}  {t.state.name:<8} value {value}  {secs:6.1f}s{best_s}  "
            f"{params}" + (f"  [{why}]" if why else "") + tail)


def run(study: optuna.Study, objective, n_trials: int | None, timeout: float | None,
        resume_cmd: list[str], epoch_budget: int | None = None,
        max_failures: int = 0, n_jobs: int = 1, callbacks=()) -> list[FrozenTrial]:
    """optimize() with a line per trial; on Ctrl-C every completed trial is
    kept and the command that resumes is printed (the caller holds the objective's runner in
    search.runner.pool.closing_on_interrupt, which ends its workers at once). With epoch_budget, no
    new trial starts once this call's trials trained that many epochs; with max_failures, none
    once that many trials in a row failed; with n_jobs, that many trials run side by side (the
    objective's runner must lend one worker to each); `callbacks` are Optuna's, called after
    the line is printed. Returns this call's trials."""
    from tqdm import tqdm

    used, streak, mine = [0], [0], []
    unit = (identity.read(study) or {}).get("pruning_step", "epoch")
    lock = threading.Lock()  # with n_jobs, trials end in Optuna's threads

    def on_trial(st: optuna.Study, t: FrozenTrial) -> None:
        with lock:
            mine.append(t)
            streak[0] = streak[0] + 1 if t.state == TrialState.FAIL else 0
            done = st.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            tqdm.write(trial_line(t, max(done, key=lambda x: x.value) if done else None, unit))
            used[0] += int(t.user_attrs.get("epochs", 0))
            if epoch_budget is not None and used[0] >= epoch_budget:
                tqdm.write(f"epoch budget spent: {used[0]} epochs >= {epoch_budget}")
                st.stop()
            if max_failures and streak[0] >= max_failures:
                tqdm.write(f"stopping: the last {streak[0]} trials failed (--max-failures "
                           f"{max_failures})")
                st.stop()
        check_interrupt()  # a Ctrl-C lost inside an in-process trial stops the search here

    t0 = time.time()
    try:
        study.optimize(objective, n_trials=n_trials, timeout=timeout, catch=(Exception,),
                       callbacks=[on_trial, *callbacks], gc_after_trial=True, n_jobs=n_jobs,
                       show_progress_bar=False)  # search.tracking.progress draws ours
    except KeyboardInterrupt:
        done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        masked = any(MASK in a for a in resume_cmd)
        running = "the running trial is" if n_jobs == 1 else "the running trials are"
        print(f"\ninterrupted after {time.time() - t0:.0f}s: {running} marked FAIL, "
              f"{done} completed trials are kept in the study. Resume with:\n  "
              f"{shlex.join(resume_cmd)}" + ("\n(the storage password is masked: give it through "
                                            "PGPASSWORD or SEARCH_STORAGE)" if masked else ""),
              file=sys.stderr)
        raise
    return mine


def check_outcome(study: optuna.Study, mine: list[FrozenTrial]) -> None:
    """A search is not a success when every trial it ran failed, or when the study still has no
    completed trial: raise SearchFailed with the most common failure."""
    if not mine:
        return
    failed = [t for t in mine if t.state == TrialState.FAIL]
    if len(failed) < len(mine) and study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return
    reasons = Counter(t.user_attrs.get("failure", t.state.name.lower()) for t in failed or mine)
    why, n = reasons.most_common(1)[0]
    what = "failed" if len(failed) == len(mine) else "ended without a completed trial"
    raise SearchFailed(f"all {len(mine)} trials of this search {what}; the most common reason "
                       f"({n}x): {why}")


def best_config(study: optuna.Study) -> tuple[optuna.trial.FrozenTrial, TrainConfig]:
    """The best trial and its config: the pick over seeds (search.tuning.pick) while it is
    current, else the trial with the best value."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        raise UserError(f"study '{study.study_name}' has no completed trial yet; run the search "
                        "(python run_search.py --trials N) first.")
    best = study.best_trial
    pick = study.user_attrs.get("pick")  # search.tuning.pick: re-run on further seeds
    if pick and best.number in {int(k) for k in pick["values"]}:  # still current: it weighed the best
        best = next(t for t in done if t.number == pick["trial"])
    return best, TrainConfig.from_dict(best.user_attrs["config"], source=f"trial {best.number}")


def finalize(study: optuna.Study, data: Data, study_dir: Path, runner, seeds: int = 1,
             baseline: bool = False, log=print, pick=None, folder: Path | None = None,
             kept=None) -> dict:
    """The Optuna study's best trial, or the `pick` (search.tuning.pick) of the candidates re-run
    on further seeds: retrained on `runner` (taking the pick's `kept` runs), tested, written into
    `folder` (see finalize_config)."""
    from search.tuning.retrain import finalize_config  # TensorFlow: loaded when used

    best, config = best_config(study)
    if pick is not None:
        best = next(t for t in study.get_trials(deepcopy=False) if t.number == pick.trial)
        config = TrainConfig.from_dict(best.user_attrs["config"], source=f"trial {best.number}")
    seed_trial = next((t for t in study.get_trials(deepcopy=False)
                       if t.user_attrs.get("seed_recipe")), None)
    cfg0 = None
    if baseline and seed_trial is not None and "config" in seed_trial.user_attrs:
        cfg0 = TrainConfig.from_dict(seed_trial.user_attrs["config"], source="trial 0")
    return finalize_config(study.study_name, best.number, best.value, config, data, study_dir,
                           runner, seeds, log, baseline_config=cfg0,
                           baseline_number=seed_trial.number if cfg0 is not None else None,
                           seed_value=seed_trial.value if seed_trial is not None else None,
                           extra={"pick": pick.to_dict()} if pick is not None else None,
                           folder=folder, kept=kept)

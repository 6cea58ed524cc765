"""The end-to-end jobs as typed functions: a search (trials, the pick, retrain, test and report)
and a finalize. The CLI parses flags into options (search.options) and calls them; the benchmarks
call them too and get their results back as values.

    run_search(SearchOptions) -> SearchOutcome
    finalize_study(SearchOptions) -> dict (test metrics)
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from search.errors import UserError
from search.options import RunOptions, SearchOptions  # noqa: F401  (the API's names)
from search.secrets import safe_url

__all__ = ["RunOptions", "SearchOptions", "SearchOutcome", "run_search", "finalize_study"]


@dataclass
class SearchOutcome:
    study_dir: Path
    table: pd.DataFrame  # one row per trial, Optuna's trials_dataframe columns (either backend)
    best_number: int | None
    best_value: float | None
    test: dict | None  # test_metrics.json's content, when the best was retrained and tested
    seconds: float

    @property
    def epochs(self) -> int:
        col = "user_attrs_epochs"
        return int(self.table[col].fillna(0).sum()) if col in self.table else 0


def dashboard_hint(url: str, study_dir: Path | None = None) -> str:
    extra = f" --artifact-dir {study_dir / 'artifacts'}" if study_dir is not None else ""
    target = url[len("journal:"):] if url.startswith("journal:") else safe_url(url)
    return f"dashboard: optuna-dashboard {target}{extra}"


def data_identity(source) -> dict:
    """What a study records of its data, to refuse another source later."""
    return {"source": f"{source.layout} data at {source.location}",
            "fingerprint": source.fingerprint()}


def load_data(opts: RunOptions, config):
    from search.recipe.data import load_source, make_data

    source = load_source(opts.data_dir)
    return source, make_data(source, config.train_samples, config.val_samples, config.split_seed)


def _write_study_start(study_dir: Path, space, data) -> None:
    from search.files import write_atomic
    from search.recipe.run_dir import write_start

    write_start(study_dir, space.base, None, (data.train_idx, data.val_idx))
    write_atomic(study_dir / "space.yaml", space.path.read_text())


def _info(opts: SearchOptions, study, space_file: str, base_config: dict, url: str):
    from search.tracking.callbacks import SearchInfo, run_tags

    return SearchInfo(study.study_name, safe_url(url), str(opts.study_dir), opts.sampler,
                      opts.pruner, space_file, base_config, opts.command(), run_tags())


def _final_files(study_dir: Path) -> dict:
    from search.tuning.records import FINAL_FILES, final_dir

    folder = final_dir(study_dir)
    return {name: folder / name for name in FINAL_FILES if (folder / name).is_file()}


def _progress(opts: SearchOptions, study):
    from optuna.trial import TrialState

    from search.tracking.progress import Progress

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = study.best_trial if done else None
    return Progress(opts.trials, opts.timeout, opts.epoch_budget, opts.progress_every,
                    best=(best.value, best.number) if best else None)


def _watchers(opts: SearchOptions, callbacks, url: str):
    """--track's trackers (each checked now, before any write) and the caller's callbacks."""
    from search.tracking.callbacks import Callbacks, open_trackers

    return Callbacks([*open_trackers(opts.track), *callbacks], secrets=(url,))


def run_search(opts: SearchOptions, callbacks=()) -> SearchOutcome:
    """Run (or resume) the search, then unless no_final retrain, test and report its best.

    callbacks: search.tracking.SearchCallback objects (told of the search's start, each trial's
    start, epochs and end, and the final test), or Optuna callbacks (functions of study and
    frozen trial, called as each trial ends); both run in this process."""
    from search.recipe.model import check_weights
    from search.tuning.space import load_space

    t0 = time.time()
    space = load_space(opts.space)
    searched = [k for k in opts.set_values() if space.param(k) is not None]
    if searched:
        raise UserError(f"--set {searched[0]}: the space searches '{searched[0]}', so every trial "
                        f"draws its own; change its range in {space.path.name} instead.")
    space = space.with_base(**opts.overrides())  # validated before any storage
    check_weights(space.base.weights)
    source, data = load_data(opts, space.base)
    if opts.backend == "keras-tuner":
        if opts.track or callbacks:
            raise UserError("--track and callbacks follow Optuna trials; drop them with "
                            "--backend keras-tuner, or search with the Optuna backend.")
        return _search_keras_tuner(opts, space, source, data, t0)
    watch = _watchers(opts, callbacks, opts.storage_url())
    try:
        return _search_optuna(opts, space, source, data, t0, watch)
    finally:
        watch.close()


def _search_optuna(opts: SearchOptions, space, source, data, t0: float,
                   watch) -> SearchOutcome:
    from optuna.trial import TrialState

    from search.files import write_json
    from search.report.page import make_report, trials_table
    from search.runner.pool import closing_on_interrupt
    from search.tuning.identity import report_unit
    from search.tuning.in_order import InOrderSampler, lag_for
    from search.tuning.objective import Objective
    from search.tuning.storage import default_heartbeat, is_server
    from search.tuning.study import check_outcome, create_or_resume, run

    url = opts.storage_url()
    cache = opts.make_cache()
    if cache is not None:  # before the study exists or anything is written
        cache.check_room(space.base.image_size, len(data.x_train) * cache.views + len(data.x_val),
                         space.max_stages() + 1)
    ident = data_identity(source)  # hashes every image: once
    shared = is_server(url) or url.startswith("journal:")  # workers may start together
    jobs = opts.jobs_to_run()
    heartbeat = default_heartbeat(url, opts.heartbeat)
    lag = lag_for(jobs, shared, heartbeat, opts.any_order)
    if not lag and lag_for(jobs, shared, None, opts.any_order):  # in order but for the heartbeat
        print("note: with --heartbeat, --jobs draws each trial from whatever has ended (as "
              "--any-order): the same seed may not give the same study.")
    study, resumed = create_or_resume(
        opts.study_name, url, space, opts.sampler, opts.pruner,
        space.base.seed if opts.sampler_seed is None else opts.sampler_seed,
        heartbeat=heartbeat, data=ident,
        pinned=opts.sampler_seed is not None, shared=shared, concurrent=shared or jobs > 1,
        adopt=opts.adopt, lag=lag)
    study_dir = opts.study_dir
    _write_study_start(study_dir, space, data)
    write_json(study_dir / "data.json", {**ident, "train": len(data.x_train),
                                         "val": len(data.x_val), "test": len(data.x_test)})
    n_before = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    print(f"{'resuming' if resumed else 'new'} study '{opts.study_name}' ({n_before} finished trials)"
          f" in {safe_url(url)}; space {space.path}; sampler {opts.sampler}, pruner {opts.pruner}")
    print(f"data: {data.source}: {len(data.x_train)} train / {len(data.x_val)} val / "
          f"{len(data.x_test)} test images")
    print(dashboard_hint(url, study_dir))
    watch.add(_progress(opts, study))
    watch.search_started(_info(opts, study, str(space.path), space.base.to_dict(), url))
    if cache is not None and cache.directory is None and not opts.no_isolate:
        print("note: --cache-dir none with isolated trials refills the cache in every worker "
              "process (every --worker-trials trials); give --cache-dir a folder, or pass --no-isolate.")
    runner = search_runner(opts, data, cache, space.max_depth(), jobs)
    if jobs > 1:
        print(f"{jobs} trials side by side, each in its own worker process" +
              (f"; trial k drawn from trials 0..k-{lag} (in order: the same seed gives the same "
               "study)" if isinstance(study.sampler, InOrderSampler) else ""))
    ahead = _pick_ahead(opts, runner, shared)
    objective = Objective(space, runner if ahead is None else ahead.runner, study_dir,
                          report=report_unit(opts.pruner), secrets=(url,), watch=watch,
                          keep_top=opts.keep_top())
    study.set_user_attr("cache_depth", space.max_depth())  # finalize reuses the trials' cache
    test = None
    with closing_on_interrupt(runner), _running(ahead):  # one runner for the trials, the pick,
        # the retrain; the pick's re-runs start on it while the last trials run
        mine = run(study, objective, opts.trials, opts.timeout, opts.command(), opts.epoch_budget,
                   opts.max_failures, n_jobs=jobs,
                   callbacks=[objective.trial_finished, watch.trial_finished,
                              *([ahead.trial_ended] if ahead is not None else [])])
        check_outcome(study, mine)
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        best = study.best_trial if done else None
        if best is None:
            print("no trial completed, so there is no best config to retrain.")
        else:
            print(f"best: trial {best.number} val_accuracy {best.value:.4f} {best.params}")
        if not opts.no_final and best is not None:
            # Fresh workers for the final step: what a worker grew to over the trials (the
            # programs of every structure it traced) is freed, for a few seconds of start-up
            # (docs/benchmarks.md, "warm workers against fresh"); a worker still in one of the
            # pick's re-runs is renewed when it ends.
            if ahead is not None:
                runner.renew()
            else:
                runner.close()
            test = confirm_and_finalize(study, runner, opts, data, ahead)
            watch.search_finalized(test, _final_files(study_dir))
    if not opts.no_final:
        print(f"report: {make_report(study, study_dir)}")
    print(f"outputs: {study_dir}")
    print(dashboard_hint(url, study_dir))
    return SearchOutcome(study_dir, trials_table(study), best and best.number,
                         best and best.value, test, time.time() - t0)


def _search_keras_tuner(opts: SearchOptions, space, source, data, t0: float) -> SearchOutcome:
    from search.errors import SearchFailed
    from search.runner.pool import closing_on_interrupt
    from search.tuning import kt_backend
    from search.tuning.retrain import finalize_config

    study_dir = opts.study_dir
    kt_backend.check_identity(study_dir, space, data_identity(source))  # before any write
    _write_study_start(study_dir, space, data)
    kt_backend.write_identity(study_dir, space, data_identity(source))
    cache = opts.make_cache()
    runner = search_runner(opts, data, cache, space.max_depth())
    tuner = kt_backend.make_tuner(opts.tuner, space, runner, study_dir, opts.trials,
                                  epoch_budget=opts.epoch_budget, max_failures=opts.max_failures)
    before = {r["number"] for r in kt_backend.records(study_dir)}
    print(f"keras-tuner {opts.tuner} in {study_dir / 'keras_tuner'} "
          f"({len(tuner.oracle.trials)} trials so far); space {space.path}")
    test = None
    with closing_on_interrupt(runner):  # one worker for the trials and the retrain
        stopped = kt_backend.search(tuner)
        mine = [r for r in kt_backend.records(study_dir) if r["number"] not in before]
        if stopped:
            print(f"stopping: {stopped}")
        if mine and not any(r["state"] == "COMPLETE" for r in mine):
            why = next((r.get("failure") for r in mine if r.get("failure")), "failed")
            raise SearchFailed(f"all {len(mine)} trials of this search failed; the first reason: "
                               f"{why}")
        print(f"trials table: {kt_backend.write_table(study_dir)}")
        best = kt_backend.best(study_dir)
        if best is None:
            print("no trial completed, so there is no best config to retrain.")
        elif not opts.no_final:
            test = finalize_config(opts.study_name, best["number"], best["value"],
                                   space.to_config(best["params"]), data, study_dir, runner,
                                   opts.retrain_seeds)
    print(f"outputs: {study_dir}")
    return SearchOutcome(study_dir, kt_backend.trials_table(study_dir),
                         best and best["number"], best and best["value"], test, time.time() - t0)


@contextmanager
def _running(ahead):
    """`ahead`'s threads for the block (search.tuning.pick_ahead), ended with it."""
    if ahead is None:
        yield
        return
    ahead.start()
    try:
        yield
    finally:
        ahead.finish()


def _pick_ahead(opts: SearchOptions, runner, shared: bool):
    """The pick's re-runs on the workers the last trials leave idle (search.tuning.pick_ahead),
    or None: without a pick, a trial count, several workers, or with a storage that other
    processes' trials share (they may yet rank above)."""
    from search.runner.pool import RunnerPool
    from search.tuning.pick_ahead import PickAhead

    if (opts.no_final or not (opts.confirm_top and opts.confirm_seeds) or not opts.trials
            or shared or not isinstance(runner, RunnerPool)):
        return None
    return PickAhead(runner, opts.trials, opts.confirm_top, opts.confirm_seeds,
                     lambda: _new_kept(opts))


def _new_kept(opts: SearchOptions):
    """Where the pick keeps its runs for the retrain: pick/ in a new final folder, published only
    once complete (search.tuning.final_runs.Kept)."""
    from search.tuning.final_runs import Kept
    from search.tuning.records import new_final_dir

    return Kept(new_final_dir(opts.study_dir) / "pick", seeds=opts.retrain_seeds - 1)


def search_runner(opts: SearchOptions, data, cache, cache_depth: int, jobs: int = 1):
    """The runner these options ask for (search.runner.pool.make_runner)."""
    from search.runner.pool import make_runner

    return make_runner(data, cache, cache_depth, isolate=not opts.no_isolate,
                       max_runs=opts.worker_trials, log=print if opts.verbose else None, jobs=jobs)


def confirm_and_finalize(study, runner, opts: SearchOptions, data, ahead=None) -> dict:
    """The top trials and the seed recipe re-run on further seeds (validation only) on `runner`,
    and the pick by mean (search.tuning.pick; skipped when --confirm-top or --confirm-seeds is
    0; printed and kept on the study); then the pick retrained and tested on the same runner
    (search.tuning.study.finalize), taking the trials' own runs where they kept their model
    (search.tuning.trial_models) and the re-runs of the seeds it retrains on. `ahead`: the
    PickAhead that began the re-runs while the last trials ran; it runs the rest as well."""
    from dataclasses import replace

    from search.tuning.pick import candidates, choose, rerun
    from search.tuning.study import finalize
    from search.tuning.trial_models import add_to

    confirm = bool(opts.confirm_top and opts.confirm_seeds)
    trials = candidates(study, opts.confirm_top) if confirm else []
    if confirm:
        print(f"re-running {len(trials)} candidates on {opts.confirm_seeds} more seed(s) each "
              "(validation only) before the pick")
    early = ahead.run_rest(trials) if ahead is not None and confirm else None
    kept = (early.kept if early is not None else None) or _new_kept(opts)
    folder = kept.folder.parent  # published only once complete
    pick = None
    add_to(kept, study, opts.study_dir)  # the trials' own runs, where they kept their model
    if confirm:
        values = rerun(trials, runner, opts.confirm_seeds, kept=kept,
                       done=early.done if early is not None else None)  # what is missing
        seed_of = {t.number: int(t.user_attrs["config"]["seed"]) for t in trials}
        before = sorted([n, seed_of[n] + i] for n, i in (early.early if early else ())
                        if n in seed_of)
        seed = next((t.number for t in trials if t.user_attrs.get("seed_recipe")), None)
        pick = replace(choose(values, seed), ahead=before)
        print(pick.line())
        study.set_user_attr("pick", pick.to_dict())
    return finalize(study, data, opts.study_dir, runner, opts.retrain_seeds, opts.test_baseline,
                    pick=pick, folder=folder, kept=kept)


def finalize_study(opts: SearchOptions, callbacks=()) -> dict:
    """Retrain and test the best trial's config, then write the report: the one process that
    does this after workers ran with --no-final. callbacks: as run_search's (search_started and
    search_finalized are called)."""
    from search.recipe.config import TrainConfig
    from search.recipe.model import check_weights
    from search.report.page import make_report
    from search.runner.pool import closing_on_interrupt
    from search.tuning.identity import check_data, check_overrides
    from search.tuning.identity import read as read_identity
    from search.tuning.space import STUDY_FIXED
    from search.tuning.storage import open_study
    from search.tuning.study import best_config

    fixed = sorted(set(opts.set_values()) & set(STUDY_FIXED))
    if fixed:
        raise UserError(f"--set {fixed[0]}: the study fixes '{fixed[0]}' ({STUDY_FIXED[fixed[0]]}); "
                        "finalize retrains on the study's own.")
    study = open_study(opts.study_name, opts.storage_url())
    flags = opts.flag_overrides()
    check_overrides(study, {k: v for k, v in flags.items() if k != "seed"}, opts.storage_url())
    _, config = best_config(study)
    config = TrainConfig.from_dict({**config.to_dict(), **opts.overrides()}, source="--set")
    check_weights(config.weights)
    source, data = load_data(opts, config)
    check_data(study, data_identity(source))
    depth = int(study.user_attrs.get("cache_depth", config.unfreeze_depth))
    cache = opts.make_cache()
    watch = _watchers(opts, callbacks, opts.storage_url())
    try:
        ident = read_identity(study) or {}
        watch.search_started(_info(opts, study, str(ident.get("space_file")),
                                   ident.get("base_config") or {}, opts.storage_url()))
        with closing_on_interrupt(search_runner(opts, data, cache, depth, opts.jobs_to_run())) as runner:
            out = confirm_and_finalize(study, runner, opts, data)
        watch.search_finalized(out, _final_files(opts.study_dir))
    finally:
        watch.close()
    print(f"report: {make_report(study, opts.study_dir)}")
    return out

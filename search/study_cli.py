"""CLI of the search side: `search` (the default command), `export`, `dashboard`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from search.study import (
    DEFAULT_STUDY,
    PRUNERS,
    SAMPLERS,
    default_heartbeat,
    default_storage,
    safe_url,
)


def add_study_flags(p: argparse.ArgumentParser, results: bool = True) -> None:
    p.add_argument("--study-name", default=DEFAULT_STUDY,
                   help=f"Optuna study name (default: {DEFAULT_STUDY}); rerunning resumes it")
    p.add_argument("--storage", help="Optuna storage: sqlite:///path.db, "
                   "postgresql+psycopg://user:pass@host/db, or journal:PATH (a journal file on a "
                   "shared filesystem) (default: sqlite in --results-dir)")
    if results:
        p.add_argument("--results-dir", default="results", help="output root (default: results)")


def add_search_parser(sub, add_data_flags) -> None:
    p = sub.add_parser("search", help="run (or resume) the Optuna search, then retrain and "
                       "test the best config (the default command)")
    p.add_argument("--trials", type=int, default=50, help="new trials to run in this call "
                   "(default 50); they add to any already in the study")
    p.add_argument("--timeout", type=float, help="stop starting new trials after this many seconds")
    p.add_argument("--epoch-budget", type=int, metavar="N",
                   help="stop starting new trials once this call's trials trained N epochs")
    p.add_argument("--space", help="search space YAML (default: spaces/default.yaml)")
    p.add_argument("--sampler", choices=SAMPLERS, default="tpe", help="Optuna sampler (default tpe)")
    p.add_argument("--pruner", choices=PRUNERS, default="hyperband",
                   help="Optuna pruner acting on val_accuracy after every epoch (default "
                   "hyperband, the pairing Optuna recommends for TPE; median prunes far less)")
    p.add_argument("--backend", choices=("optuna", "keras-tuner"), default="optuna",
                   help="search driver (default optuna); keras-tuner runs the same space and "
                   "training under KerasTuner (see --tuner)")
    p.add_argument("--tuner", choices=("hyperband", "bayesian", "random"), default="hyperband",
                   help="KerasTuner's tuner with --backend keras-tuner (default hyperband)")
    p.add_argument("--heartbeat", type=int, metavar="SECONDS",
                   help="trial heartbeat (default 60 on PostgreSQL/MySQL, off on SQLite; 0 "
                   "disables): a trial whose worker died is marked failed after 2x this and "
                   "queued once more")
    p.add_argument("--no-final", action="store_true",
                   help="skip the retrain and test of the best config (e.g. on extra workers)")
    p.add_argument("--retrain-seeds", type=int, default=1,
                   help="retrain the best config with this many seeds (3 gives mean ± std)")
    p.add_argument("--test-baseline", action="store_true", help="also retrain and test the "
                   "seed recipe (trial 0), to compare against the best on the test set")
    p.add_argument("--verbose", action="store_true", help="print each stage of each trial")
    p.add_argument("--no-isolate", action="store_true",
                   help="train trials inside this process instead of a worker process; "
                   "TensorFlow then keeps every trial's variables in memory")
    p.add_argument("--worker-trials", type=int, default=None, metavar="N",
                   help="trials a worker process trains before it is replaced, bounding "
                   "TensorFlow's per-trial memory leak (default 10 on the cache, 1 with --no-cache)")
    add_study_flags(p, results=False)
    add_data_flags(p)


def add_other_parsers(sub, add_data_flags) -> None:
    p = sub.add_parser("finalize", help="retrain and test the best trial's config and write the "
                       "report (after workers ran with --no-final)")
    p.add_argument("--retrain-seeds", type=int, default=1,
                   help="retrain the best config with this many seeds (3 gives mean ± std)")
    p.add_argument("--test-baseline", action="store_true", help="also retrain and test the "
                   "seed recipe (trial 0)")
    add_study_flags(p, results=False)
    add_data_flags(p)

    p = sub.add_parser("export", help="write the best trial's full config (train --config reads it)")
    add_study_flags(p)
    p.add_argument("--format", choices=("yaml", "json"), default="yaml", help="output format")
    p.add_argument("--out", help="file to write (default: print to stdout)")

    p = sub.add_parser("report", help="write <results-dir>/<study>/report/ (index.html, figures, "
                       "trials.csv) and upload the best trial's files as Optuna artifacts")
    add_study_flags(p)

    p = sub.add_parser("dashboard", help="start optuna-dashboard on the study storage")
    add_study_flags(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")


def storage_url(args) -> str:
    return args.storage or default_storage(args.results_dir)


def dashboard_hint(url: str, study_dir: Path | None = None) -> str:
    extra = f" --artifact-dir {study_dir / 'artifacts'}" if study_dir is not None else ""
    target = url[len("journal:"):] if url.startswith("journal:") else safe_url(url)
    return f"dashboard: optuna-dashboard {target}{extra}"


def cmd_search(args: argparse.Namespace) -> int:
    from search.cli import make_cache, overrides
    from search.data import load_source, make_data
    from search.final import finalize
    from search.model import check_weights
    from search.objective import Objective
    from search.outputs import write_json, write_start
    from search.space import load_space
    from search.study import create_or_resume, run

    if (args.trials < 0 or args.retrain_seeds < 1
            or (args.worker_trials is not None and args.worker_trials < 1)):
        from search.errors import UserError

        raise UserError("--trials must be 0 or more, and --retrain-seeds and --worker-trials at "
                        "least 1.")
    space = load_space(args.space).with_base(**overrides(args))  # validated before any storage
    check_weights(space.base.weights)
    source = load_source(args.data_dir)
    data = make_data(source, space.base.train_samples, space.base.val_samples,
                     space.base.split_seed)
    if args.backend == "keras-tuner":
        return _search_keras_tuner(args, space, data)
    url = storage_url(args)
    study, resumed = create_or_resume(args.study_name, url, space, args.sampler, args.pruner,
                                      space.base.seed,
                                      heartbeat=default_heartbeat(url, args.heartbeat))
    study_dir = Path(args.results_dir) / args.study_name
    write_start(study_dir, space.base, None, (data.train_idx, data.val_idx))
    (study_dir / "space.yaml").write_text(space.path.read_text())
    write_json(study_dir / "data.json", {"source": data.source, "fingerprint": source.fingerprint(),
                                         "train": len(data.x_train), "val": len(data.x_val),
                                         "test": len(data.x_test)})
    n_before = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    print(f"{'resuming' if resumed else 'new'} study '{args.study_name}' ({n_before} finished trials)"
          f" in {safe_url(url)}; space {space.path}; sampler {args.sampler}, pruner {args.pruner}")
    print(f"data: {data.source}: {len(data.x_train)} train / {len(data.x_val)} val / "
          f"{len(data.x_test)} test images")
    print(dashboard_hint(url, study_dir))
    resume = [Path(sys.executable).name, "run_search.py", *sys.argv[1:]]
    cache = make_cache(args)
    if cache is not None and cache.directory is None and not args.no_isolate:
        print("note: --cache-dir none with isolated trials refills the cache in every worker "
              "process (every --worker-trials trials); give --cache-dir a folder, or pass --no-isolate.")
    objective = Objective(space, data, study_dir, verbose=args.verbose, cache=cache,
                          isolate=not args.no_isolate, worker_trials=args.worker_trials)
    study.set_user_attr("cache_depth", space.max_depth())  # finalize reuses the trials' cache
    run(study, objective, args.trials, args.timeout, resume, args.epoch_budget)
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = study.best_trial if done else None
    if best is None:
        print("no trial completed, so there is no best config to retrain.")
    else:
        print(f"best: trial {best.number} val_accuracy {best.value:.4f} {best.params}")
    if not args.no_final:
        if best is not None:
            finalize(study, data, study_dir, args.retrain_seeds, args.test_baseline,
                     cache=cache, cache_depth=space.max_depth())
        _report(study, study_dir)
    print(f"outputs: {study_dir}")
    print(dashboard_hint(url, study_dir))
    return 0


def _search_keras_tuner(args: argparse.Namespace, space, data) -> int:
    from search import kt_backend
    from search.cli import make_cache
    from search.final import finalize_config
    from search.outputs import write_start

    study_dir = Path(args.results_dir) / args.study_name
    write_start(study_dir, space.base, None, (data.train_idx, data.val_idx))
    (study_dir / "space.yaml").write_text(space.path.read_text())
    cache = make_cache(args)
    tuner = kt_backend.make_tuner(args.tuner, space, data, study_dir, args.trials, cache=cache,
                                  epoch_budget=args.epoch_budget)
    tuner.oracle.max_trials = len(tuner.oracle.trials) + args.trials  # new trials in this call
    print(f"keras-tuner {args.tuner} in {study_dir / 'keras_tuner'} "
          f"({len(tuner.oracle.trials)} trials so far); space {space.path}")
    tuner.search(verbose=0)
    print(f"trials table: {kt_backend.write_table(study_dir)}")
    best = kt_backend.best(study_dir)
    if best is None:
        print("no trial completed, so there is no best config to retrain.")
    elif not args.no_final:
        finalize_config(args.study_name, best["number"], best["value"],
                        space.to_config(best["params"]), data, study_dir, args.retrain_seeds,
                        cache=cache, cache_depth=space.max_depth())
    print(f"outputs: {study_dir}")
    return 0


def _report(study, study_dir: Path) -> None:
    from search.report import make_report

    print(f"report: {make_report(study, study_dir)}")


def cmd_finalize(args: argparse.Namespace) -> int:
    """Retrain and test the best trial's config, then write the report: the one process that
    does this after workers ran with --no-final."""
    from search.cli import make_cache, overrides
    from search.data import load_source, make_data
    from search.errors import UserError
    from search.final import best_config, finalize
    from search.model import check_weights
    from search.study import load_existing, open_storage

    if args.retrain_seeds < 1:
        raise UserError("--retrain-seeds must be at least 1.")
    url = storage_url(args)
    study = load_existing(args.study_name, open_storage(url, create=False), url)
    _, config = best_config(study)
    config = config.replace(**overrides(args))
    check_weights(config.weights)
    data = make_data(load_source(args.data_dir), config.train_samples, config.val_samples,
                     config.split_seed)
    study_dir = Path(args.results_dir) / args.study_name
    finalize(study, data, study_dir, args.retrain_seeds, args.test_baseline, cache=make_cache(args),
             cache_depth=int(study.user_attrs.get("cache_depth", config.unfreeze_depth)))
    _report(study, study_dir)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from search.study import load_existing, open_storage

    url = storage_url(args)
    study = load_existing(args.study_name, open_storage(url, create=False), url)
    _report(study, Path(args.results_dir) / args.study_name)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from search.config import write_atomic
    from search.final import best_config
    from search.study import load_existing, open_storage

    url = storage_url(args)
    study = load_existing(args.study_name, open_storage(url, create=False), url)
    best, config = best_config(study)
    text = config.to_json() if args.format == "json" else config.to_yaml()
    if args.out:
        write_atomic(Path(args.out), text)
        print(f"wrote trial {best.number}'s config (val_accuracy {best.value:.4f}) to {args.out}",
              file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    import optuna_dashboard

    from search.study import load_existing, open_storage

    url = storage_url(args)
    storage = open_storage(url, create=False)
    load_existing(args.study_name, storage, url)
    from optuna.artifacts import FileSystemArtifactStore

    from search.report import artifact_dir

    art = artifact_dir(Path(args.results_dir) / args.study_name)
    store = FileSystemArtifactStore(str(art)) if art.is_dir() else None
    print(f"optuna-dashboard on http://{args.host}:{args.port} for {safe_url(url)}"
          f"{f' with artifacts from {art}' if store else ''} (Ctrl-C stops)")
    optuna_dashboard.run_server(storage, host=args.host, port=args.port, artifact_store=store)
    return 0


HANDLERS = {"search": cmd_search, "export": cmd_export, "dashboard": cmd_dashboard,
            "report": cmd_report, "finalize": cmd_finalize}

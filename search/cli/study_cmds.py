"""Commands on a study: `search` (the default command), `finalize`, `export`, `report`, `dashboard`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from search.cli.flags import add_data_flags, add_retrain_flags, add_study_flags, add_track_flag
from search.errors import UserError
from search.options import SearchOptions
from search.tuning.study import PRUNERS, SAMPLERS


def add_parsers(sub) -> None:
    d = SearchOptions
    p = sub.add_parser("search", help="run (or resume) the Optuna search, then retrain and "
                       "test the best config (the default command)")
    p.add_argument("--trials", type=int, default=d.trials, help="new trials to run in this call "
                   "(default 50); they add to any already in the study")
    p.add_argument("--timeout", type=float, help="stop starting new trials after this many seconds")
    p.add_argument("--epoch-budget", type=int, metavar="N",
                   help="stop starting new trials once this call's trials trained N epochs")
    p.add_argument("--space", help="search space YAML (default: spaces/default.yaml)")
    p.add_argument("--sampler", choices=SAMPLERS, default=d.sampler,
                   help="Optuna sampler (default tpe)")
    p.add_argument("--pruner", choices=PRUNERS, default=d.pruner,
                   help="Optuna pruner (default stage: successive halving on the best val_accuracy "
                   "so far at the ends of stages 1 and 2; stage-late: the same at stages 2 and 4; "
                   "stage-median: the median rule at stages 1, 2, ...; "
                   "hyperband, median, sha: on val_accuracy after every epoch; none)")
    p.add_argument("--backend", choices=("optuna", "keras-tuner"), default=d.backend,
                   help="search driver (default optuna); keras-tuner runs the same space and "
                   "training under KerasTuner (see --tuner)")
    p.add_argument("--tuner", choices=("hyperband", "bayesian", "random"), default=d.tuner,
                   help="KerasTuner's tuner with --backend keras-tuner (default hyperband)")
    p.add_argument("--heartbeat", type=int, metavar="SECONDS",
                   help="trial heartbeat (default 60 on PostgreSQL/MySQL, off on SQLite; 0 "
                   "disables; at least 5; not on a journal storage): a trial whose worker died is "
                   "marked failed after 2x this and queued once more")
    p.add_argument("--max-failures", type=int, default=d.max_failures, metavar="K",
                   help="stop after K trials in a row failed (default 5; 0 never stops)")
    p.add_argument("--sampler-seed", type=int, metavar="N",
                   help="sampler seed (default: --seed for a new study; drawn from os.urandom "
                   "when resuming or on a shared storage, so that no two workers draw the same "
                   "trials)")
    p.add_argument("--jobs", type=int, default=d.jobs, metavar="N",
                   help="trials run side by side, each in its own worker process (default 0: one "
                   "per GPU, or on CPUs one per core up to memory and 8, each on its share of the "
                   "cores; 1 with --no-isolate). Trial k is drawn from trials 0..k-2N as they "
                   "ended, kept apart from the later ones (as TPE's constant liar does), and "
                   "waits for that view, so the same seed and N give the same study")
    p.add_argument("--any-order", action="store_true",
                   help="with --jobs N, start each trial as soon as a worker is free, drawn from "
                   "whatever has ended (no waiting, but the same seed no longer gives the same "
                   "study)")
    p.add_argument("--adopt", action="store_true",
                   help="bind a study that records no data, base config or pruner step (made "
                   "with `optuna create-study`, or whose creator stopped early) to this search's")
    p.add_argument("--no-final", action="store_true",
                   help="skip the retrain and test of the best config (e.g. on extra workers)")
    add_retrain_flags(p)
    add_track_flag(p)
    p.add_argument("--progress-every", type=float, default=SearchOptions.progress_every,
                   metavar="S", help="without a terminal, a progress line (trials done, ETA, "
                   "best, running trials' stage and epoch) every S seconds (default 60); on a "
                   "terminal a live bar shows the same")
    p.add_argument("--verbose", action="store_true", help="print each stage of each trial")
    p.add_argument("--no-isolate", action="store_true",
                   help="train trials inside this process instead of a worker process; "
                   "TensorFlow then keeps every trial's variables in memory")
    p.add_argument("--worker-trials", type=int, default=None, metavar="N",
                   help="trials a worker process trains before it is replaced, bounding "
                   "TensorFlow's per-trial memory leak (default 50 on the cache, where it keeps "
                   "its traced stage programs; 1 with --no-cache)")
    add_study_flags(p, results=False)
    add_data_flags(p)

    p = sub.add_parser("finalize", help="retrain and test the best trial's config and write the "
                       "report (after workers ran with --no-final)")
    add_retrain_flags(p)
    add_track_flag(p)
    add_study_flags(p, results=False)
    add_data_flags(p)

    p = sub.add_parser("export", help="write the best trial's full config (train --config reads "
                       "it), or the retrained model as ONNX or LiteRT")
    add_study_flags(p)
    p.add_argument("--format", choices=("yaml", "json", "onnx", "litert"), default="yaml",
                   help="yaml or json: the config; onnx or litert (.tflite): the study's "
                   "best_model.keras (or --model), checked against Keras before it is written")
    p.add_argument("--out", help="file to write (default: the config to stdout; a model beside "
                   "the study's best_model.keras, as best_model.onnx or best_model.tflite)")
    p.add_argument("--model", help="with --format onnx|litert: a .keras file to export instead "
                   "of the study's (e.g. one written by `train`)")

    p = sub.add_parser("report", help="write <results-dir>/<study>/report/ (index.html, figures, "
                       "trials.csv) and upload the best trial's files as Optuna artifacts")
    add_study_flags(p)

    p = sub.add_parser("dashboard", help="start optuna-dashboard on the study storage")
    add_study_flags(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")


def cmd_search(args: argparse.Namespace) -> int:
    from search.jobs import run_search

    run_search(SearchOptions.from_namespace(args))
    return 0


def cmd_finalize(args: argparse.Namespace) -> int:
    from search.jobs import finalize_study

    finalize_study(SearchOptions.from_namespace(args))
    return 0


def _study(args: argparse.Namespace):
    from search.tuning.storage import open_study

    opts = SearchOptions.from_namespace(args)
    return opts, open_study(opts.study_name, opts.storage_url())


def cmd_report(args: argparse.Namespace) -> int:
    from search.report.page import make_report

    opts, study = _study(args)
    print(f"report: {make_report(study, opts.study_dir)}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from search.files import write_atomic

    if args.format in ("onnx", "litert"):
        return _export_model(args)
    if args.model:
        raise UserError("--model is for --format onnx or litert; a config export reads the study.")
    from search.tuning.study import best_config

    _, study = _study(args)
    best, config = best_config(study)
    text = config.to_json() if args.format == "json" else config.to_yaml()
    if args.out:
        write_atomic(Path(args.out), text)
        print(f"wrote trial {best.number}'s config (val_accuracy {best.value:.4f}) to {args.out}",
              file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _export_model(args: argparse.Namespace) -> int:
    from search.recipe.evaluate import load_model
    from search.recipe.export import FORMATS, export_model
    from search.tuning.records import final_dir

    if args.model:
        source = Path(args.model)
    else:
        source = final_dir(SearchOptions.from_namespace(args).study_dir) / "best_model.keras"
        if not source.is_file():
            raise UserError(f"{source} does not exist: the study has no retrained model yet; run "
                            "`finalize` first, or pass --model.")
    out = Path(args.out) if args.out else source.with_suffix(FORMATS[args.format])
    if out.suffix != FORMATS[args.format]:
        raise UserError(f"--out {out} should end in {FORMATS[args.format]} for --format "
                        f"{args.format}.")
    export_model(load_model(source), args.format, out)
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    import optuna_dashboard
    from optuna.artifacts import FileSystemArtifactStore

    from search.secrets import safe_url
    from search.tuning.records import artifact_dir
    from search.tuning.storage import load_existing, open_storage

    opts = SearchOptions.from_namespace(args)
    url = opts.storage_url()
    storage = open_storage(url, create=False)
    load_existing(opts.study_name, storage, url)
    art = artifact_dir(opts.study_dir)
    store = FileSystemArtifactStore(str(art)) if art.is_dir() else None
    print(f"optuna-dashboard on http://{args.host}:{args.port} for {safe_url(url)}"
          f"{f' with artifacts from {art}' if store else ''} (Ctrl-C stops)")
    optuna_dashboard.run_server(storage, host=args.host, port=args.port, artifact_store=store)
    return 0


HANDLERS = {"search": cmd_search, "export": cmd_export, "dashboard": cmd_dashboard,
            "report": cmd_report, "finalize": cmd_finalize}

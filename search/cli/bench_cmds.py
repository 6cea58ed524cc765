"""Benchmark commands: `bench` (the cache against the live pipeline, and a full study's wall time),
`compare` (Optuna against KerasTuner at an equal epoch budget) and `quality` (search settings at
equal wall time, each best retrained and tested beside the seed recipe)."""

from __future__ import annotations

import argparse

from search.cli.flags import add_data_flags
from search.options import RunOptions, SearchOptions


def add_parsers(sub) -> None:
    p = sub.add_parser("bench", help="benchmark the frozen-part cache against the live pipeline")
    p.add_argument("--stage-epochs", type=int, default=2,
                   help="epochs of each timed stage (default 2)")
    p.add_argument("--study-trials", type=int, default=50,
                   help="trials of the timed full study (default 50; 0 skips it)")
    p.add_argument("--space", help="space of the timed study (default: spaces/default.yaml)")
    p.add_argument("--skip-live", action="store_true",
                   help="skip the no-cache run (e.g. at --image-size 128, where it is slow)")
    p.add_argument("--skip-float16", action="store_true",
                   help="skip the run that stores the cache in the other dtype")
    add_data_flags(p)

    p = sub.add_parser("compare", help="Optuna (TPE + pruning) vs KerasTuner (Hyperband) at an "
                       "equal budget of trained epochs")
    p.add_argument("--budget", type=int, required=True,
                   help="trained epochs each search may spend (a trial in flight finishes)")
    p.add_argument("--space", help="search space YAML (default: spaces/default.yaml)")
    p.add_argument("--retrain-seeds", type=int, default=1,
                   help="seeds of each best config's retrain (default 1)")
    add_data_flags(p)
    add_quality_parser(sub)


def add_quality_parser(sub) -> None:
    from search.bench.quality import SETTINGS

    p = sub.add_parser("quality", help="search quality at equal wall time: settings x repeats, "
                       "each best retrained and tested beside the seed recipe")
    p.add_argument("--settings", default="stage,old-default,hyperband",
                   help=f"comma-separated, of: {', '.join(SETTINGS)} (default stage,old-default,hyperband)")
    p.add_argument("--repeats", type=int, default=2, help="runs per setting (sampler seeds 0..R-1)")
    p.add_argument("--minutes", type=float, default=12, help="wall time of each run (default 12)")
    p.add_argument("--retrain-seeds", type=int, default=3,
                   help="seeds each best (and the seed recipe) is retrained on (default 3)")
    p.add_argument("--retrain", choices=("all", "best"), default="all",
                   help="retrain and test every run's best (all), or per setting only the run "
                        "with the best val accuracy (best; deep retrains cost minutes a seed)")
    p.add_argument("--space", help="search space YAML (default: spaces/default.yaml)")
    p.add_argument("--no-isolate", action="store_true", help="train trials in this process")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="trials side by side in each run, as search --jobs (default 1)")
    add_data_flags(p)


def cmd_quality(args: argparse.Namespace) -> int:
    from search.bench.quality import SETTINGS, bench_quality
    from search.errors import UserError

    names = [n.strip() for n in args.settings.split(",") if n.strip()]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        raise UserError(f"unknown setting '{unknown[0]}'; use some of {', '.join(SETTINGS)}.")
    q = bench_quality(SearchOptions.from_namespace(args), [SETTINGS[n] for n in names],
                      args.repeats, args.minutes, args.retrain_seeds,
                      retrain_runs=args.retrain)
    print(f"\nequal wall time of {args.minutes:g} min per run:\n"
          f"{q.table().to_string(index=False, float_format=lambda v: f'{v:.4f}')}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from search.bench.cache_speed import bench_cache, bench_study, format_cache_bench

    b = bench_cache(RunOptions.from_namespace(args), args.stage_epochs, args.skip_live,
                    args.skip_float16)
    print("\n" + format_cache_bench(b))
    if args.study_trials > 0:
        opts = SearchOptions.from_namespace(args, trials=args.study_trials)
        print(f"\nfull study: {args.study_trials} trials, space {opts.space or 'default'}")
        print(bench_study(opts, b.live_seconds_per_epoch))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from search.bench.compare import compare

    df, figure = compare(SearchOptions.from_namespace(args), args.budget)
    print(f"\nequal budget of {args.budget} trained epochs:\n{df.to_string(index=False)}")
    print("(optuna ran first and its minutes include filling the shared frozen-part cache)")
    print(f"figure: {figure}")
    return 0


HANDLERS = {"bench": cmd_bench, "compare": cmd_compare, "quality": cmd_quality}

"""`python run_search.py bench`: the cache against the live pipeline, side by side, in one run.

1. The same config (stage 0, then stages opening 5, 10, 15, 20 layers; `--stage-epochs` each, no
   early stopping) trained without the cache, with a fresh one (the study's first trial, which
   fills it) and again (every later trial). Prints seconds per stage, the no-cache : cached ratio,
   the one-time cache fill and the cache's memory.
2. Unless `--study-trials 0`: the wall time of a full study (default space, cached) plus its
   retrain, next to what the same epochs would cost without the cache (from part 1's rate).
Figures, not a pass/fail test: these machines are noisy, so read the ratios.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from search.config import SEED_CONFIG, TrainConfig


def add_parser(sub, add_data_flags) -> None:
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


def _per_stage(result) -> list[float]:
    return [s.seconds for s in result.stages]


def cmd_bench(args: argparse.Namespace) -> int:
    from search.cache import FeatureCache
    from search.cli import overrides
    from search.data import load_source, make_data
    from search.model import check_weights
    from search.train import train

    e = args.stage_epochs
    config = TrainConfig.load(SEED_CONFIG).replace(
        head_epochs=e, finetune_epochs=e, unfreeze_depth=20, stage_lrs=(1e-4, 5e-5, 2e-5, 1e-5),
        early_stop_patience=10 * e).replace(**overrides(args))
    check_weights(config.weights)
    data = make_data(load_source(args.data_dir), config.train_samples, config.val_samples,
                     config.split_seed)
    print(f"bench: {len(data.x_train)} train / {len(data.x_val)} val images at "
          f"{config.image_size}px, weights {config.weights}, {e} epochs per stage, "
          f"{args.aug_views} views")
    quiet = lambda *_: None  # noqa: E731
    live = None if args.skip_live else train(config, data, log=quiet)
    cache = FeatureCache(None, views=args.aug_views, dtype=args.cache_dtype)
    first = train(config, data, log=quiet, cache=cache, cache_depth=20)  # fills the cache
    fill = cache.stats.fill_seconds
    cached = train(config, data, log=quiet, cache=cache, cache_depth=20)  # every later trial
    # Per stage: [no cache,] 1st trial, cached, then the ratio (or, without the live run, the
    # cached seconds per epoch); the same columns summed in the last row.
    cols = [("1st trial (s)", _per_stage(first)), ("cached (s)", _per_stage(cached))]
    if live is not None:
        cols.insert(0, ("no cache (s)", _per_stage(live)))
    print(f"\n{'stage':<7}{'layers open':>12}" + "".join(f"{n:>15}" for n, _ in cols)
          + ("   ratio" if live else "  s/epoch"))
    rows = [(str(st.index), str(st.depth), [v[i] for _, v in cols], st.epochs)
            for i, st in enumerate(cached.stages)]
    rows.append(("all", "", [sum(v) for _, v in cols], None))
    for name, depth, vals, epochs in rows:
        last = (f"{vals[0] / max(vals[-1], 1e-9):>7.1f}x" if live
                else f"{vals[-1] / epochs:>9.2f}" if epochs else "")
        print(f"{name:<7}{depth:>12}" + "".join(f"{v:>15.1f}" for v in vals) + last)
    print(f"cache fill (once per study, inside the 1st trial): {fill:.1f}s; cache memory "
          f"{cache.memory_bytes / 2**20:.0f} MiB"
          + (f"; 1st trial {sum(cols[0][1]) / sum(cols[1][1]):.1f}x faster than no cache" if live
             else ""))
    print(f"val accuracy: {f'no cache {live.val_accuracy:.4f}, ' if live else ''}"
          f"cached {cached.val_accuracy:.4f}")
    if not args.skip_float16:
        other = "float16" if args.cache_dtype == "float32" else "float32"
        half = FeatureCache(None, views=args.aug_views, dtype=other)
        r = train(config, data, log=quiet, cache=half, cache_depth=20)
        print(f"cached as {other}: val accuracy {r.val_accuracy:.4f}, memory "
              f"{half.memory_bytes / 2**20:.0f} MiB, fill {half.stats.fill_seconds:.1f}s, "
              f"training {sum(_per_stage(r)):.1f}s")
    if args.study_trials > 0:
        rate = sum(_per_stage(live)) / sum(s.epochs for s in live.stages) if live else float("nan")
        _bench_study(args, rate)
    return 0


def _bench_study(args: argparse.Namespace, live_s_per_epoch: float) -> None:
    import optuna

    from search.cli import main

    tmp = Path(tempfile.mkdtemp(prefix="bench-study-"))
    argv = ["search", "--trials", str(args.study_trials), "--results-dir", str(tmp),
            "--aug-views", str(args.aug_views), "--cache-dtype", args.cache_dtype]
    for flag in ("space", "data_dir", "weights", "train_samples", "val_samples", "image_size"):
        v = getattr(args, flag, None)
        if v is not None:
            argv += [f"--{flag.replace('_', '-')}", str(v)]
    print(f"\nfull study: python run_search.py {' '.join(argv)}")
    t0 = time.time()
    main(argv)
    wall = time.time() - t0
    study = optuna.load_study(study_name="resnet50-cifar10",
                              storage=f"sqlite:///{tmp / 'optuna.db'}")
    epochs = sum(t.user_attrs.get("epochs", 0) for t in study.trials)
    states = {}
    for t in study.trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    print(f"full study of {len(study.trials)} trials {states} + retrain: {wall / 60:.1f} min wall; "
          f"{epochs} trial epochs, which without the cache would take about "
          f"{epochs * live_s_per_epoch / 60:.0f} min at the live rate above")
    shutil.rmtree(tmp, ignore_errors=True)

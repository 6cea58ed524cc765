"""`python run_search.py compare --budget N`: Optuna (TPE + median pruning) against KerasTuner
(Hyperband) at an equal budget of trained epochs, on the same data, space and training code.

Each search runs as `search --epoch-budget N` in its own results folder (<results-dir>/compare/
optuna and .../keras_tuner), sharing one frozen-part cache (filled by the first), and retrains
its best once and tests it. Prints best validation
accuracy, test accuracy, trials, epochs and wall time side by side; writes compare.png (best val
accuracy so far against epochs spent) and compare.csv.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from search.config import write_atomic

RUNS = {"optuna": ["--backend", "optuna", "--sampler", "tpe", "--pruner", "median"],
        "keras_tuner": ["--backend", "keras-tuner", "--tuner", "hyperband"]}


def add_parser(sub, add_data_flags) -> None:
    p = sub.add_parser("compare", help="Optuna (TPE + pruning) vs KerasTuner (Hyperband) at an "
                       "equal budget of trained epochs")
    p.add_argument("--budget", type=int, required=True,
                   help="trained epochs each search may spend (a trial in flight finishes)")
    p.add_argument("--space", help="search space YAML (default: spaces/default.yaml)")
    p.add_argument("--retrain-seeds", type=int, default=1,
                   help="seeds of each best config's retrain (default 1)")
    add_data_flags(p)


def _passthrough(args: argparse.Namespace) -> list[str]:
    argv = []
    for flag in ("space", "data_dir", "weights", "train_samples", "val_samples", "image_size",
                 "seed", "split_seed", "aug_views", "cache_dtype", "cache_dir"):
        v = getattr(args, flag, None)
        if v is not None:
            argv += [f"--{flag.replace('_', '-')}", str(v)]
    return argv + (["--no-cache"] if getattr(args, "no_cache", False) else [])


def cmd_compare(args: argparse.Namespace) -> int:
    from search.cli import main
    from search.errors import UserError

    if args.budget < 1:
        raise UserError("--budget must be at least 1 epoch.")
    root = Path(args.results_dir) / "compare"
    if args.cache_dir is None:  # one cache for both: the frozen part is filled once
        args.cache_dir = str(root / "cache")
    rows, curves = [], {}
    for name, flags in RUNS.items():
        out = root / name
        argv = ["search", "--trials", "100000", "--epoch-budget", str(args.budget),
                "--results-dir", str(out), "--retrain-seeds", str(args.retrain_seeds),
                *flags, *_passthrough(args)]
        print(f"\n== {name}: python run_search.py {' '.join(argv)}")
        t0 = time.time()
        rc = main(argv)
        wall = time.time() - t0
        if rc != 0:
            return rc
        study_dir = out / "resnet50-cifar10"
        table = pd.read_csv(study_dir / "report" / "trials.csv")
        metrics = json.loads((study_dir / "test_metrics.json").read_text())
        rows.append({"search": name, "trials": len(table),
                     "epochs": int(table["user_attrs_epochs"].fillna(0).sum()),
                     "best_val_accuracy": metrics["best_trial_value"],
                     "test_accuracy": metrics["test_accuracy_mean"],
                     "minutes": round(wall / 60, 1)})
        curves[name] = table.sort_values("number")
    df = pd.DataFrame(rows)
    write_atomic(root / "compare.csv", df.to_csv(index=False))
    print(f"\nequal budget of {args.budget} trained epochs:\n{df.to_string(index=False)}")
    print("(optuna ran first and its minutes include filling the shared frozen-part cache)")
    print(f"figure: {plot(curves, root / 'compare.png', args.budget)}")
    return 0


def plot(curves: dict[str, pd.DataFrame], path: Path, budget: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6), dpi=100)
    for name, t in curves.items():
        spent = t["user_attrs_epochs"].fillna(0).cumsum()
        best = t["value"].where(t["state"] == "COMPLETE").cummax()
        ax.step(spent, best, where="post", label=name.replace("_", " "), lw=2)
        ax.scatter(spent, t["value"], s=12, alpha=0.5)
    ax.axvline(budget, color="grey", ls="--", lw=1, label="budget")
    ax.set_xlabel("trained epochs spent (all trials, pruned ones included)")
    ax.set_ylabel("val accuracy (line: best so far; dots: each trial)")
    ax.set_title("Optuna TPE + median pruning vs KerasTuner Hyperband at an equal epoch budget")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path

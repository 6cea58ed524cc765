"""Optuna (TPE + median pruning) against KerasTuner (Hyperband) at an equal budget of trained epochs,
on the same data, space and training code.

Each search runs (search.jobs.run_search with an epoch budget) in its own results folder
(<results-dir>/compare/optuna and .../keras_tuner), sharing one frozen-part cache (filled by the
first), and retrains its best and tests it. Returns best validation accuracy, test accuracy,
trials, epochs and wall time side by side; writes compare.png (best val accuracy so far against
epochs spent) and compare.csv.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from search.errors import UserError
from search.files import save_figure, write_atomic
from search.jobs import run_search
from search.options import SearchOptions

SETTINGS = {"optuna": {"backend": "optuna", "sampler": "tpe", "pruner": "median"},
            "keras_tuner": {"backend": "keras-tuner", "tuner": "hyperband"}}


def compare(opts: SearchOptions, budget: int, log=print) -> tuple[pd.DataFrame, Path]:
    """Both searches at `budget` trained epochs; returns the side-by-side table and the figure."""
    if budget < 1:
        raise UserError("--budget must be at least 1 epoch.")
    root = Path(opts.results_dir) / "compare"
    cache_dir = opts.cache_dir or str(root / "cache")  # one cache for both: filled once
    rows, curves = [], {}
    for name, setting in SETTINGS.items():
        run = dataclasses.replace(opts, trials=100_000, epoch_budget=budget, cache_dir=cache_dir,
                                  confirm_top=0,  # no re-runs beyond the budget: as KerasTuner
                                  results_dir=str(root / name), storage=None, **setting)
        log(f"\n== {name}: {setting}, epoch budget {budget}, results in {run.results_dir}")
        out = run_search(run)
        rows.append({"search": name, "trials": len(out.table), "epochs": out.epochs,
                     "best_val_accuracy": out.best_value,
                     "test_accuracy": out.test["test_accuracy_mean"] if out.test else None,
                     "minutes": round(out.seconds / 60, 1)})
        curves[name] = out.table.sort_values("number")
    df = pd.DataFrame(rows)
    write_atomic(root / "compare.csv", df.to_csv(index=False))
    return df, plot(curves, root / "compare.png", budget)


def plot(curves: dict[str, pd.DataFrame], path: Path, budget: int) -> Path:
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
    return save_figure(fig, path)

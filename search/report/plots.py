"""The report's figures: Optuna's matplotlib plots where Optuna has them, plain matplotlib otherwise.

Each function draws one figure and saves it at its SIZES entry (inches at DPI, so a fixed pixel
size) or raises Absent with the sentence the report shows instead.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import optuna
import optuna.visualization.matplotlib as ovm
from matplotlib.ticker import NullFormatter
from optuna.trial import TrialState

from search.files import save_figure
from search.tuning import identity
from search.tuning.pruning import STAGE_ENDS

DPI = 100
SIZES = {  # inches; pixels = inches * DPI
    "best_over_time": (10, 6), "optimization_history": (10, 6), "param_importances": (10, 6),
    "parallel_coordinate": (14, 7), "slice": (16, 5), "intermediate_values": (10, 6),
    "top5_curves": (12, 13), "confusion_matrix": (9, 8), "misclassified": (14, 9.5),
}
TARGET = "val accuracy"


class Absent(Exception):
    """A figure that cannot be drawn for this study; the message says why."""


def _save(fig, name: str, out: Path, tight: bool = True) -> Path:
    fig.set_size_inches(*SIZES[name])
    if tight:  # not on Optuna's figures: their colorbars are placed for their own layout
        fig.tight_layout()
    return save_figure(fig, out / f"{name}.png", dpi=DPI)


def _fig_of(ax):
    return (ax.flat[0] if isinstance(ax, np.ndarray) else ax).figure


def _complete(study: optuna.Study) -> list:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def _varying(trials) -> list[str]:
    """Parameters that take more than one value over the trials."""
    seen: dict[str, set] = {}
    for t in trials:
        for k, v in t.params.items():
            seen.setdefault(k, set()).add(v)
    return [k for k, v in seen.items() if len(v) > 1]


def _optuna_plot(name: str, out: Path, title: str, draw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's matplotlib backend is marked experimental
        ax = draw()
    fig = _fig_of(ax)
    fig.suptitle(title, fontsize=13)
    return _save(fig, name, out, tight=False)


def optimization_history(study, out: Path) -> Path:
    if not _complete(study):
        raise Absent("no trial has completed yet, so there is no history of values to plot.")
    return _optuna_plot("optimization_history", out, "Optimization history: validation accuracy "
                        "per trial and the best so far",
                        lambda: ovm.plot_optimization_history(study, target_name=TARGET))


def best_so_far(trials) -> list[tuple[float, float]]:
    """(minutes since the first of `trials` started, best completed value by then), at the end
    of every finished trial from the first completed one on."""
    done = sorted((t for t in trials if t.datetime_complete), key=lambda t: t.datetime_complete)
    if not done:
        return []
    t0 = min(t.datetime_start for t in done)
    curve, best = [], -np.inf
    for t in done:
        if t.state == TrialState.COMPLETE and t.value > best:
            best = t.value
        if np.isfinite(best):
            curve.append(((t.datetime_complete - t0).total_seconds() / 60, float(best)))
    return curve


def best_over_time(study, out: Path) -> Path:
    """Best val accuracy so far against minutes since the first trial started: how soon the
    search pays. Every finished trial is a point at its end (pruned ones at their last report);
    the seed recipe's value is the dashed line the search must rise above."""
    trials = study.get_trials(deepcopy=False)
    curve = best_so_far(trials)
    if not curve:
        raise Absent("no trial has completed yet, so there is no best value to follow.")
    t0 = min(t.datetime_start for t in trials if t.datetime_complete)

    def points(keep, value):
        pts = [((t.datetime_complete - t0).total_seconds() / 60, value(t)) for t in trials
               if t.datetime_complete and keep(t)]
        return [p[0] for p in pts], [p[1] for p in pts]

    done = points(lambda t: t.state == TrialState.COMPLETE, lambda t: t.value)
    pruned = points(lambda t: t.state == TrialState.PRUNED and t.intermediate_values,
                    lambda t: t.intermediate_values[max(t.intermediate_values)])
    seed = next((t for t in trials if t.user_attrs.get("seed_recipe")
                 and t.state == TrialState.COMPLETE), None)
    with plt.style.context("ggplot"):  # the style Optuna's figures set: the same look, whatever ran first
        fig, ax = plt.subplots()
        ax.scatter(*done, s=16, color="tab:blue", alpha=0.6, label="completed trial")
        ax.scatter(*pruned, s=16, marker="x", color="grey", label="pruned trial (last reported value)")
        ax.step(*zip(*curve), where="post", color="tab:red", lw=2, label="best so far")
        if seed is not None:
            ax.axhline(seed.value, color="k", ls="--", lw=1, label=f"seed recipe ({seed.value:.4f})")
        ax.set_xlabel("minutes since the first trial started")
        ax.set_ylabel(TARGET)
        ax.set_title("Best val accuracy so far against wall time")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        return _save(fig, "best_over_time", out)


def param_importances(study, out: Path) -> Path:
    done = _complete(study)
    if len(done) < 2 or not _varying(done):
        raise Absent(f"parameter importances need at least 2 completed trials that differ in "
                     f"some parameter; this study has {len(done)} completed.")
    try:
        return _optuna_plot("param_importances", out, "Parameter importances (Optuna's default "
                            "evaluator, PED-ANOVA: which params set the top trials apart)",
                            lambda: ovm.plot_param_importances(study, target_name=TARGET))
    except (RuntimeError, ValueError) as e:
        raise Absent(f"Optuna could not compute importances: {e}") from None


def parallel_coordinate(study, out: Path) -> Path:
    """Over the parameters every completed trial has: the conditional stage LRs would add an
    axis of mostly 'None' each and make the plot unreadable."""
    done = _complete(study)
    if len(done) < 2 or not _varying(done):
        raise Absent("a parallel-coordinate plot needs at least 2 completed trials that differ.")
    params = [k for k in done[0].params if all(k in t.params for t in done)]
    dropped = len({k for t in done for k in t.params}) - len(params)
    note = f" ({dropped} conditional parameters left out)" if dropped else ""
    return _optuna_plot("parallel_coordinate", out, "Parallel coordinates: each line is a trial, "
                        f"coloured by val accuracy{note}",
                        lambda: ovm.plot_parallel_coordinate(study, params=params,
                                                             target_name=TARGET))


def slice_plot(study, out: Path, most: int = 6) -> Path:
    """At most `most` panels (a readable width): the parameters most trials have."""
    done = _complete(study)
    if not done:
        raise Absent("no trial has completed yet, so there is nothing to slice.")
    counts: dict[str, int] = {}
    for t in done:
        for k in t.params:
            counts[k] = counts.get(k, 0) + 1
    params = sorted(counts, key=lambda k: -counts[k])[:most]
    shown = "" if len(params) == len(counts) else f" ({len(params)} of {len(counts)} parameters)"
    def draw():
        axes = ovm.plot_slice(study, params=params, target_name=TARGET)
        for ax in np.atleast_1d(axes):
            if ax.get_xscale() == "log":  # minor labels of a narrow log range overlap
                ax.xaxis.set_minor_formatter(NullFormatter())
        return axes

    return _optuna_plot("slice", out, f"Slice plots: val accuracy against each parameter{shown}"
                        " (colour: trial number)", draw)


def intermediate_values(study, out: Path) -> Path:
    if not any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        raise Absent("no trial reported a per-epoch value yet.")
    per_stage = ((identity.read(study) or {}).get("pruning_step") == "stage"  # before 2026-11-30
                 and not any(STAGE_ENDS in t.user_attrs for t in study.get_trials(deepcopy=False)))

    def draw():
        ax = ovm.plot_intermediate_values(study)
        ax.set_xlabel("stage (the pruner's step: its end)" if per_stage
                      else "epoch (global, across stages)")
        ax.set_ylabel("best val accuracy so far" if per_stage else "val accuracy")
        if len(study.trials) > 12 and ax.get_legend() is not None:
            ax.get_legend().remove()  # one entry per trial: unreadable, and clipped
        return ax

    return _optuna_plot("intermediate_values", out, "Every trial's val accuracy "
                        f"{'at each stage end' if per_stage else 'per epoch'} (pruned trials stop "
                        "early)", draw)


def top5_curves(runs: list[tuple], out: Path) -> Path:
    """runs: (trial number, value, history DataFrame) of the best trials, best first. One panel
    per trial: train and val accuracy per global epoch, dashed lines where a stage opens more
    layers, the learning rate on a second (log) axis."""
    if not runs:
        raise Absent("no completed trial has a per-epoch history file.")
    fig, axes = plt.subplots(len(runs), 1, squeeze=False)
    for ax, (number, value, h) in zip(axes[:, 0], runs):
        ep = h["epoch"] + 1
        ax.plot(ep, h["accuracy"], color="tab:blue", label="train accuracy")
        ax.plot(ep, h["val_accuracy"], color="tab:orange", label="val accuracy")
        ax.set_ylabel("accuracy")
        ax.set_title(f"trial {number}: best val accuracy {value:.4f}", fontsize=10)
        ax.grid(alpha=0.3)
        for _, g in h.groupby("stage"):
            x0 = g["epoch"].iloc[0] + 0.5
            ax.axvline(x0, color="grey", ls="--", lw=0.8)
            ax.annotate(f"{int(g['depth'].iloc[0])} open", (x0, 1), xycoords=("data", "axes fraction"),
                        xytext=(2, -10), textcoords="offset points", fontsize=8, color="grey")
        if "learning_rate" in h:
            ax2 = ax.twinx()
            ax2.plot(ep, h["learning_rate"], color="tab:green", lw=1, label="learning rate")
            ax2.set_yscale("log")
            ax2.set_ylabel("LR (log)", color="tab:green")
        ax.legend(loc="lower right", fontsize=8)
    axes[-1, 0].set_xlabel("epoch (global, across stages)")
    fig.suptitle("Learning curves of the top trials (dashed: a stage starts; label: base layers "
                 "open; green: learning rate)", fontsize=12)
    return _save(fig, "top5_curves", out)


MAX_MATRIX_CLASSES = 50  # a bigger matrix is unreadable as a figure (and costs classes² texts)


def confusion_matrix(cm, names, out: Path, accuracy: float) -> Path:
    if len(names) > MAX_MATRIX_CLASSES:
        raise Absent(f"{len(names)} classes are too many for a readable figure (over "
                     f"{MAX_MATRIX_CLASSES}); the matrix is in test_metrics.json.")
    cm = np.asarray(cm)
    rate = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots()
    im = ax.imshow(rate, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if rate[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(im, ax=ax, label="share of the true class")
    ax.grid(False)
    ax.set_title(f"Confusion matrix of the retrained best on the test set\n"
                 f"(accuracy {accuracy:.4f}; counts in the cells)")
    return _save(fig, "confusion_matrix", out)


def misclassified(m: dict, out: Path, cols: int = 8) -> Path:
    """m: the arrays of misclassified.npz (images, true, pred, confidence, class_names)."""
    n = len(m["images"])
    if n == 0:
        raise Absent("the retrained best made no mistake on the test set.")
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, squeeze=False)
    names = [str(c) for c in m["class_names"]]
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(m["images"][k].astype("uint8"), interpolation="nearest")
            ax.set_title(f"{names[m['true'][k]]} → {names[m['pred'][k]]}\n"
                         f"p={m['confidence'][k]:.2f}", fontsize=8)
    fig.suptitle(f"The {n} most confident test mistakes of the retrained best "
                 "(true → predicted, p = predicted probability)", fontsize=12)
    return _save(fig, "misclassified", out)

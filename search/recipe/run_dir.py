"""The run folder: what every run leaves behind, beside its resolved config and command line.

    <run>/config.yaml     the resolved TrainConfig (train --config reads it back)
    <run>/command.txt     the exact command line
    <run>/split.npz       train/val indices into the source's training pool
    <run>/history.csv     one row per global epoch (stage, depth, loss, accuracy, val_*, lr)
    <run>/curves.png      learning curves with stage boundaries, LR on a second axis
    <run>/metrics.json    best val accuracy, per-stage records, test metrics when asked
    <run>/model.keras     the model (raw 0..255 pixels in, class probabilities out)
    <run>/classes.json    class names in label order, for `predict`
"""

from __future__ import annotations

import shlex
import sys
import threading
import time
from pathlib import Path

import numpy as np

from search.files import atomic_path, save_figure, within, write_atomic, write_json
from search.recipe.config import TrainConfig
from search.secrets import redact_argv


def new_run_dir(results_dir: str | Path, name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = within(results_dir, Path(results_dir) / "runs")
    for i in range(1000):
        d = root / (f"{stamp}-{name}" + (f"-{i}" if i else ""))
        try:
            d.mkdir(parents=True)
            return d
        except FileExistsError:
            continue
    raise RuntimeError(f"could not make a fresh run folder under {root}")


def command_line(argv: list[str] | None = None) -> str:
    """The command line as typed, any password in it masked."""
    argv = sys.argv if argv is None else argv
    return shlex.join(redact_argv([sys.executable.rsplit("/", 1)[-1], *argv])) + "\n"


def write_start(run_dir: Path, config: TrainConfig, argv: list[str] | None = None,
                split: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / "config.yaml")
    write_atomic(run_dir / "command.txt", command_line(argv))
    if split is not None:
        with atomic_path(run_dir / "split.npz") as tmp:
            np.savez_compressed(tmp, train_idx=split[0], val_idx=split[1])


def save_model(model, path: Path, class_names) -> None:
    """The model at `path` and its class names in classes.json beside it."""
    with atomic_path(path) as tmp:
        model.save(tmp)
    write_json(path.with_name("classes.json"), list(class_names))


def export_savedmodel(model, path: Path) -> None:
    """A TensorFlow SavedModel of `model` beside `path` (<stem>_savedmodel/), for serving
    (tf.saved_model.load, TF Serving)."""
    with atomic_path(path.with_name(f"{path.stem}_savedmodel")) as tmp:
        model.export(str(tmp), verbose=False)


# pyplot and matplotlib's text parser are not thread-safe: trials run side by side (--jobs, in
# Optuna's threads) draw their curves one at a time.
_DRAWING = threading.Lock()


def write_history(run_dir: Path, history) -> None:
    write_atomic(run_dir / "history.csv", history.to_csv(index=False))
    with _DRAWING:
        plot_curves(history, run_dir / "curves.png")


def plot_curves(history, path: Path, title: str = "Learning curves") -> None:
    """Accuracy and loss per global epoch; dashed lines where a stage opens more layers."""
    import matplotlib.pyplot as plt

    if len(history) == 0:
        return
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100)
    ep = history["epoch"] + 1
    for ax, metric, label in ((axes[0], "accuracy", "accuracy"), (axes[1], "loss", "loss")):
        ax.plot(ep, history[metric], label=f"train {label}", color="tab:blue")
        if f"val_{metric}" in history:
            ax.plot(ep, history[f"val_{metric}"], label=f"val {label}", color="tab:orange")
        ax.set_xlabel("epoch (global, across stages)")
        ax.set_ylabel(label)
        for _, g in history.groupby("stage"):
            x0 = g["epoch"].iloc[0] + 0.5
            ax.axvline(x0, color="grey", ls="--", lw=0.8)
            ax.text(x0 + 0.1, ax.get_ylim()[1], f"{int(g['depth'].iloc[0])} open", fontsize=8,
                    va="top", color="grey")
        ax.grid(alpha=0.3)
        if "learning_rate" in history and metric == "loss":
            ax2 = ax.twinx()
            ax2.plot(ep, history["learning_rate"], color="tab:green", lw=1, label="learning rate")
            ax2.set_yscale("log")
            ax2.set_ylabel("learning rate (log)")
            ax2.legend(loc="upper center", fontsize=8)
        ax.legend(loc="lower left" if metric == "accuracy" else "upper right", fontsize=8)
    axes[0].set_title("Accuracy")
    axes[1].set_title("Loss")
    fig.suptitle(f"{title} (dashed: a stage starts; label: base layers open)")
    fig.tight_layout()
    save_figure(fig, path)

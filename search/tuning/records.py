"""What a trial leaves behind, the same for every search backend: its per-stage records as flat
attributes, and where a study's files go."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

# Per-stage lists kept on every finished trial (Optuna user attrs, KerasTuner record.json), and
# spread into stage_<k>_<name> columns by the report's trials table.
STAGE_ATTRS = ("stage_seconds", "stage_epochs", "stage_best_val")
_STAGE_FIELDS = {"stage_seconds": "seconds", "stage_epochs": "epochs",
                 "stage_best_val": "best_val_accuracy"}


def stage_attrs(stages: list[dict]) -> dict[str, list]:
    """{stage_seconds: [...], stage_epochs: [...], stage_best_val: [...]} from StageRecord dicts."""
    return {attr: [s[field] for s in stages] for attr, field in _STAGE_FIELDS.items()}


def trial_dir(study_dir: Path, number: int) -> Path:
    return Path(study_dir) / "trials" / f"{number:04d}"


def artifact_dir(study_dir: Path) -> Path:
    """The study's Optuna artifact store (optuna-dashboard --artifact-dir)."""
    return Path(study_dir) / "artifacts"


# ----------------------------------------------------------------------------- the final step

# What a finalize leaves, all in one folder final/<run>/ published by switching the `best` link.
FINAL_FILES = ("best_config.yaml", "best_model.keras", "best_model_savedmodel", "classes.json",
               "misclassified.npz", "test_metrics.json")


def new_final_dir(study_dir: Path) -> Path:
    """A fresh, private folder for one finalize run: nothing a reader opens points at it yet."""
    root = Path(study_dir) / "final"
    root.mkdir(parents=True, exist_ok=True)
    d = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    d.mkdir()
    return d


def publish_final(study_dir: Path, folder: Path) -> None:
    """Make `folder` the study's final outputs in one step: `best` (a relative link) is replaced
    atomically, and <study>/best_model.keras etc. are links through it, so a reader sees one
    complete set (the previous or the new), never a mix, even with two finalizes at once."""
    study_dir = Path(study_dir)
    _link(study_dir / "best", os.path.relpath(folder, study_dir))
    for name in FINAL_FILES:
        link, target = study_dir / name, os.path.join("best", name)
        if link.is_symlink() and os.readlink(link) == target:
            continue
        if link.is_dir() and not link.is_symlink():
            shutil.rmtree(link)  # a folder of the flat layout before 2026-11-29
        _link(link, target)


def _link(path: Path, target: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.link")
    os.symlink(target, tmp)
    os.replace(tmp, path)  # atomic, over a file or a link


def final_dir(study_dir: Path) -> Path:
    """The folder holding the current final outputs, resolved once so that every file read from
    it belongs to the same finalize (the study folder itself for the flat layout of old runs)."""
    best = Path(study_dir) / "best"
    return best.resolve() if best.is_dir() else Path(study_dir)

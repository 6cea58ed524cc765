"""What a trial leaves behind, the same for every search backend: its per-stage records as flat
attributes, and where a study's files go."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

from search.files import atomic_path, within
from search.process import check_interrupt

# Per-stage lists kept on every finished trial (Optuna user attrs, KerasTuner record.json), and
# spread into stage_<k>_<name> columns by the report's trials table.
STAGE_ATTRS = ("stage_seconds", "stage_epochs", "stage_best_val")
_STAGE_FIELDS = {"stage_seconds": "seconds", "stage_epochs": "epochs",
                 "stage_best_val": "best_val_accuracy"}


def stage_attrs(stages: list[dict]) -> dict[str, list]:
    """{stage_seconds: [...], stage_epochs: [...], stage_best_val: [...]} from StageRecord dicts."""
    return {attr: [s[field] for s in stages] for attr, field in _STAGE_FIELDS.items()}


def trial_dir(study_dir: Path, number: int) -> Path:
    """A trial's folder, checked not to lead out of the study's folder (search.files.within)."""
    return within(study_dir, Path(study_dir) / "trials" / f"{number:04d}")


def artifact_dir(study_dir: Path) -> Path:
    """The study's Optuna artifact store (optuna-dashboard --artifact-dir)."""
    return Path(study_dir) / "artifacts"


# ----------------------------------------------------------------------------- the final step

# What a finalize leaves, all in one folder final/<run>/ published by switching the `best` link.
FINAL_FILES = ("best_config.yaml", "best_model.keras", "best_model_savedmodel", "classes.json",
               "misclassified.npz", "test_metrics.json")


def new_final_dir(study_dir: Path) -> Path:
    """A fresh, private folder for one finalize run: nothing a reader opens points at it yet."""
    root = within(study_dir, Path(study_dir) / "final")
    root.mkdir(parents=True, exist_ok=True)
    d = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    d.mkdir()
    return d


def publish_final(study_dir: Path, folder: Path) -> None:
    """Make `folder` the study's final outputs in one step: `best` (a relative link) is replaced
    atomically, and <study>/best_model.keras etc. are links through it, so a reader sees one
    complete set (the previous or the new), never a mix, even with two finalizes at once.

    A `best` that is a real folder (copied with `scp -r`) is moved aside into final/ first. Where
    the filesystem has no symlinks (exFAT, some network mounts), `best.json` names the folder
    instead (written atomically: readers resolve it once, see final_dir) and the top-level names
    are copies."""
    check_interrupt()  # never publish after a Ctrl-C, even one whose exception was lost
    study_dir = Path(study_dir)
    best = study_dir / "best"
    if best.is_dir() and not best.is_symlink():
        os.replace(best, study_dir / "final" / f"copied-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    try:
        _link(best, os.path.relpath(folder, study_dir))
    except OSError:  # no symlinks here: the pointer file and copies
        _publish_by_pointer(study_dir, folder)
        return
    (study_dir / POINTER).unlink(missing_ok=True)
    for name in FINAL_FILES:
        link, target = study_dir / name, os.path.join("best", name)
        if link.is_symlink() and os.readlink(link) == target:
            continue
        if link.is_dir() and not link.is_symlink():
            shutil.rmtree(link)  # a folder of the flat layout before 2026-11-29
        _link(link, target)


POINTER = "best.json"  # names the final folder where the filesystem has no symlinks


def _publish_by_pointer(study_dir: Path, folder: Path) -> None:
    from search.files import write_json

    write_json(study_dir / POINTER, {"final": folder.name})
    for name in FINAL_FILES:
        src, dst = folder / name, study_dir / name
        if not src.exists():
            continue
        with atomic_path(dst) as tmp:
            shutil.copytree(src, tmp) if src.is_dir() else shutil.copy2(src, tmp)


def _link(path: Path, target: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.link")
    os.symlink(target, tmp)
    try:
        os.replace(tmp, path)  # atomic, over a file or a link
    finally:
        if tmp.is_symlink():
            tmp.unlink()


def final_dir(study_dir: Path) -> Path:
    """The folder holding the current final outputs, resolved once so that every file read from
    it belongs to the same finalize: through `best`, else `best.json` (no symlinks), else the
    study folder itself (the flat layout of old runs)."""
    study_dir = Path(study_dir)
    best = study_dir / "best"
    if best.is_dir():  # a link (or a folder copied in its place)
        return best.resolve()
    pointer = study_dir / POINTER
    if pointer.is_file():
        try:
            name = json.loads(pointer.read_text())["final"]
        except (ValueError, KeyError, TypeError, OSError):
            name = None
        if isinstance(name, str) and "/" not in name and name not in (".", ".."):
            return study_dir / "final" / name
    return study_dir

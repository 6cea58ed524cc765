"""What a trial leaves behind, the same for every search backend: its per-stage records as flat
attributes, and where a study's files go."""

from __future__ import annotations

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

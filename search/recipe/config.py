"""TrainConfig: every knob of one training run, as one frozen dataclass.

It is the only thing that passes from the search (or the CLI) into training. It round-trips through
YAML and JSON without loss; an unknown key or a wrong type is rejected with the key named.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from search.errors import ConfigError
from search.files import write_atomic

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED_CONFIG = REPO_ROOT / "configs" / "seed.yaml"


@dataclass(frozen=True)
class TrainConfig:
    # --- data ---
    seed: int = 0  # seeds weight init, augmentation, dropout and shuffling
    split_seed: int = 0  # seeds the train/val split alone, so retrains over seeds share one split
    train_samples: int = 10_000  # taken from the source's training pool, stratified
    val_samples: int = 2_000  # held out of train_samples, stratified; used for early stopping
    image_size: int = 32  # pixels; images are resized up when larger than the source
    # --- backbone ---
    weights: str = "imagenet"  # "imagenet", "none", or a path to a notop weights file
    # --- head ---
    head_layers: int = 1  # number of [Dense+ReLU, BatchNorm, Dropout] blocks
    head_width: int = 256  # units per Dense block
    dropout: float = 0.5
    label_smoothing: float = 0.1
    # --- stage 0: base frozen, head trained ---
    head_epochs: int = 10
    head_lr: float = 1e-3
    # --- stages 1..k: top 5, 10, ... layers of the base opened cumulatively ---
    unfreeze_step: int = 5  # layers opened per stage
    unfreeze_depth: int = 20  # layers open in the last stage; 0 = head only
    stage_lrs: tuple[float, ...] = (1e-4, 5e-5, 2e-5, 1e-5)  # one per fine-tuning stage
    finetune_epochs: int = 5  # max epochs of each fine-tuning stage
    # --- optimisation ---
    batch_size: int = 128
    weight_decay: float = 0.0  # AdamW decoupled weight decay; 0 = plain Adam
    early_stop_patience: int = 3  # epochs without val_accuracy gain before a stage stops
    reduce_lr_patience: int = 2  # epochs without val_loss gain before LR is cut
    reduce_lr_factor: float = 0.5
    min_lr: float = 1e-7
    # --- augmentation (training images only; Keras preprocessing layers) ---
    aug_flip: bool = True  # random horizontal flip
    aug_translate: float = 0.1  # fraction of height/width
    aug_rotate: float = 0.05  # fraction of a full turn (0.05 = ±18°)
    aug_zoom: float = 0.1  # fraction of size

    def __post_init__(self) -> None:
        object.__setattr__(self, "stage_lrs", tuple(float(v) for v in self.stage_lrs))
        self.validate()

    # The number of fine-tuning stages this config runs.
    @property
    def n_stages(self) -> int:
        return self.unfreeze_depth // self.unfreeze_step if self.unfreeze_step else 0

    def stage_depths(self) -> list[int]:
        """Layers of the base open in each stage, stage 0 first: [0, 5, 10, ...]."""
        return [i * self.unfreeze_step for i in range(self.n_stages + 1)]

    def validate(self) -> None:
        def need(cond: bool, key: str, what: str) -> None:
            if not cond:
                raise ConfigError(f"config key '{key}' {what} (got {getattr(self, key)!r}).")

        need(self.train_samples > 0, "train_samples", "must be positive")
        need(0 < self.val_samples < self.train_samples, "val_samples",
             "must be positive and smaller than train_samples")
        need(self.image_size >= 32, "image_size", "must be at least 32 (ResNet50's minimum)")
        need(self.head_layers >= 0, "head_layers", "must be 0 or more")
        need(self.head_width > 0, "head_width", "must be positive")
        need(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        need(0.0 <= self.label_smoothing < 1.0, "label_smoothing", "must be in [0, 1)")
        need(self.head_epochs >= 1, "head_epochs", "must be at least 1")
        need(self.unfreeze_step > 0, "unfreeze_step", "must be positive")
        need(0 <= self.unfreeze_depth <= 174, "unfreeze_depth", "must be in [0, 174]")
        need(self.unfreeze_depth % self.unfreeze_step == 0, "unfreeze_depth",
             f"must be a multiple of unfreeze_step={self.unfreeze_step}")
        need(len(self.stage_lrs) == self.n_stages, "stage_lrs",
             f"must list one learning rate per fine-tuning stage ({self.n_stages})")
        need(all(v > 0 and math.isfinite(v) for v in self.stage_lrs), "stage_lrs",
             "must be positive")
        need(self.head_lr > 0, "head_lr", "must be positive")
        need(self.finetune_epochs >= 1, "finetune_epochs", "must be at least 1")
        need(self.batch_size > 0, "batch_size", "must be positive")
        need(self.weight_decay >= 0, "weight_decay", "must be 0 or more")
        need(0 < self.reduce_lr_factor < 1, "reduce_lr_factor", "must be in (0, 1)")

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    # ----- serialisation -----
    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, raw: Any, source: str = "config") -> TrainConfig:
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: expected a mapping of config keys, got {type(raw).__name__}.")
        known = {f.name: f for f in fields(cls)}
        kwargs = {}
        for key, value in raw.items():
            if key not in known:
                raise ConfigError(f"{source}: unknown config key '{key}'; known keys: "
                                  f"{', '.join(known)}.")
            kwargs[key] = _coerce(key, value, known[key].type, source)
        try:
            return cls(**kwargs)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; pass an existing YAML or JSON file.")
        text = path.read_text()
        try:
            raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (yaml.YAMLError, json.JSONDecodeError) as e:
            raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: "
                              f"{str(e).splitlines()[0]}.") from None
        return cls.from_dict(raw or {}, source=str(path))

    def save(self, path: str | Path) -> None:
        path = Path(path)
        text = self.to_json() if path.suffix == ".json" else self.to_yaml()
        write_atomic(path, text)


def _coerce(key: str, value: Any, typ: str, source: str) -> Any:
    """Check one value against its annotated type (annotations are strings here)."""

    def bad() -> ConfigError:
        return ConfigError(f"{source}: config key '{key}' must be {typ}, got {value!r}.")

    if typ == "bool":
        if not isinstance(value, bool):
            raise bad()
        return value
    if typ == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        return value
    if typ == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad()
        return float(value)
    if typ == "str":
        if not isinstance(value, str):
            raise bad()
        return value
    if typ.startswith("tuple[float"):
        if not isinstance(value, (list, tuple)) or any(
            isinstance(v, bool) or not isinstance(v, (int, float)) for v in value
        ):
            raise bad()
        return tuple(float(v) for v in value)
    raise bad()

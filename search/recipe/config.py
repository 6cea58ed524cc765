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

from search.errors import ConfigError, show
from search.files import write_atomic

# Where configs/ and spaces/ are: inside the installed package, else at the top of a checkout.
_PACKAGE = Path(__file__).resolve().parents[1]
SHIPPED = _PACKAGE if (_PACKAGE / "configs").is_dir() else _PACKAGE.parent
MAX_HEAD_WEIGHTS = 50_000_000  # ResNet50's own base has 23.6 million


def head_weights(width: int, layers: int, features: int = 2048, classes: int = 10) -> int:
    """Weights of the head: [Dense(width) + BatchNorm] x layers, then softmax over classes."""
    if layers == 0:
        return features * classes + classes
    return (features * width + width + 4 * width + (layers - 1) * (width * width + 5 * width)
            + width * classes + classes)
SEED_CONFIG = SHIPPED / "configs" / "seed.yaml"


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
        """Every field's range: a config that passes trains without a numpy or Keras traceback."""
        def need(cond: bool, key: str, what: str) -> None:
            if not cond:
                raise ConfigError(f"config key '{key}' {what} (got {show(getattr(self, key))}).")

        def within(key: str, low: float, high: float, low_open: bool = False,
                   high_open: bool = False) -> None:
            v = getattr(self, key)
            ok = math.isfinite(v) and (v > low if low_open else v >= low) and (
                v < high if high_open else v <= high)
            if math.isinf(high):
                need(ok, key, f"must be finite and {'>' if low_open else '>='} {_num(low)}")
            need(ok, key, f"must be in {'(' if low_open else '['}{_num(low)}, {_num(high)}"
                          f"{')' if high_open else ']'}")

        for key in ("seed", "split_seed"):
            within(key, 0, 2**32, high_open=True)
        need(self.train_samples > 0, "train_samples", "must be positive")
        need(0 < self.val_samples < self.train_samples, "val_samples",
             "must be positive and smaller than train_samples")
        within("image_size", 32, 1024)
        need(self.weights.strip() != "", "weights", "must be imagenet, none or a file path")
        within("head_layers", 0, 8)
        within("head_width", 1, 16384)
        weights = head_weights(self.head_width, self.head_layers)
        if weights > MAX_HEAD_WEIGHTS:
            raise ConfigError(f"config keys 'head_width' ({self.head_width}) and 'head_layers' "
                              f"({self.head_layers}) make a head of {weights / 1e6:,.0f} million "
                              f"weights, over the {MAX_HEAD_WEIGHTS // 10**6} million a head may "
                              "have; lower head_width or head_layers.")
        within("dropout", 0.0, 1.0, high_open=True)
        within("label_smoothing", 0.0, 1.0, high_open=True)
        within("head_epochs", 1, 1000)
        within("head_lr", 0.0, math.inf, low_open=True)  # finite; a huge one diverges, a trial's risk
        within("unfreeze_step", 1, 174)
        within("unfreeze_depth", 0, 174)
        need(self.unfreeze_depth % self.unfreeze_step == 0, "unfreeze_depth",
             f"must be a multiple of unfreeze_step={self.unfreeze_step}")
        need(len(self.stage_lrs) == self.n_stages, "stage_lrs",
             f"must list one learning rate per fine-tuning stage ({self.n_stages})")
        need(all(0 < v and math.isfinite(v) for v in self.stage_lrs), "stage_lrs",
             "must all be positive and finite")
        within("finetune_epochs", 1, 1000)
        within("batch_size", 1, 65536)
        within("weight_decay", 0.0, 1.0, high_open=True)
        within("early_stop_patience", 0, 1000)
        within("reduce_lr_patience", 0, 1000)
        within("reduce_lr_factor", 0.0, 1.0, low_open=True, high_open=True)
        within("min_lr", 0.0, 1.0)
        within("aug_translate", 0.0, 1.0)
        within("aug_rotate", 0.0, 0.5)
        within("aug_zoom", 0.0, 1.0, high_open=True)

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
        try:
            text = path.read_text()
            raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
            raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: "
                              f"{(str(e).splitlines() or [type(e).__name__])[0][:200]}.") from None
        except (RecursionError, ValueError):  # nesting deeper than Python's stack; huge numbers
            raise ConfigError(f"{path}: nested too deeply or holding numbers too large to read; "
                              "a config is a flat mapping of keys to numbers, strings and "
                              "lists.") from None
        return cls.from_dict(raw or {}, source=str(path))

    def save(self, path: str | Path) -> None:
        path = Path(path)
        text = self.to_json() if path.suffix == ".json" else self.to_yaml()
        write_atomic(path, text)


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _coerce(key: str, value: Any, typ: str, source: str) -> Any:
    """Check one value against its annotated type (annotations are strings here)."""

    def bad() -> ConfigError:
        return ConfigError(f"{source}: config key '{key}' must be {typ}, got {show(value)}.")

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

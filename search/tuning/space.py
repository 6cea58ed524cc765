"""Search spaces: read from spaces/*.yaml in this one place, validated on load, backend-neutral.

A space file:

    base_config: ../configs/seed.yaml   # every key not searched comes from here (relative path)
    fixed: {head_epochs: 3}             # optional overrides of the base config
    params:
      head_lr:        {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      unfreeze_depth: {type: int, low: 0, high: 20, step: 5}
      stage_lr:       {type: float, low: 1.0e-6, high: 1.0e-3, log: true, per_stage: true}
      head_width:     {type: categorical, choices: [128, 256, 512]}

Each param names a TrainConfig key, except these: a `per_stage` param, which becomes one value per
fine-tuning stage the trial runs (`stage_lr_1` .. `stage_lr_k`, conditional) and fills
`stage_lrs`; or, instead of it, the pair `stage_lr_base` and `stage_lr_decay`, which fill
`stage_lrs` as base x decay^(i-1) for stage i (two dimensions at any depth: the effective LR and
how it falls, the knobs fine-tuning studies find matter most); and `unfreeze_stages`, the number
of fine-tuning stages, which sets unfreeze_depth to unfreeze_stages x unfreeze_step (so that the
layers opened per stage can be searched too, the seed recipe's 4 stages of 5 layers and 4 of 30
in one space). In the decay form the seed recipe's LRs become the pair that fits them (its first
LR, and the geometric mean of its ratios); that point of the space stands for the seed recipe's
own LRs, so trial 0 trains the seed recipe exactly. Nothing here knows Optuna or
KerasTuner: the adapters turn Param into their own distributions (search/tuning/optuna_space.py,
search/tuning/kt_backend.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from search.errors import ConfigError, show
from search.recipe.config import SHIPPED, TrainConfig

SPACES_DIR = SHIPPED / "spaces"
DEFAULT_SPACE = SPACES_DIR / "default.yaml"
# Config keys a study fixes once (its data split and backbone are recorded and cached per study).
STUDY_FIXED = {
    "train_samples": "the study draws its train/val split once",
    "val_samples": "the study draws its train/val split once",
    "split_seed": "the study draws its train/val split once",
    "weights": "the study's backbone (and its cache) is fixed when it starts",
}
MAX_DEPTH = 174  # layers of ResNet50 (no top) above its input: the most a stage can open
STAGE_PARAM = "stage_lr"  # the one per-stage param: it fills TrainConfig.stage_lrs
STAGES_PARAM = "unfreeze_stages"  # not a config key: unfreeze_depth = stages x unfreeze_step
LR_BASE, LR_DECAY = "stage_lr_base", "stage_lr_decay"  # not config keys: stage i's LR = base x decay^(i-1)
LR_PAIR = (LR_BASE, LR_DECAY)
NOT_KEYS = (STAGES_PARAM, *LR_PAIR)  # scalar params that set config keys of other names
KEYS = {"float": {"type", "low", "high", "log", "step", "per_stage"},
        "int": {"type", "low", "high", "log", "step"},
        "categorical": {"type", "choices"}}


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # "float" | "int" | "categorical"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()
    per_stage: bool = False

    def contains(self, value: Any) -> bool:
        if self.type == "categorical":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.type == "int" and value != int(value):
            return False
        if not self.low <= value <= self.high:
            return False
        if self.step:
            k = (value - self.low) / self.step
            return math.isclose(k, round(k), abs_tol=1e-9)
        return True


@dataclass(frozen=True)
class Space:
    path: Path
    base: TrainConfig  # base config with `fixed` applied
    params: tuple[Param, ...]

    @property
    def stage_param(self) -> Param | None:
        return next((p for p in self.params if p.per_stage), None)

    @property
    def lr_decay_form(self) -> bool:
        """Whether the stages' LRs come from stage_lr_base and stage_lr_decay."""
        return self.param(LR_BASE) is not None

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def with_base(self, **overrides: Any) -> Space:
        """The same space over a base with CLI overrides applied (data flags, weights)."""
        base = TrainConfig.from_dict({**self.base.to_dict(), **overrides}, source=str(self.path))
        return Space(self.path, base, self.params)

    def highest(self, name: str):
        """The largest value `name` takes in this space (its base value when not searched)."""
        p = self.param(name)
        if p is None:
            return getattr(self.base, name) if name != STAGES_PARAM else self.base.n_stages
        return max(p.choices) if p.type == "categorical" else p.high

    def max_stages(self) -> int:
        """The most fine-tuning stages any trial of this space runs."""
        if self.param(STAGES_PARAM) is not None:
            return int(self.highest(STAGES_PARAM))
        return int(self.highest("unfreeze_depth")) // self.base.unfreeze_step

    def max_depth(self) -> int:
        """The deepest unfreeze depth any trial of this space can reach (the cache's boundary)."""
        if self.param(STAGES_PARAM) is not None:
            return int(self.highest(STAGES_PARAM) * self.highest("unfreeze_step"))
        return int(self.highest("unfreeze_depth"))

    def max_epochs(self) -> int:
        """Epochs of the longest trial's full schedule (head stage + every stage at max depth):
        the resource a pruner or tuner budgets against."""
        return int(self.highest("head_epochs") + self.highest("finetune_epochs") * self.max_stages())

    def stage_count(self, values: dict[str, Any]) -> int:
        """The number of fine-tuning stages a trial with these values runs."""
        if STAGES_PARAM in values:
            return int(values[STAGES_PARAM])
        depth = values.get("unfreeze_depth", self.base.unfreeze_depth)
        return depth // values.get("unfreeze_step", self.base.unfreeze_step)

    @staticmethod
    def stage_names(n_stages: int) -> list[str]:
        return [f"{STAGE_PARAM}_{i}" for i in range(1, n_stages + 1)]

    def to_config(self, values: dict[str, Any]) -> TrainConfig:
        """A trial's values (flat names, stage_lr_i included) on top of the base config."""
        d = self.base.to_dict()
        for p in self.params:
            if not p.per_stage and p.name not in NOT_KEYS:
                d[p.name] = values[p.name]
        if STAGES_PARAM in values:
            d["unfreeze_depth"] = int(values[STAGES_PARAM]) * d["unfreeze_step"]
        sp = self.stage_param
        if sp is not None:
            d["stage_lrs"] = [values[n] for n in self.stage_names(self.stage_count(values))]
        if self.lr_decay_form:
            d["stage_lrs"] = self._decayed_lrs(values[LR_BASE], values[LR_DECAY],
                                               self.stage_count(values))
        return TrainConfig.from_dict(d, source=f"{self.path} (trial values)")

    def _decayed_lrs(self, base: float, decay: float, n: int) -> list[float]:
        if n == self.base.n_stages and (base, decay) == seed_lr_pair(self.base.stage_lrs):
            return list(self.base.stage_lrs)  # the seed recipe's point: its own LRs, exactly
        return [base * decay ** i for i in range(n)]

    def seed_values(self) -> dict[str, Any]:
        """The base config (the seed recipe) as values of this space's params."""
        out = {p.name: (self.base.n_stages if p.name == STAGES_PARAM else getattr(self.base, p.name))
               for p in self.params if not p.per_stage and p.name not in LR_PAIR}
        if self.stage_param is not None:
            out.update(zip(self.stage_names(self.base.n_stages), self.base.stage_lrs))
        if self.lr_decay_form:
            out[LR_BASE], out[LR_DECAY] = seed_lr_pair(self.base.stage_lrs)
        return out

    def seed_outside(self) -> list[str]:
        """Names whose seed value lies outside this space (those cannot be enqueued)."""
        sp = self.stage_param
        return [n for n, v in self.seed_values().items()
                if not (self.param(n) or sp).contains(v)]


def seed_lr_pair(lrs) -> tuple[float, float]:
    """The (base, decay) that fits a list of stage LRs: its first LR, and the geometric mean of
    its ratios (last / first)^(1 / (n - 1)); decay 1.0 for one stage. A recipe without stages
    has no LR to fit: (1e-4, 1.0), a common fine-tuning LR held flat."""
    if not lrs:
        return 1e-4, 1.0
    if len(lrs) == 1:
        return float(lrs[0]), 1.0
    return float(lrs[0]), float((lrs[-1] / lrs[0]) ** (1.0 / (len(lrs) - 1)))


def load_space(path: str | Path | None = None) -> Space:
    path = Path(path) if path else DEFAULT_SPACE
    if not path.exists() and path.parent == Path(".") and (SPACES_DIR / f"{path}.yaml").is_file():
        path = SPACES_DIR / f"{path}.yaml"  # a shipped space by name: tiny, small, conv5, default
    if not path.is_file():
        raise ConfigError(f"space file {path} does not exist; pass --space with a YAML file "
                          f"such as {DEFAULT_SPACE}.")
    try:
        raw = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as e:
        raise ConfigError(f"{path}: not valid YAML: "
                          f"{(str(e).splitlines() or [type(e).__name__])[0][:200]}.") from None
    except (RecursionError, ValueError):  # nesting deeper than Python's stack; huge numbers
        raise ConfigError(f"{path}: nested too deeply or holding numbers too large to read; a "
                          "space file is a mapping of params to their bounds.") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a space file is a mapping with 'params' (and optional "
                          "'base_config', 'fixed').")
    unknown = set(raw) - {"base_config", "fixed", "params", "description"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key '{sorted(unknown)[0]}'; allowed: "
                          "base_config, fixed, params, description.")
    base = _base_config(path, raw)
    params = raw.get("params")
    if not isinstance(params, dict) or not params:
        raise ConfigError(f"{path}: key 'params' must be a non-empty mapping of parameter names.")
    parsed = tuple(_param(path, name, spec, base) for name, spec in params.items())
    space = Space(path, base, parsed)
    _check_stages(space)
    if space.max_depth() > MAX_DEPTH:
        raise ConfigError(f"{path}: its deepest trial opens {space.max_depth()} layers "
                          f"(stages x step), past the {MAX_DEPTH} layers ResNet50 has above its "
                          "input; lower the highest unfreeze_stages or unfreeze_step.")
    return space


def _base_config(path: Path, raw: dict) -> TrainConfig:
    ref = raw.get("base_config", "../configs/seed.yaml")
    if not isinstance(ref, str):
        raise ConfigError(f"{path}: key 'base_config' must be a path string.")
    base_path = (path.parent / ref).resolve()
    base = TrainConfig.load(base_path)
    fixed = raw.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise ConfigError(f"{path}: key 'fixed' must be a mapping of config keys to values.")
    return TrainConfig.from_dict({**base.to_dict(), **fixed}, source=f"{path} (fixed)")


def _param(path: Path, name: str, spec: Any, base: TrainConfig) -> Param:
    where = f"{path}: param '{name}'"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} must be a mapping with 'type' and its bounds or choices.")
    typ = spec.get("type")
    if typ not in KEYS:
        raise ConfigError(f"{where}: key 'type' must be float, int or categorical, got {show(typ)}.")
    extra = set(spec) - KEYS[typ]
    if extra:
        raise ConfigError(f"{where}: unknown key '{sorted(extra)[0]}' for type {typ}; allowed: "
                          f"{', '.join(sorted(KEYS[typ]))}.")
    if name in STUDY_FIXED:
        raise ConfigError(f"{where}: '{name}' cannot be searched: {STUDY_FIXED[name]}, so every "
                          "trial must share it; set it under 'fixed' (or with its command-line "
                          "flag) instead.")
    per_stage = spec.get("per_stage", False)
    field_types = {f.name: f.type for f in fields(TrainConfig)}
    target = ("float" if per_stage or name in LR_PAIR
              else "int" if name == STAGES_PARAM else field_types.get(name))
    if per_stage and name != STAGE_PARAM:
        raise ConfigError(f"{where}: key 'per_stage' is only for '{STAGE_PARAM}'.")
    if not per_stage and target is None:
        raise ConfigError(f"{where}: unknown parameter; use a TrainConfig key, '{STAGES_PARAM}', "
                          f"'{STAGE_PARAM}' with per_stage: true, or '{LR_BASE}' with "
                          f"'{LR_DECAY}'.")
    if typ == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: key 'choices' must be a non-empty list.")
        for c in choices:  # each choice must make a valid config value
            if name == STAGES_PARAM:
                _check_stage_count(where, c)
                continue
            if name in LR_PAIR:
                _check_lr_value(where, c)
                continue
            TrainConfig.from_dict({**base.to_dict(), name: c, **_stage_fill(base, name, c)},
                                  source=where)
        return Param(name, typ, choices=tuple(choices))
    for key in ("low", "high"):
        v = spec.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"{where}: key '{key}' must be a number, got {show(v)}.")
        if typ == "int" and not isinstance(v, int):
            raise ConfigError(f"{where}: key '{key}' must be an integer for type int, got {show(v)}.")
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    if not low < high:
        raise ConfigError(f"{where}: key 'low' ({low}) must be below 'high' ({high}).")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: key 'log' must be true or false.")
    if log and low <= 0:
        raise ConfigError(f"{where}: key 'low' must be > 0 when log is true, got {low}.")
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0
                             or (typ == "int" and not isinstance(step, int))):
        raise ConfigError(f"{where}: key 'step' must be a positive number (an integer for type "
                          f"int), got {show(step)}.")
    if step is not None and log:
        raise ConfigError(f"{where}: key 'step' cannot be combined with log: true.")
    if typ == "float" and target not in ("float",):
        raise ConfigError(f"{where}: config key '{name}' is {target}, so the type must match, not float.")
    if typ == "int" and target not in ("int", "float"):
        raise ConfigError(f"{where}: config key '{name}' is {target}, so the type cannot be int.")
    p = Param(name, typ, low, high, log, step, per_stage=bool(per_stage))
    for v in (low, high):  # both ends must make a valid config (e.g. dropout < 1)
        if name == STAGES_PARAM:
            _check_stage_count(where, v)
        elif name in LR_PAIR:
            _check_lr_value(where, v)
        elif not per_stage:
            TrainConfig.from_dict({**base.to_dict(), name: v, **_stage_fill(base, name, v)},
                                  source=where)
    return p


def _check_stage_count(where: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 20:
        raise ConfigError(f"{where}: a number of stages must be an integer from 0 to 20, "
                          f"got {show(value)}.")


def _check_lr_value(where: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ConfigError(f"{where}: a stage LR or its decay factor must be a positive finite "
                          f"number, got {show(value)}.")


def _stage_fill(base: TrainConfig, name: str, value: Any) -> dict:
    """When checking an unfreeze bound, give the config a matching depth and number of stage LRs."""
    if name == "unfreeze_depth":
        return {"stage_lrs": [1e-4] * (int(value) // base.unfreeze_step)}
    if name == "unfreeze_step":
        return {"unfreeze_depth": int(value) * base.n_stages}
    return {}


def _check_stages(space: Space) -> None:
    pair = [space.param(n) is not None for n in LR_PAIR]
    if any(pair) and not all(pair):
        raise ConfigError(f"{space.path}: params '{LR_BASE}' and '{LR_DECAY}' come as a pair (stage "
                          f"i's LR = base x decay^(i-1)); add the missing one.")
    if all(pair) and space.stage_param is not None:
        raise ConfigError(f"{space.path}: params '{STAGE_PARAM}' and '{LR_BASE}'/'{LR_DECAY}' both "
                          "set the stages' LRs; keep one form.")
    if all(pair) and space.param("stage_lrs") is not None:
        raise ConfigError(f"{space.path}: params 'stage_lrs' and '{LR_BASE}'/'{LR_DECAY}' both set "
                          "the stages' LRs; keep one form.")
    has_lrs = space.stage_param is not None or all(pair)
    counted = space.param(STAGES_PARAM)
    if counted is not None:
        if space.param("unfreeze_depth") is not None:
            raise ConfigError(f"{space.path}: params '{STAGES_PARAM}' and 'unfreeze_depth' both set "
                              f"the depth; keep one ('{STAGES_PARAM}' sets it to stages x "
                              "unfreeze_step).")
        if not has_lrs:
            raise ConfigError(f"{space.path}: param '{STAGES_PARAM}' needs '{STAGE_PARAM}' "
                              f"(per_stage: true) or '{LR_BASE}' with '{LR_DECAY}' to give each "
                              "stage its LR.")
        return
    if space.param("unfreeze_step") is not None:
        raise ConfigError(f"{space.path}: param 'unfreeze_step' is searched, so the number of "
                          f"stages must be too: add '{STAGES_PARAM}' (an int) and drop "
                          "'unfreeze_depth'.")
    depth = space.param("unfreeze_depth")
    step = space.base.unfreeze_step
    if depth is not None:
        if depth.type == "categorical":
            bad = [c for c in depth.choices if c % step]
        else:
            s = depth.step or 1
            bad = [v for v in range(depth.low, depth.high + 1, s) if v % step]
        if bad:
            raise ConfigError(f"{space.path}: param 'unfreeze_depth' allows {bad[0]}, which is not "
                              f"a multiple of unfreeze_step={step}; set step: {step}.")
        if not has_lrs:
            raise ConfigError(f"{space.path}: param 'unfreeze_depth' varies, so the space needs "
                              f"'{STAGE_PARAM}' (per_stage: true) or '{LR_BASE}' with "
                              f"'{LR_DECAY}' to give each stage its LR.")

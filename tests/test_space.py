from pathlib import Path

import optuna
import pytest

from search.errors import ConfigError
from search.tuning.optuna_space import all_distributions, suggest
from search.tuning.space import SPACES_DIR, load_space


@pytest.mark.parametrize("path", sorted(SPACES_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_space_loads_and_holds_the_seed_recipe(path):
    space = load_space(path)
    assert space.params
    assert space.seed_outside() == []  # trial 0 can be the seed recipe itself
    assert space.to_config(space.seed_values()) == space.base


def test_fixed_trial_gives_the_expected_config_with_conditional_stage_lrs():
    space = load_space(SPACES_DIR / "conv5.yaml")
    params = {"head_lr": 3e-3, "unfreeze_depth": 10, "stage_lr_1": 2e-4, "stage_lr_2": 7e-6,
              "dropout": 0.3, "head_width": 512, "label_smoothing": 0.05}
    values = suggest(optuna.trial.FixedTrial(params), space)
    assert values == params  # exactly the two stage LRs that depth 10 opens
    cfg = space.to_config(values)
    assert (cfg.head_lr, cfg.unfreeze_depth, cfg.stage_lrs) == (3e-3, 10, (2e-4, 7e-6))
    assert (cfg.dropout, cfg.head_width, cfg.label_smoothing) == (0.3, 512, 0.05)
    assert cfg.head_epochs == space.base.head_epochs  # the rest comes from the base config

    head_only = suggest(optuna.trial.FixedTrial({**params, "unfreeze_depth": 0}), space)
    assert not any(k.startswith("stage_lr") for k in head_only)
    assert space.to_config(head_only).stage_lrs == ()
    assert set(all_distributions(space)) >= set(params)


def test_the_default_space_searches_the_layers_per_stage_and_the_number_of_stages():
    space = load_space(SPACES_DIR / "default.yaml")
    assert (space.max_stages(), space.max_depth()) == (4, 120)  # 4 stages of 30: into conv3
    assert space.max_epochs() == space.base.head_epochs + 6 * 4
    params = {"head_lr": 3e-3, "unfreeze_step": 30, "unfreeze_stages": 3, "stage_lr_1": 5e-4,
              "stage_lr_2": 3e-4, "stage_lr_3": 2e-4, "finetune_epochs": 6, "dropout": 0.3,
              "head_width": 512, "label_smoothing": 0.05}
    values = suggest(optuna.trial.FixedTrial(params), space)
    assert values == params  # exactly the three stage LRs that 3 stages need
    cfg = space.to_config(values)
    assert (cfg.unfreeze_step, cfg.unfreeze_depth, cfg.n_stages) == (30, 90, 3)
    assert cfg.stage_depths() == [0, 30, 60, 90]
    assert (cfg.stage_lrs, cfg.finetune_epochs) == ((5e-4, 3e-4, 2e-4), 6)
    seed = space.seed_values()  # the seed recipe: 4 stages of 5 layers
    assert (seed["unfreeze_step"], seed["unfreeze_stages"]) == (5, 4)
    assert set(all_distributions(space)) == set(params) | {"stage_lr_4"}
    head_only = suggest(optuna.trial.FixedTrial({**params, "unfreeze_stages": 0}), space)
    assert space.to_config(head_only).unfreeze_depth == 0
    assert not any(k.startswith("stage_lr") for k in head_only)


def test_the_lr_decay_space_gives_every_stage_its_lr_from_two_values_and_the_seed_its_own():
    space = load_space(SPACES_DIR / "lr-decay.yaml")
    params = {"head_lr": 3e-3, "unfreeze_step": 30, "unfreeze_stages": 3, "stage_lr_base": 4e-4,
              "stage_lr_decay": 0.5, "finetune_epochs": 6, "dropout": 0.3, "head_width": 512,
              "label_smoothing": 0.05}
    values = suggest(optuna.trial.FixedTrial(params), space)
    assert values == params  # two LR dimensions at any depth, none conditional
    assert set(all_distributions(space)) == set(params)
    cfg = space.to_config(values)
    assert (cfg.unfreeze_depth, cfg.stage_lrs) == (90, (4e-4, 2e-4, 1e-4))
    head_only = space.to_config({**params, "unfreeze_stages": 0})
    assert (head_only.unfreeze_depth, head_only.stage_lrs) == (0, ())
    seed = space.seed_values()  # the seed recipe's 1e-4, 5e-5, 2e-5, 1e-5: first LR, mean ratio
    assert seed["stage_lr_base"] == 1e-4 and seed["stage_lr_decay"] == pytest.approx(0.1 ** (1 / 3))
    assert space.to_config(seed).stage_lrs == (1e-4, 5e-5, 2e-5, 1e-5)  # exactly its own
    near = space.to_config({**seed, "stage_lr_decay": 0.5})
    assert near.stage_lrs == (1e-4, 5e-5, 2.5e-5, 1.25e-5)
    deeper = space.to_config({**seed, "unfreeze_step": 30})  # the seed's LRs at another depth
    assert deeper.stage_lrs == (1e-4, 5e-5, 2e-5, 1e-5) and deeper.unfreeze_depth == 120


def write(tmp_path: Path, body: str) -> Path:
    f = tmp_path / "space.yaml"
    f.write_text(f"base_config: {SPACES_DIR.parent / 'configs' / 'seed.yaml'}\n{body}")
    return f


@pytest.mark.parametrize("body,needle", [
    ("params:\n  dropout: {type: float, low: 0.5, high: 0.1}\n", "'dropout'"),
    ("params:\n  head_lr: {type: float, low: 0.0, high: 0.1, log: true}\n", "'head_lr'"),
    ("params:\n  head_width: {type: categorical, choices: []}\n", "'head_width'"),
    ("params:\n  head_width: {type: int, low: 8, high: 64, lo: 3}\n", "unknown key 'lo'"),
    ("params:\n  warmup: {type: float, low: 0.0, high: 1.0}\n", "'warmup'"),
    ("params:\n  dropout: {type: floaty, low: 0.0, high: 0.5}\n", "'type'"),
    ("params:\n  dropout: {type: float, low: zero, high: 0.5}\n", "'low'"),
    ("params:\n  dropout: {type: float, low: 0.0, high: 1.5}\n", "'dropout'"),
    ("params:\n  head_width: {type: float, low: 8, high: 64}\n", "'head_width'"),
    ("params:\n  unfreeze_depth: {type: int, low: 0, high: 20, step: 5}\n", "stage_lr"),
    ("params:\n  unfreeze_depth: {type: int, low: 0, high: 20, step: 3}\n"
     "  stage_lr: {type: float, low: 1.0e-6, high: 1.0e-3, log: true, per_stage: true}\n",
     "'unfreeze_depth'"),
    ("params:\n  unfreeze_stages: {type: int, low: 0, high: 3}\n"
     "  unfreeze_depth: {type: int, low: 0, high: 20, step: 5}\n"
     "  stage_lr: {type: float, low: 1.0e-6, high: 1.0e-3, log: true, per_stage: true}\n",
     "keep one"),
    ("params:\n  unfreeze_step: {type: categorical, choices: [5, 10]}\n"
     "  stage_lr: {type: float, low: 1.0e-6, high: 1.0e-3, log: true, per_stage: true}\n",
     "'unfreeze_stages'"),
    ("params:\n  unfreeze_stages: {type: int, low: -1, high: 3}\n"
     "  stage_lr: {type: float, low: 1.0e-6, high: 1.0e-3, log: true, per_stage: true}\n",
     "'unfreeze_stages'"),
    ("params:\n  unfreeze_stages: {type: int, low: 0, high: 3}\n", "stage_lr"),
    ("params:\n  unfreeze_stages: {type: int, low: 0, high: 3}\n"
     "  stage_lr_base: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}\n", "'stage_lr_decay'"),
    ("params:\n  unfreeze_stages: {type: int, low: 0, high: 3}\n"
     "  stage_lr: {type: float, low: 1.0e-6, high: 1.0e-3, log: true, per_stage: true}\n"
     "  stage_lr_base: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}\n"
     "  stage_lr_decay: {type: float, low: 0.1, high: 1.0}\n", "keep one form"),
    ("params:\n  unfreeze_stages: {type: int, low: 0, high: 3}\n"
     "  stage_lr_base: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}\n"
     "  stage_lr_decay: {type: float, low: 0.0, high: 1.0}\n", "'stage_lr_decay'"),
    ("paramz:\n  dropout: {type: float, low: 0.0, high: 0.5}\n", "'paramz'"),
    ("params: {}\n", "'params'"),
    ("fixed: {head_epoch: 3}\nparams:\n  dropout: {type: float, low: 0.0, high: 0.5}\n",
     "'head_epoch'"),
    ("params:\n  dropout: [0.1, 0.2\n", "not valid YAML"),
])
def test_malformed_space_is_rejected_naming_file_and_key(tmp_path, body, needle):
    f = write(tmp_path, body)
    with pytest.raises(ConfigError) as e:
        load_space(f)
    assert needle in str(e.value) and str(f) in str(e.value)


def test_missing_space_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_space(tmp_path / "nope.yaml")

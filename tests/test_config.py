import json

import pytest

from search.errors import ConfigError
from search.recipe.config import SEED_CONFIG, TrainConfig


def test_seed_config_loads_with_the_recipe_values():
    c = TrainConfig.load(SEED_CONFIG)
    assert c.head_epochs == 10
    assert c.stage_depths() == [0, 5, 10, 15, 20]
    assert len(c.stage_lrs) == 4 and list(c.stage_lrs) == sorted(c.stage_lrs, reverse=True)
    assert c.train_samples == 10_000 and c.val_samples == 2_000 and c.image_size == 32


def test_yaml_round_trip_is_exact(tmp_path):
    c = TrainConfig.load(SEED_CONFIG).replace(head_lr=0.0012345678901234567, dropout=1 / 3)
    c.save(tmp_path / "a.yaml")
    back = TrainConfig.load(tmp_path / "a.yaml")
    assert back == c
    assert back.to_yaml() == c.to_yaml() == (tmp_path / "a.yaml").read_text()


def test_json_round_trip_is_exact(tmp_path):
    c = TrainConfig(stage_lrs=(3e-4, 1e-5), unfreeze_depth=10, dropout=0.123456789)
    c.save(tmp_path / "a.json")
    assert TrainConfig.load(tmp_path / "a.json") == c
    assert json.loads((tmp_path / "a.json").read_text())["stage_lrs"] == [3e-4, 1e-5]


def test_unknown_key_is_rejected_by_name(tmp_path):
    (tmp_path / "c.yaml").write_text("head_lr: 0.001\nheadlr: 0.1\n")
    with pytest.raises(ConfigError, match="unknown config key 'headlr'"):
        TrainConfig.load(tmp_path / "c.yaml")


@pytest.mark.parametrize("text,key", [
    ("head_epochs: 2.5\n", "head_epochs"),
    ("aug_flip: 'yes'\n", "aug_flip"),
    ("dropout: high\n", "dropout"),
    ("stage_lrs: [0.1, x, 0.1, 0.1]\n", "stage_lrs"),
    ("unfreeze_depth: 10\n", "stage_lrs"),  # 2 stages but 4 learning rates
    ("unfreeze_depth: 7\n", "unfreeze_depth"),
    ("val_samples: 20000\n", "val_samples"),
])
def test_wrong_values_name_the_key(tmp_path, text, key):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError, match=f"'{key}'"):
        TrainConfig.load(tmp_path / "c.yaml")


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        TrainConfig().dropout = 0.1

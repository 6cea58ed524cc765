"""Tiny data with signal, made by the tests themselves."""

from __future__ import annotations

import os
import subprocess
import sys

from PIL import Image

from conftest import ROOT
from search.recipe.config import TrainConfig
from search.recipe.data import Data, Source, make_data
from search.recipe.synthetic import colour_source


def tiny_source(n_train: int = 300, n_test: int = 100, size: int = 32, seed: int = 0) -> Source:
    return colour_source(n_train, n_test, size, seed)


def tiny_data(n_train: int = 200, n_val: int = 50, seed: int = 0, **kw) -> Data:
    return make_data(tiny_source(**kw), n_train, n_val, seed)


def write_tiny_folders(root, n_train=120, n_test=40):
    s = tiny_source(n_train, n_test)
    for split, x, y in (("train", s.x_train, s.y_train), ("test", s.x_test, s.y_test)):
        for i, (img, lab) in enumerate(zip(x, y)):
            d = root / split / s.class_names[lab]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{i:04d}.png")
    return root


def tiny_config(**changes) -> TrainConfig:
    """A config that trains in seconds on tiny_data(200, 50): random base, the seed recipe's
    schedule cut to a stage or two."""
    base = TrainConfig(weights="none", train_samples=200, val_samples=50, head_epochs=1,
                       unfreeze_depth=5, stage_lrs=(1e-3,), finetune_epochs=1, batch_size=32,
                       early_stop_patience=5)
    return base.replace(**changes)


def fill(cache, cfg=None, data=None, depth=5):
    """The boundary tensors of `depth` for cfg (default tiny_config()) through `cache`, on a
    network reset for cfg (a random base drawn from its seed)."""
    from search.cache.features import boundary_features
    from search.recipe.network import Networks

    cfg = cfg or tiny_config()
    data = data or tiny_data(200, 50)
    networks = Networks()
    net = networks.get(cfg, data.x_train.shape[1:], data.num_classes)
    net.reset(cfg, networks.bank)
    return boundary_features(cfg, data, net.base, depth, cache)


def run_python(code: str, timeout: int = 300, env: dict | None = None) -> list[str]:
    """`code` run by a fresh Python at the repository root, with tests/ on its path: the words
    of its output (the calling test fails on a non-zero exit, with the end of its stderr)."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), str(ROOT)]
                                        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=timeout, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()

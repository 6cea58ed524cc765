"""The `train` command end to end: outputs, bad input, and the real shared data (slow)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, SHARED_WEIGHTS
from helpers import tiny_source, write_tiny_folders
from search.cli import main
from search.recipe.config import TrainConfig


def tiny_config(tmp_path, **kw):
    cfg = TrainConfig(weights="none", train_samples=100, val_samples=30, head_epochs=2,
                      unfreeze_depth=0, stage_lrs=(), batch_size=32).replace(**kw)
    cfg.save(tmp_path / "tiny.yaml")
    return tmp_path / "tiny.yaml"


def test_train_writes_the_run_folder_and_the_model_predicts(tmp_path, capsys):
    data = write_tiny_folders(tmp_path / "data")
    rc = main(["train", "--config", str(tiny_config(tmp_path, head_epochs=3)), "--data-dir",
               str(data), "--results-dir", str(tmp_path / "res"), "--test", "--verbose", "0",
               "--set", "head_epochs=2"])
    assert rc == 0
    (run,) = (tmp_path / "res" / "runs").iterdir()
    for f in ("config.yaml", "command.txt", "split.npz", "history.csv", "curves.png",
              "metrics.json", "model.keras", "classes.json"):
        assert (run / f).is_file(), f
    want = TrainConfig.load(tmp_path / "tiny.yaml").replace(head_epochs=2)  # --set wins
    assert TrainConfig.load(run / "config.yaml") == want
    m = json.loads((run / "metrics.json").read_text())
    assert m["epochs"] == 2 and 0.0 <= m["val_accuracy"] <= 1.0
    assert len(m["test"]["confusion_matrix"]) == 10 and m["test"]["n"] == 40
    split = np.load(run / "split.npz")
    assert len(split["train_idx"]) == 70 and len(split["val_idx"]) == 30
    with Image.open(run / "curves.png") as im:
        assert im.size == (1200, 450)

    capsys.readouterr()
    img = next((data / "test" / "ship").iterdir())
    assert main(["predict", "--model", str(run / "model.keras"), str(img)]) == 0
    path, name, prob = capsys.readouterr().out.strip().split("\t")
    assert path == str(img) and name in tiny_source().class_names and 0 < float(prob) <= 1

    assert main(["evaluate", "--model", str(run / "model.keras"), "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert f"test accuracy {m['test']['accuracy']:.4f} on 40 images" in out


@pytest.mark.parametrize("args,needle", [
    (["--data-dir", "/nonexistent/cifar"], "data folder /nonexistent/cifar does not exist"),
    (["--weights", "/nonexistent/w.h5"], "weights file /nonexistent/w.h5 does not exist"),
    (["--train-samples", "5000"], "only 120"),
])
def test_bad_input_exits_2_with_one_sentence_and_writes_nothing(tmp_path, capsys, args, needle):
    data = write_tiny_folders(tmp_path / "data")
    argv = ["train", "--config", str(tiny_config(tmp_path)), "--data-dir", str(data),
            "--results-dir", str(tmp_path / "res"), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "res").exists()


def test_malformed_config_exits_2_naming_the_key(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("dropout: 0.5\nlearning_rate: 0.1\n")
    assert main(["train", "--config", str(tmp_path / "c.yaml")]) == 2
    assert "unknown config key 'learning_rate'" in capsys.readouterr().err


@pytest.mark.slow
def test_real_images_with_standin_weights_well_above_chance(tmp_path, shared_images):
    cfg = tiny_config(tmp_path, train_samples=2000, val_samples=500, head_epochs=3,
                      unfreeze_depth=5, stage_lrs=(1e-4,), finetune_epochs=1, batch_size=64,
                      weights=str(SHARED_WEIGHTS))
    proc = subprocess.run([sys.executable, "run_search.py", "train", "--config", str(cfg),
                           "--data-dir", str(shared_images), "--results-dir", str(tmp_path / "r")],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "folders layout" in proc.stdout
    (run,) = (tmp_path / "r" / "runs").iterdir()
    m = json.loads((run / "metrics.json").read_text())
    assert m["val_accuracy"] > 0.5, m

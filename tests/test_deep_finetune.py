"""The deep stages earn their keep: on a backbone trained on other classes (the class-split
stand-in for ImageNet), fine-tuning into conv4 beats the head alone by a clear margin. This guards
the deep stages and their cache (boundaries, replay, write-back) with an accuracy that depends on
them, which the in-domain backbone cannot: there the head alone is as good."""

import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from conftest import ROOT, SHARED_CLASS_SPLIT
from search.recipe.config import SEED_CONFIG

# Two stages of 40 layers (conv5, then into conv4), at rates low enough that the gain does not
# hang on the CPU's float order: at 5e-4 / 3e-4 the first stage's val fell from 0.43 to 0.25 on one
# machine and the deep stages ended level with the head alone (docs/benchmarks.md, "The test
# suite on a slow machine, and two tests that failed there").
DEEP = {"head_epochs": 5, "unfreeze_step": 40, "unfreeze_depth": 80,
        "stage_lrs": [2.0e-4, 1.0e-4], "finetune_epochs": 4}


@pytest.mark.slow
def test_deep_fine_tuning_beats_the_head_alone_on_the_class_split_backbone(tmp_path, shared_images):
    if not SHARED_CLASS_SPLIT.is_file():
        pytest.skip("../shared class-split weights absent")
    cfg = tmp_path / "deep.yaml"
    cfg.write_text(yaml.safe_dump({**yaml.safe_load(SEED_CONFIG.read_text()), **DEEP,
                                   "weights": str(SHARED_CLASS_SPLIT)}))
    proc = subprocess.run([sys.executable, "run_search.py", "train", "--config", str(cfg), "--test",
                           "--data-dir", str(shared_images), "--results-dir", str(tmp_path / "r"),
                           "--cache-dir", str(tmp_path / "cache")],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = (tmp_path / "r" / "runs").iterdir()
    h = pd.read_csv(run / "history.csv")
    head = h[h.stage == 0].val_accuracy.max()  # the head alone: what stage 0 ends with
    deep = h.val_accuracy.max()  # what the run returns
    assert list(h.depth.unique()) == [0, 40, 80]
    assert deep - head >= 0.03, (head, deep)  # measured: see docs/benchmarks.md
    m = json.loads((run / "metrics.json").read_text())
    assert m["val_accuracy"] == pytest.approx(deep)
    assert m["test"]["accuracy"] > 0.45, m["test"]  # the head alone tests 0.431 (docs/benchmarks.md)

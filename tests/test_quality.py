"""The search-quality benchmark on tiny data: every run's curve, each best retrained and tested on
the same seeds, the seed recipe beside them, the table and the figure."""

import json

import numpy as np
import pytest

from helpers import write_tiny_folders
from search.bench.quality import SETTINGS, Quality, Run, bench_quality, to_retrain
from search.errors import UserError
from search.jobs import SearchOptions
from search.tuning.space import SPACES_DIR


def test_the_table_puts_each_setting_beside_the_seed_recipe():
    runs = [Run("a", 0, [(0.5, 0.4), (1.0, 0.6)], 3, 2, 0.6, 2, [0.55, 0.57]),
            Run("a", 1, [(0.7, 0.5)], 2, 1, 0.5, 0, [0.45, 0.47]),
            Run("b", 0, [], 1, 0, None, None, [])]
    t = Quality(runs, [0.40, 0.42], 1.0).table().set_index("setting")
    assert t.loc["a", "best_val_mean"] == pytest.approx(0.55)
    assert t.loc["a", "best_val_spread"] == pytest.approx(0.1)
    assert t.loc["a", "test_mean"] == pytest.approx(0.51)
    assert t.loc["a", "test_gain_over_seed_recipe"] == pytest.approx(0.10)
    assert np.isnan(t.loc["b", "test_mean"])
    assert t.loc["seed recipe", "test_mean"] == pytest.approx(0.41)


def test_best_mode_retrains_one_run_per_setting_the_one_with_the_best_val():
    runs = [Run("a", 0, [], 3, 2, 0.5, 2), Run("a", 1, [], 3, 2, 0.6, 1),
            Run("b", 0, [], 1, 0, None, None), Run("c", 0, [], 2, 1, 0.3, 0)]
    assert to_retrain(runs, "all") == [runs[0], runs[1], runs[3]]
    assert to_retrain(runs, "best") == [runs[1], runs[3]]
    with pytest.raises(UserError, match="--retrain"):
        to_retrain(runs, "some")


@pytest.mark.slow
def test_two_settings_twice_each_on_one_cache(tmp_path):
    write_tiny_folders(tmp_path / "data")
    opts = SearchOptions(space=str(SPACES_DIR / "tiny.yaml"), data_dir=str(tmp_path / "data"),
                         weights="none", train_samples=100, val_samples=30,
                         results_dir=str(tmp_path / "res"), no_isolate=True)
    q = bench_quality(opts, [SETTINGS["hyperband"], SETTINGS["random-none"]], repeats=2,
                      minutes=0.01, retrain_seeds=2, log=lambda *_: None)
    assert [(r.setting, r.repeat) for r in q.runs] == [  # repeat-major
        ("hyperband", 0), ("random-none", 0), ("hyperband", 1), ("random-none", 1)]
    for r in q.runs:
        assert r.trials >= 1 and r.completed >= 1 and len(r.test) == 2
        assert all(0.1 < a <= 1 for a in r.test)  # above chance on data with signal
        bests = [b for _, b in r.curve]
        assert bests == sorted(bests) and bests[-1] == r.best_value
    assert len(q.baseline_test) == 2
    root = tmp_path / "res" / "quality"
    assert (root / "quality.png").is_file() and (root / "quality.csv").is_file()
    assert len(json.loads((root / "runs.json").read_text())["runs"]) == 4
    assert len(list((root / "cache").iterdir())) > 0  # one shared cache, on disk

"""The pick's re-runs and the retrains are the same runs: a retrain takes the pick's run of the
same config and seed, runs the rest on the workers side by side, and scores each model once."""

import json

import keras
import numpy as np
import pandas as pd
import pytest

from helpers import tiny_config, tiny_data
from search.cache.store import FeatureCache
from search.recipe.config import TrainConfig
from search.runner.events import Diverged, Finished, RunFailed
from search.runner.trial import TrialRunner
from search.runner.worker import WorkerRunner, WorkerSpec
from search.tuning.final_runs import Kept
from search.tuning.pick import rerun
from search.tuning.retrain import finalize_config

CFG = tiny_config(unfreeze_depth=10, unfreeze_step=5, stage_lrs=(1e-3, 5e-4))


def weights(model) -> list[np.ndarray]:
    return [np.asarray(w) for w in model.get_weights()]


def test_a_kept_model_loads_in_plain_keras_with_the_trained_weights(tmp_path):
    data = tiny_data(200, 50)
    runner = TrialRunner(data, FeatureCache(None, views=2), 10)
    out = runner.run(CFG, keep=str(tmp_path / "a" / "model.keras"))
    assert isinstance(out, Finished)
    model = keras.saving.load_model(tmp_path / "a" / "model.keras")  # safe mode, no import of ours
    assert json.loads((tmp_path / "a" / "classes.json").read_text()) == list(data.class_names)
    probs = model.predict(data.x_val.astype("float32"), verbose=0)
    assert probs.shape == (50, data.num_classes)
    assert np.mean(probs.argmax(1) == data.y_val) > 1.5 / data.num_classes  # above chance
    # The same config again keeps the same model (a run depends on its config alone).
    runner.run(CFG, keep=str(tmp_path / "b" / "model.keras"))
    again = keras.saving.load_model(tmp_path / "b" / "model.keras")
    assert all(np.array_equal(x, y) for x, y in zip(weights(model), weights(again)))
    assert isinstance(runner.run(CFG.replace(seed=1)), Finished)  # no keep: nothing saved
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


@pytest.mark.slow
def test_a_worker_keeps_the_model_this_process_keeps(tmp_path):
    data = tiny_data(200, 50)
    cache = {"directory": tmp_path / "cache", "views": 2}
    here = TrialRunner(data, FeatureCache(**cache), 10)
    there = WorkerRunner(WorkerSpec(data, cache, 10))
    try:
        a = here.run(CFG, keep=str(tmp_path / "here.keras"))
        b = there.run(CFG, keep=str(tmp_path / "there.keras"))
    finally:
        there.close()
    assert a.value == b.value
    x, y = (keras.saving.load_model(tmp_path / f) for f in ("here.keras", "there.keras"))
    assert all(np.array_equal(u, v) for u, v in zip(weights(x), weights(y)))


class Stub:
    """A runner whose 'training' is a tiny fixed model per (learning rate, seed): its value and
    its model are a function of the config, as a real run's are. Records every run."""

    def __init__(self, data, diverge_seed=None):
        self.data, self.runs, self.diverge_seed = data, [], diverge_seed

    def run(self, config, listen=None, epoch_budget=None, keep=None):
        self.runs.append((config.head_lr, config.seed, keep is not None))
        if config.seed == self.diverge_seed:
            return Diverged("non-finite loss")
        if keep is not None:
            rng = np.random.default_rng(config.seed)
            model = keras.Sequential([keras.Input(self.data.x_train.shape[1:]),
                                      keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                                      keras.layers.Dense(self.data.num_classes,
                                                         activation="softmax")])
            model.set_weights([rng.normal(size=w.shape) * 0.01 for w in model.get_weights()])
            model.save(keep)
        history = {"epoch": [0], "stage": [0], "depth": [0], "loss": [1.0], "accuracy": [0.5],
                   "val_loss": [1.0], "val_accuracy": [config.head_lr * 100 + config.seed / 1000]}
        return Finished(history["val_accuracy"][0], history, [])

    def close(self, wait=True):
        pass


def study_of(configs):
    import optuna

    study = optuna.create_study(direction="maximize")
    for i, (cfg, value) in enumerate(configs):
        t = study.ask()
        t.set_user_attr("config", cfg.to_dict())
        if i == 0:
            t.set_user_attr("seed_recipe", True)
        study.tell(t, value)
    return study


def test_the_retrain_takes_the_pick_s_runs_and_trains_only_the_seeds_it_lacks(tmp_path):
    data = tiny_data(60, 20)
    seed_recipe, best = TrainConfig(head_lr=0.004), TrainConfig(head_lr=0.005)
    study = study_of([(seed_recipe, 0.4), (best, 0.5)])
    folder = tmp_path / "final" / "run"
    runner, kept = Stub(data), Kept(folder / "pick", seeds=2)
    values = rerun(study.trials, runner, seeds=2, log=lambda *_: None, kept=kept)
    assert values == {0: [0.4, 0.401, 0.402], 1: [0.5, 0.501, 0.502]}
    assert set(kept.runs) == {(0, 1), (0, 2), (1, 1), (1, 2)}
    assert len(runner.runs) == 4 and all(k for *_, k in runner.runs)

    out = finalize_config("s", 1, 0.5, best, data, tmp_path, runner, seeds=3,
                          log=lambda *_: None, baseline_config=seed_recipe, baseline_number=0,
                          folder=folder, kept=kept)
    # Only seed 0 of each config is trained again: the trials' own runs kept no model.
    assert sorted(runner.runs[4:]) == [(0.004, 0, True), (0.005, 0, True)]
    assert out["seeds"] == [0, 1, 2] and out["seed_recipe"]["seeds"] == [0, 1, 2]
    assert out["val_accuracy"] == [0.5, 0.501, 0.502]
    assert [r["reused"] for r in out["runs"]] == [None, "pick", "pick"]
    assert out["saved_model_seed"] == 2  # the best validation accuracy, never test
    # Each model scored on the test set as it was kept: seed 2's model is the saved one.
    saved = keras.saving.load_model(tmp_path / "best_model.keras")
    probs = saved.predict(data.x_test.astype("float32"), verbose=0)
    assert out["saved_model"]["accuracy"] == np.mean(probs.argmax(1) == data.y_test)
    assert out["runs"][2]["test_accuracy"] == out["saved_model"]["accuracy"]
    for label in ("best", "seed_recipe"):
        for s in (0, 1, 2):
            d = folder / f"{label}_seed_{s}"
            assert {"config.yaml", "history.csv", "metrics.json"} <= {p.name for p in d.iterdir()}
            assert not (d / "model.keras").exists()  # scored, then dropped: ~90 MiB each
            assert TrainConfig.load(d / "config.yaml").seed == s
            assert pd.read_csv(d / "history.csv")["val_accuracy"].iloc[0] == pytest.approx(
                (0.005 if label == "best" else 0.004) * 100 + s / 1000)
    assert not list((folder / "pick").glob("*/model.keras"))  # nothing left to take


def test_the_seed_recipe_as_the_winner_is_taken_twice_and_a_diverged_retrain_is_an_error(
        tmp_path):
    data = tiny_data(60, 20)
    seed_recipe = TrainConfig(head_lr=0.004)
    study = study_of([(seed_recipe, 0.4)])
    folder = tmp_path / "final" / "run"
    runner, kept = Stub(data), Kept(folder / "pick", seeds=1)
    rerun(study.trials, runner, seeds=1, log=lambda *_: None, kept=kept)
    out = finalize_config("s", 0, 0.4, seed_recipe, data, tmp_path, runner, seeds=2,
                          log=lambda *_: None, baseline_config=seed_recipe, baseline_number=0,
                          folder=folder, kept=kept)
    assert out["test_accuracy"] == out["seed_recipe"]["test_accuracy"]  # the same two models
    assert len(runner.runs) == 1 + 2  # the pick's seed 1, then seed 0 for each label

    with pytest.raises(RunFailed, match="best with seed 5 diverged in the retrain"):
        finalize_config("s", 0, 0.4, seed_recipe.replace(seed=4), data, tmp_path,
                        Stub(data, diverge_seed=5), seeds=2, log=lambda *_: None)

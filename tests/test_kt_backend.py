"""The KerasTuner backend (same space file, same training code) and `compare` at an equal budget."""

import json
import os

import pandas as pd
import pytest

from helpers import write_tiny_folders
from search.cli import main
from search.tuning.kt_backend import hyperparameters, values_of
from search.tuning.space import SPACES_DIR, load_space

TINY = str(SPACES_DIR / "tiny.yaml")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_tiny_folders(tmp_path_factory.mktemp("kt") / "data")


def common(tmp, data_dir):
    return ["--space", TINY, "--data-dir", str(data_dir), "--weights", "none",
            "--train-samples", "100", "--val-samples", "30", "--results-dir", str(tmp / "res")]


def test_the_space_maps_onto_keras_tuner_hyperparameters():
    space = load_space(TINY)
    hp = hyperparameters(space)
    assert {h.name for h in hp.space} == {"head_lr", "unfreeze_depth", "dropout", "stage_lr_1"}
    lr = next(h for h in hp.space if h.name == "head_lr")
    assert (lr.min_value, lr.max_value, lr.sampling) == (1e-4, 1e-2, "log")
    depth = next(h for h in hp.space if h.name == "unfreeze_depth")
    assert (depth.min_value, depth.max_value, depth.step) == (0, 5, 5)
    hp.values.update({"head_lr": 1e-3, "unfreeze_depth": 0, "dropout": 0.1, "stage_lr_1": 1e-4})
    assert values_of(hp, space) == {"head_lr": 1e-3, "unfreeze_depth": 0, "dropout": 0.1}
    hp.values["unfreeze_depth"] = 5
    assert space.to_config(values_of(hp, space)).stage_lrs == (1e-4,)


@pytest.mark.slow
def test_keras_tuner_backend_runs_three_trials_and_writes_the_trials_table(tmp_path, data_dir):
    assert main(["search", "--backend", "keras-tuner", "--tuner", "random", "--trials", "3",
                 *common(tmp_path, data_dir)]) == 0
    study_dir = tmp_path / "res" / "resnet50-cifar10"
    table = pd.read_csv(study_dir / "report" / "trials.csv")
    assert len(table) == 3 and sorted(table["number"]) == [0, 1, 2]
    assert set(table["state"]) == {"COMPLETE"}
    assert table["value"].between(0, 1).all()
    for col in ("params_head_lr", "params_dropout", "params_unfreeze_depth", "stage_0_seconds",
                "user_attrs_epochs", "seconds"):
        assert col in table, col
    assert (table["stage_0_epochs"] == 2).all()  # the space's head_epochs: same training code
    for n in range(3):
        assert (study_dir / "trials" / f"{n:04d}" / "history.csv").is_file()
    m = json.loads((study_dir / "test_metrics.json").read_text())
    assert m["best_trial_value"] == table["value"].max()
    assert (study_dir / "best_model.keras").is_file()


@pytest.mark.slow
def test_compare_runs_both_searches_at_an_equal_epoch_budget(tmp_path, data_dir, capsys):
    assert main(["compare", "--budget", "6", *common(tmp_path, data_dir)]) == 0
    root = tmp_path / "res" / "compare"
    df = pd.read_csv(root / "compare.csv")
    assert list(df["search"]) == ["optuna", "keras_tuner"]
    assert (df["epochs"] >= 6).all() and (df["epochs"] < 6 + 4).all()  # one trial may finish
    assert df["test_accuracy"].between(0, 1).all() and (df["trials"] >= 2).all()
    assert (root / "compare.png").stat().st_size > 10_000
    assert "equal budget of 6 trained epochs" in capsys.readouterr().out


@pytest.mark.slow
def test_keras_tuner_resume_on_other_data_is_refused_and_all_failing_trials_exit_1(
        tmp_path, data_dir, capsys, monkeypatch):
    import search.runner.trial as trial_module

    def broken(*args, **kwargs):
        raise RuntimeError("the GPU caught fire")

    monkeypatch.setattr(trial_module, "train", broken)
    argv = ["search", "--backend", "keras-tuner", "--tuner", "random", "--trials", "3",
            "--no-isolate", *common(tmp_path, data_dir)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "all 3 trials of this search failed" in err and "the GPU caught fire" in err
    monkeypatch.undo()
    other = write_tiny_folders(tmp_path / "other", 100, 40)
    study_dir = tmp_path / "res" / "resnet50-cifar10"
    config = (study_dir / "config.yaml").read_text()
    argv = [*argv[:-len(common(tmp_path, data_dir))], *common(tmp_path, other)]
    assert main(argv) == 2
    assert "started with another data" in capsys.readouterr().err
    assert (study_dir / "config.yaml").read_text() == config  # nothing overwritten


class _StubRunner:
    """Answers a config with a made-up outcome: KerasTuner's bookkeeping without training."""

    def run(self, config, epoch_budget=None):
        from search.runner.events import Finished
        history = {"epoch": [0], "stage": [0], "depth": [0], "loss": [1.0], "accuracy": [0.5],
                   "val_loss": [1.0], "val_accuracy": [config.dropout]}
        stages = [{"seconds": 0.1, "epochs": 1, "best_val_accuracy": config.dropout}]
        return Finished(value=config.dropout, history=history, stages=stages)


@pytest.mark.parametrize("kind", ["random", "hyperband"])
def test_keras_tuners_state_files_are_replaced_whole_never_written_in_place(tmp_path, kind):
    """A kill mid-write must not leave a truncated oracle.json or trial.json: each is written
    under a temporary name, then renamed. A hard link to the old file tells the two apart (an
    in-place write changes both names' content, a rename leaves the other name's alone)."""
    from search.tuning.kt_backend import make_tuner, search

    space = load_space(TINY)

    def run(trials):
        tuner = make_tuner(kind, space, _StubRunner(), tmp_path, trials, log=lambda *_: None)
        assert search(tuner) is None
        return tuner

    run(2)
    project = tmp_path / "keras_tuner"
    state = [project / "oracle.json", project / "trial_0000" / "trial.json",
             *project.glob("tuner*.json")]
    assert len(state) == 3 and all(f.is_file() for f in state)
    before = {}
    for k, f in enumerate(state):
        before[f] = f.read_text()
        os.link(f, tmp_path / f"link{k}")
    tuner = run(2)
    assert len(tuner.oracle.trials) == 4  # resumed: two more trials on top of the first two
    assert (project / "oracle.json").read_text() != before[project / "oracle.json"]
    for k, f in enumerate(state):
        assert (tmp_path / f"link{k}").read_text() == before[f], f  # the old file untouched
    assert not [p for p in project.rglob("*") if ".tmp" in p.name]

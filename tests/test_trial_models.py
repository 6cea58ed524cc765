"""A trial keeps its model while it may be one the final step takes (the top few, the seed
recipe), the others are deleted as they fall out, and the final step takes a kept model only
when it is the one the trial wrote."""

import json
import math
import os

import optuna
import pytest

from search.recipe.config import TrainConfig
from search.runner.events import Finished, Keep
from search.runner.trial import TrialRunner
from search.tuning.final_runs import Kept
from search.tuning.records import trial_dir
from search.tuning.trial_models import add_to, drop_outside, record, trial_keep

VALUES = [0.40, 0.50, 0.45, 0.60, 0.30]  # trial 0 is the seed recipe


def run_study(study_dir, values=VALUES, top=2):
    """Trials with these values, each 'kept' as a file when its Keep says so, as the objective
    does; returns the study and each trial's Keep.above."""
    study = optuna.create_study(direction="maximize")
    aboves = []
    for i, v in enumerate(values):
        t = study.ask()
        if i == 0:
            t.set_user_attr("seed_recipe", True)
        t.set_user_attr("config", TrainConfig(seed=7).to_dict())
        t.set_user_attr("stage_seconds", [1.0, 2.5])
        run_dir = trial_dir(study_dir, t.number)
        run_dir.mkdir(parents=True)
        (run_dir / "config.yaml").write_text("seed: 7\n")
        keep = trial_keep(t, run_dir, top)
        assert keep.path == str(run_dir / "model.keras")
        aboves.append(keep.above)
        if v >= keep.above:
            (run_dir / "model.keras").write_bytes(f"model of trial {i}".encode())
            (run_dir / "classes.json").write_text("[]")
            record(t, run_dir)
        study.tell(t, v)
        drop_outside(study, study_dir, top)
    return study, aboves


def models(study_dir):
    return sorted(int(p.parent.name) for p in study_dir.glob("trials/*/model.keras"))


def test_a_trial_keeps_its_model_while_among_the_top_and_the_seed_recipe_always(tmp_path):
    study, aboves = run_study(tmp_path)
    # The bar is the top-th best value when the trial starts: the seed recipe has none, nor do
    # trials before `top` have ended; trial 4 (0.30 < 0.50) never writes its model.
    assert aboves == [-math.inf, -math.inf, 0.40, 0.45, 0.50]
    # Trial 2 (0.45) was kept, then dropped when trial 3 (0.60) pushed it out of the top 2.
    assert models(tmp_path) == [0, 1, 3]
    assert sorted(p.name for p in trial_dir(tmp_path, 2).iterdir()) == ["config.yaml"]
    assert "model" in study.trials[2].user_attrs and "model" not in study.trials[4].user_attrs
    assert trial_keep(study.ask(), tmp_path, 0) is None  # keep_top 0: nothing is kept


def test_the_final_step_takes_a_trial_s_model_that_matches_its_hash_and_leaves_its_folder(
        tmp_path):
    study_dir = tmp_path / "study"
    study, _ = run_study(study_dir)
    (trial_dir(study_dir, 1) / "model.keras").write_bytes(b"replaced since")  # not the trial's
    kept = Kept(study_dir / "final" / "run" / "pick", seeds=2)
    assert add_to(kept, study, study_dir) == [0, 3]
    assert set(kept.runs) == {(0, 7), (3, 7)}  # by trial number and the trial's seed
    run = kept.runs[3, 7]
    assert (run.val_accuracy, run.seconds, run.reused) == (0.60, 3.5, "trial")

    out = kept.take((3, 7), study_dir / "final" / "run" / "best_seed_7")
    assert out.reused == "trial" and out.model.read_bytes() == b"model of trial 3"
    assert sorted(p.name for p in out.run_dir.iterdir()) == [
        "config.yaml", "metrics.json", "model.keras"]  # scoring writes classes.json
    assert json.loads((out.run_dir / "metrics.json").read_text()) == {
        "val_accuracy": 0.6, "seconds": 3.5, "trial": 3}
    # The trial's folder keeps its own files; only the model (and its classes) moved.
    assert sorted(p.name for p in trial_dir(study_dir, 3).iterdir()) == ["config.yaml"]
    kept.discard_models()  # what no retrain took: the seed recipe's model here
    assert models(study_dir) == [1]  # trial 1's file is not the trial's: left alone


def test_a_trial_s_model_taken_by_another_finalize_first_is_trained_instead(tmp_path):
    study_dir = tmp_path / "study"
    study, _ = run_study(study_dir)
    kept = Kept(tmp_path / "pick", 1)
    add_to(kept, study, study_dir)
    (trial_dir(study_dir, 3) / "model.keras").unlink()  # the other finalize took it
    assert kept.take((3, 7), tmp_path / "best_seed_7") is None
    assert (3, 7) not in kept and not (tmp_path / "best_seed_7").exists()


def test_a_planted_link_is_neither_followed_nor_deleted(tmp_path):
    study_dir = tmp_path / "study"
    study, _ = run_study(study_dir)
    outside = tmp_path / "precious.keras"
    outside.write_bytes(b"model of trial 3")  # even with the hash the trial recorded
    model = trial_dir(study_dir, 3) / "model.keras"
    model.unlink()
    os.symlink(outside, model)
    assert add_to(Kept(tmp_path / "pick", 1), study, study_dir) == [0, 1]
    study.tell(study.ask(), 0.9)
    drop_outside(study, study_dir, top=1)  # trials 1 and 3 out of the top 1
    assert outside.read_bytes() == b"model of trial 3" and model.is_symlink()
    assert models(study_dir) == [0, 3]  # the link stays; trial 1's model is gone


@pytest.mark.parametrize("above, saved", [(-math.inf, True), (2.0, False)])
def test_a_run_saves_its_model_only_at_or_above_the_bar(tmp_path, above, saved):
    from helpers import tiny_config, tiny_data

    runner = TrialRunner(tiny_data(100, 30), None, 0)
    out = runner.run(tiny_config(), keep=Keep(str(tmp_path / "model.keras"), above))
    assert isinstance(out, Finished) and out.kept is saved
    assert (tmp_path / "model.keras").is_file() is saved
    assert (tmp_path / "classes.json").is_file() is saved

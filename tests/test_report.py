"""The study report: every file written, images of the intended size, a complete trials table,
links that resolve, a sentence where a figure cannot be drawn, and the best trial's artifacts.

The studies here are made with Optuna's API (no training), with the per-trial files the search
writes, so each case (pruned, failed, single trial, nothing finished) is exact and fast."""

import json
import re

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.artifacts import get_all_artifact_meta
from PIL import Image

from search.recipe.run_dir import write_history
from search.report.page import make_report
from search.report.plots import DPI, SIZES

NAMES = [f"class{i}" for i in range(10)]


def history(rng, stages=(0, 5, 10), epochs=3) -> pd.DataFrame:
    rows, e = [], 0
    for k, depth in enumerate(stages):
        for _ in range(epochs):
            acc = 0.3 + 0.04 * e + rng.uniform(0, 0.02)
            rows.append({"epoch": e, "stage": k, "depth": depth, "accuracy": acc, "loss": 2 - acc,
                         "val_accuracy": acc - 0.02, "val_loss": 2.1 - acc,
                         "learning_rate": 1e-3 * 0.5 ** e})
            e += 1
    return pd.DataFrame(rows)


def add_trial(study, study_dir, rng, number_state="complete", value=None):
    t = study.ask({"head_lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
                   "dropout": optuna.distributions.FloatDistribution(0.0, 0.6),
                   "unfreeze_depth": optuna.distributions.IntDistribution(0, 10, step=5)})
    run = study_dir / "trials" / f"{t.number:04d}"
    h = history(rng)
    t.set_user_attr("run_dir", str(run))
    t.set_user_attr("config", {"seed": 0})
    if t.number == 0:
        t.set_user_attr("seed_recipe", True)
    for _, r in h.iterrows():
        t.report(float(r["val_accuracy"]), int(r["epoch"]))
        if number_state == "pruned" and r["epoch"] == 2:
            break
    if number_state == "complete":
        write_history(run, h)
        t.set_user_attr("stage_seconds", [1.5, 2.5, 3.5])
        t.set_user_attr("stage_epochs", [3, 3, 3])
        t.set_user_attr("stage_best_val", [0.3, 0.4, 0.5])
        study.tell(t, value if value is not None else float(h["val_accuracy"].max()))
    elif number_state == "pruned":
        study.tell(t, state=optuna.trial.TrialState.PRUNED)
    else:
        t.set_user_attr("failure", "RuntimeError: boom")
        study.tell(t, state=optuna.trial.TrialState.FAIL)


def write_final(study_dir, rng):
    cm = rng.integers(0, 20, (10, 10)) + np.eye(10, dtype=int) * 50
    (study_dir / "test_metrics.json").write_text(json.dumps({
        "best_trial": 1, "test_accuracy": [0.61, 0.63], "test_accuracy_mean": 0.62,
        "test_accuracy_std": 0.014, "per_class_accuracy_mean": {n: 0.6 for n in NAMES},
        "pick": {"trial": 1, "values": {"1": [0.7, 0.69], "0": [0.6, 0.61]}, "within_noise": False,
                 "ahead": [[0, 1]]},
        "saved_model": {"accuracy": 0.62, "confusion_matrix": cm.tolist(), "class_names": NAMES}}))
    np.savez_compressed(study_dir / "misclassified.npz",
                        images=rng.integers(0, 255, (12, 32, 32, 3), dtype=np.uint8),
                        true=rng.integers(0, 10, 12), pred=rng.integers(0, 10, 12),
                        confidence=rng.uniform(0.5, 1, 12), class_names=np.array(NAMES))
    (study_dir / "best_model.keras").write_bytes(b"model bytes")


def make_study(tmp_path, states):
    study = optuna.create_study(study_name="tiny", direction="maximize",
                                storage=f"sqlite:///{tmp_path / 'optuna.db'}",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study_dir = tmp_path / "tiny"
    rng = np.random.default_rng(0)
    for s in states:
        add_trial(study, study_dir, rng, s)
    return study, study_dir, rng


def png_size(path):
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        return im.size


def referenced(html_text):
    return re.findall(r'(?:src|href)="([^"#:]+)"', html_text)


def test_report_of_a_small_study_writes_every_file(tmp_path):
    study, study_dir, rng = make_study(tmp_path, ["complete"] * 4 + ["pruned", "failed"])
    write_final(study_dir, rng)
    index = make_report(study, study_dir)
    out = index.parent
    for name, (w, h) in SIZES.items():
        assert png_size(out / f"{name}.png") == (w * DPI, h * DPI), name
        assert (out / f"{name}.png").stat().st_size > 10_000, name  # drawn, not blank
    text = index.read_text()
    refs = referenced(text)
    assert len(refs) == len(SIZES) + 1 and all((out / r).is_file() for r in refs)
    assert "Not drawn" not in text
    assert "0.6200 ± 0.0140" in text and "seed recipe (trial 0)" in text
    assert "(trial 1: 0.6950, trial 0: 0.6050). 1 of the re-runs ran while the last trials" in text
    table = pd.read_csv(out / "trials.csv")
    assert list(table["number"]) == list(range(6))
    assert list(table["state"]) == ["COMPLETE"] * 4 + ["PRUNED", "FAIL"]
    for col in ("value", "params_head_lr", "params_dropout", "params_unfreeze_depth",
                "stage_0_seconds", "stage_2_best_val", "stage_1_epochs", "user_attrs_failure",
                "seconds"):
        assert col in table, col
    assert table.loc[0, "stage_2_seconds"] == 3.5 and np.isnan(table.loc[4, "stage_0_seconds"])

    # the report's figures and the retrained model, as the study's Optuna artifacts
    metas = get_all_artifact_meta(study)
    names = {m.filename for m in metas}
    assert {f"{n}.png" for n in SIZES} | {"best_model.keras", "test_metrics.json"} == names
    make_report(study, study_dir)  # a second report uploads nothing twice
    assert len(get_all_artifact_meta(study)) == len(metas)
    assert all((study_dir / "artifacts" / m.artifact_id).is_file() for m in metas)


@pytest.mark.parametrize("states", [["complete"], ["failed"], []])
def test_report_of_a_study_with_one_or_no_finished_trial_says_why(tmp_path, states):
    study, study_dir, _ = make_study(tmp_path, states)
    index = make_report(study, study_dir)
    text = index.read_text()
    assert all((index.parent / r).is_file() for r in referenced(text))
    assert "at least 2 completed trials" in text  # importances and parallel coordinates
    assert "has not been retrained and tested" in text
    drawn = {p.stem for p in index.parent.glob("*.png")}
    if states == ["complete"]:
        assert drawn == {"best_over_time", "optimization_history", "slice", "intermediate_values",
                         "top5_curves"}
    else:
        assert drawn == ({"intermediate_values"} if states else set())
        assert "no trial has completed" in text
    assert len(pd.read_csv(index.parent / "trials.csv")) == len(states) if states else True


def test_class_names_are_drawn_as_plain_text_and_a_failing_figure_spares_the_rest(tmp_path,
                                                                                   monkeypatch):
    """A class folder named like mathtext ('$\\foo$') once raised in every figure after the
    retrain; now it is text. A figure that still fails says so and the report goes on."""
    from search.report import plots

    study, study_dir, rng = make_study(tmp_path, ["complete"] * 3)
    write_final(study_dir, rng)
    metrics = json.loads((study_dir / "test_metrics.json").read_text())
    names = [r"$\foo$", *NAMES[1:]]
    metrics["saved_model"]["class_names"] = names
    (study_dir / "test_metrics.json").write_text(json.dumps(metrics))

    def broken(*args, **kwargs):
        raise RuntimeError("no font")

    monkeypatch.setattr(plots, "slice_plot", broken)
    text = make_report(study, study_dir).read_text()
    assert png_size(study_dir / "report" / "confusion_matrix.png") == (900, 800)
    assert "slice" in text and "drawing it failed (RuntimeError: no font)" in text
    assert not (study_dir / "report" / "slice.png").exists()
    assert (study_dir / "report" / "optimization_history.png").is_file()


def test_a_confusion_matrix_of_thousands_of_classes_is_not_drawn(tmp_path):
    from search.report import plots

    with pytest.raises(plots.Absent, match="2000 classes"):
        plots.confusion_matrix(np.zeros((2000, 2000), int), [str(i) for i in range(2000)],
                               tmp_path, 0.5)


def test_the_trials_table_of_a_study_whose_only_trial_waits_has_no_seconds():
    """A new study run with --trials 0 holds only the enqueued seed trial, with no duration:
    its table once raised in pandas' .dt accessor."""
    from search.report.page import trials_table

    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"x": 1.0})
    table = trials_table(study)
    assert list(table["state"]) == ["WAITING"] and table["seconds"].isna().all()

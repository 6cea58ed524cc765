"""Tracking: --track specs checked before any write, the fan-out that keeps a failing tracker
from failing a trial, and a real MLflow server and TensorBoard event files after a search."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from types import SimpleNamespace

import pytest
from optuna.trial import TrialState

from helpers import write_tiny_folders
from search.cli import main
from search.runner.events import EpochEnd
from search.tracking.base import SearchCallback, SearchInfo
from search.tracking.callbacks import Callbacks, parse_track
from search.tuning.space import SPACES_DIR

TINY = str(SPACES_DIR / "tiny.yaml")


def argv(tmp, *extra):
    return ["search", "--trials", "1", "--space", TINY, "--data-dir", str(tmp / "data"),
            "--weights", "none", "--train-samples", "100", "--val-samples", "30",
            "--results-dir", str(tmp / "res"), *extra]


@pytest.mark.parametrize("spec, said", [
    ("wandb=runs", "--track expects mlflow=URI or tensorboard=DIR"),
    ("mlflow", "--track expects mlflow=URI or tensorboard=DIR"),
    ("mlflow=http://user:hunter2@127.0.0.1:9", "cannot reach the MLflow tracking server at "
                                               "http://user:***@127.0.0.1:9"),
])
def test_a_bad_track_spec_or_an_unreachable_server_is_one_sentence_and_nothing_written(
        tmp_path, capsys, spec, said):
    write_tiny_folders(tmp_path / "data")
    assert main(argv(tmp_path, "--track", spec)) == 2
    err = capsys.readouterr().err
    assert said in err and "hunter2" not in err and "Traceback" not in err
    assert not (tmp_path / "res").exists()


def test_specs_parse_and_a_password_in_one_is_masked_in_the_resume_command():
    from search.options import SearchOptions

    assert parse_track(["MLflow=http://h:5000", "tensorboard=tb"]) == [
        ("mlflow", "http://h:5000"), ("tensorboard", "tb")]
    cmd = SearchOptions(track=("mlflow=http://u:hunter2@h:5000",)).command()
    assert "--track" in cmd and "hunter2" not in " ".join(cmd)


def test_a_failing_callback_is_reported_once_and_the_others_still_run():
    class Broken(SearchCallback):
        def epoch_ended(self, number, event):
            raise RuntimeError("server gone: postgresql://u:hunter2@db/x")

    seen, said = [], []
    fan = Callbacks([Broken(), lambda study, trial: seen.append(trial.number)],
                    secrets=("postgresql://u:hunter2@db/x",), log=said.append)
    for epoch in range(3):
        fan.epoch_ended(0, EpochEnd(epoch, {"val_accuracy": 0.5}))
    fan.trial_finished(None, SimpleNamespace(number=7))
    assert seen == [7] and len(said) == 1
    assert "Broken.epoch_ended failed" in said[0] and "hunter2" not in said[0]


def test_mlflow_tags_a_pruned_trial_with_why_and_logs_one_point_per_epoch(tmp_path):
    """Against a local MLflow store (the server test below is slow)."""
    from mlflow import MlflowClient

    from search.tracking.mlflow_tracker import MLflowTracker

    uri = f"sqlite:///{tmp_path / 'ml.db'}"
    t = MLflowTracker(uri)
    t.search_started(SearchInfo("s1", "sqlite:///x.db", str(tmp_path), "tpe", "stage",
                                "tiny.yaml", {"seed": 0}, ["run_search.py"], {"git.commit": "abc"}))
    t.trial_started(4, {"head_lr": 1e-3, "dropout": 0.5})
    for epoch, acc in enumerate([0.2, 0.3, 0.25]):
        t.epoch_ended(4, EpochEnd(epoch, {"val_accuracy": acc, "loss": float("nan")}, stage=epoch // 2))
    t.trial_finished(None, SimpleNamespace(number=4, state=TrialState.PRUNED, value=None,
                                           user_attrs={"pruned": "by the pruner after stage 1"}))
    t.close()
    c = MlflowClient(uri)
    runs = {r.data.tags["optuna.role"]: r for r in
            c.search_runs([c.get_experiment_by_name("s1").experiment_id])}
    child, parent = runs["trial"], runs["study"]
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child.data.tags["optuna.state"] == "PRUNED" and child.info.status == "KILLED"
    assert child.data.tags["optuna.why"] == "by the pruner after stage 1"
    assert child.data.params == {"head_lr": "0.001", "dropout": "0.5"}
    hist = c.get_metric_history(child.info.run_id, "val_accuracy")
    assert [(m.step, m.value) for m in hist] == [(0, 0.2), (1, 0.3), (2, 0.25)]
    assert [m.value for m in c.get_metric_history(child.info.run_id, "stage")] == [0, 0, 1]
    assert c.get_metric_history(child.info.run_id, "loss") == []  # a NaN is not logged
    assert parent.data.tags["git.commit"] == "abc" and parent.data.params["pruner"] == "stage"
    # a local store's artifacts go beside the study's results, not into ./mlruns of the cwd
    assert c.get_experiment_by_name("s1").artifact_location == (tmp_path / "mlflow-artifacts").as_uri()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "mlflow")
    proc = subprocess.Popen([exe, "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                             "--artifacts-destination", str(tmp_path / "mlflow-artifacts"),
                             "--workers", "1"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url + "/health", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("the MLflow server did not start")
            time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(30)


@pytest.mark.slow
def test_a_search_logs_to_a_real_mlflow_server_and_tensorboard(tmp_path, mlflow_server):
    """One parent run and a child run per trial whose params equal the trial's and whose
    metric histories are as long as the epochs it ran; a later `finalize` puts the test metrics
    and model on the same parent. TensorBoard's event files hold each trial's HParams and
    per-epoch scalars. A plain Optuna callback passed to run_search is called for every trial."""
    from mlflow import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from search.jobs import finalize_study, run_search
    from search.options import SearchOptions
    from search.tracking.mlflow_tracker import _reachable

    _reachable(mlflow_server.replace("http://", "http://user:pw@"))  # userinfo goes as basic auth

    write_tiny_folders(tmp_path / "data")
    tb = tmp_path / "tb"
    finished = []
    opts = SearchOptions(
        trials=3, space=TINY, data_dir=str(tmp_path / "data"), weights="none",
        train_samples=100, val_samples=30, results_dir=str(tmp_path / "res"), confirm_top=0,
        test_baseline=False, no_final=True,
        track=(f"mlflow={mlflow_server}", f"tensorboard={tb}"))
    out = run_search(opts, callbacks=[lambda study, trial: finished.append(trial.number)])
    test = finalize_study(opts)  # a separate command: it finds the study's parent run again
    assert sorted(finished) == [0, 1, 2]
    trials = {int(r["number"]): r for _, r in out.table.iterrows()}
    c = MlflowClient(mlflow_server)
    runs = c.search_runs([c.get_experiment_by_name("resnet50-cifar10").experiment_id])
    parents = [r for r in runs if r.data.tags.get("optuna.role") == "study"]
    children = [r for r in runs if r.data.tags.get("optuna.role") == "trial"]
    assert len(parents) == 1 and len(children) == 3
    for r in children:
        n = int(r.data.tags["optuna.trial"])
        row = trials[n]
        assert r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert r.data.tags["optuna.state"] == row["state"]
        params = {k.removeprefix("params_"): v for k, v in row.items()
                  if k.startswith("params_") and v == v}
        assert r.data.params == {k: str(v) for k, v in params.items()}, n
        hist = c.get_metric_history(r.info.run_id, "val_accuracy")
        assert len(hist) == row["user_attrs_epochs"] > 0
        assert [m.step for m in hist] == list(range(len(hist)))
    p = parents[0]
    assert p.data.metrics["test_accuracy_mean"] == pytest.approx(test["test_accuracy_mean"])
    assert "test_accuracy.airplane" in p.data.metrics and "version.optuna" in p.data.tags
    assert "final/best_model.keras" in [a.path for a in c.list_artifacts(p.info.run_id, "final")]
    for n, row in trials.items():
        acc = EventAccumulator(str(tb / "resnet50-cifar10" / f"trial_{n:04d}"),
                               size_guidance={"tensors": 0})
        acc.Reload()
        assert acc.PluginTagToContent("hparams"), n  # the trial's HParams summary
        assert len(acc.Tensors("val_accuracy")) == row["user_attrs_epochs"]
    final = EventAccumulator(str(tb / "resnet50-cifar10" / "final"), size_guidance={"tensors": 0})
    final.Reload()
    assert final.Tensors("test_accuracy_mean")

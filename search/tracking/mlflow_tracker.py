"""`--track mlflow=URI`: the study as a parent MLflow run, each trial a child run.

Parent run (one per study, found again on a resume by its tags): the search's settings as
params, package versions and the git commit as tags; at finalize the test metrics (per seed,
mean and std, per class), the best config, test_metrics.json and the model as artifacts.
Child run per trial: its params, per-epoch metrics (val_accuracy, loss ... and `stage`, the
stage each epoch belongs to) at step = global epoch, its state, value and why it was pruned.
Everything is logged from the search process through MlflowClient.
"""

from __future__ import annotations

import base64
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from search.errors import UserError
from search.secrets import safe_url
from search.tracking.base import SearchCallback, epoch_metrics, test_figures

STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


def _reachable(uri: str) -> None:
    """An http(s) tracking server answers its /health page, else one sentence (MLflow's own
    client retries for minutes before it says anything). A user and password in the URL go as
    basic auth, as MLflow's client sends them."""
    if not uri.startswith(("http://", "https://")):
        return
    parts = urllib.parse.urlsplit(uri)
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    request = urllib.request.Request(
        urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/health", "", "")))
    if parts.username:
        token = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        request.add_header("Authorization", "Basic " + base64.b64encode(token.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            r.read(100)
    except (urllib.error.URLError, OSError, ValueError) as e:
        why = getattr(e, "reason", e)
        raise UserError(f"cannot reach the MLflow tracking server at {safe_url(uri)} ({why}); "
                        "start it (mlflow server --port ...) or fix --track mlflow=URI.") from None


def _key(name: str) -> str:
    """A class name as an MLflow metric key (letters, digits, _-./ and spaces only)."""
    return "".join(ch if ch.isalnum() or ch in "_-. /" else "_" for ch in str(name))[:200]


class MLflowTracker(SearchCallback):
    def __init__(self, uri: str):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")  # a dead server: seconds
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        _reachable(uri)
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        self.local = urllib.parse.urlsplit(uri).scheme not in ("http", "https", "databricks")
        self.parent: str | None = None
        self.experiment: str | None = None
        self.runs: dict[int, str] = {}  # trial number -> child run id
        self.lock = threading.Lock()

    def search_started(self, info):
        from mlflow.entities import Param, RunTag

        c = self.client
        exp = c.get_experiment_by_name(info.study_name)
        # A local store (sqlite:, file:, a path) would put artifacts in ./mlruns of whatever the
        # current folder is; they go beside the study's results instead. A server keeps its own.
        where = ((Path(info.study_dir).resolve() / "mlflow-artifacts").as_uri() if self.local
                 else None)
        self.experiment = (exp.experiment_id if exp
                           else c.create_experiment(info.study_name, artifact_location=where))
        found = c.search_runs([self.experiment], "tags.`optuna.role` = 'study'",
                              max_results=1, order_by=["attributes.start_time ASC"])
        if found:
            self.parent = found[0].info.run_id
            c.update_run(self.parent, status="RUNNING")
            return
        tags = {"optuna.role": "study", "optuna.study": info.study_name,
                "storage": info.storage, "command": " ".join(info.command)[:5000], **info.tags}
        run = c.create_run(self.experiment, run_name=info.study_name, tags=tags)
        self.parent = run.info.run_id
        params = {"sampler": info.sampler, "pruner": info.pruner,
                  "space_file": Path(info.space_file).name,
                  **{f"base.{k}": v for k, v in info.base_config.items()}}
        c.log_batch(self.parent, params=[Param(k, str(v)[:6000]) for k, v in params.items()],
                    tags=[RunTag("study_dir", info.study_dir)])

    def trial_started(self, number, params):
        from mlflow.entities import Param

        run = self.client.create_run(
            self.experiment, run_name=f"trial {number}",
            tags={"mlflow.parentRunId": self.parent, "optuna.trial": str(number),
                  "optuna.role": "trial"})
        with self.lock:
            self.runs[number] = run.info.run_id
        self.client.log_batch(run.info.run_id,
                              params=[Param(k, str(v)) for k, v in params.items()])

    def epoch_ended(self, number, event):
        from mlflow.entities import Metric

        with self.lock:
            run = self.runs.get(number)
        if run is None:
            return
        now = int(time.time() * 1000)
        self.client.log_batch(run, metrics=[Metric(k, v, now, event.epoch)
                                            for k, v in epoch_metrics(event).items()])

    def trial_finished(self, study, trial):
        with self.lock:
            run = self.runs.pop(trial.number, None)
        if run is None:
            return
        c = self.client
        c.set_tag(run, "optuna.state", trial.state.name)
        why = trial.user_attrs.get("pruned") or trial.user_attrs.get("failure")
        if why:
            c.set_tag(run, "optuna.why", str(why)[:5000])
        if trial.value is not None:
            c.log_metric(run, "value", float(trial.value))
        c.set_terminated(run, STATUS.get(trial.state.name, "FAILED"))

    def search_finalized(self, test, files):
        from mlflow.entities import Metric

        c, now, run = self.client, int(time.time() * 1000), self.parent
        per_seed, summary, per_class = test_figures(test)
        metrics = [Metric("test_accuracy", a, now, k) for k, a in enumerate(per_seed)]
        metrics += [Metric(key, v, now, 0) for key, v in summary.items()]
        metrics += [Metric(f"test_accuracy.{_key(name)}", v, now, 0)
                    for name, v in per_class.items()]
        c.log_batch(run, metrics=metrics)
        c.set_tag(run, "best_trial", str(test.get("best_trial")))
        for path in files.values():
            if Path(path).is_file():
                c.log_artifact(run, str(path), artifact_path="final")

    def close(self):
        if self.parent is not None:
            self.client.set_terminated(self.parent, "FINISHED")

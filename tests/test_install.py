"""The package installs (pip install ., offline) with its console command, and the README's Python
example runs from another folder, with no path resolved from the repository."""

import os
import re
import subprocess
import sys
import sysconfig

import pytest

from conftest import ROOT
from helpers import write_tiny_folders


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A fresh venv with this project installed from the checkout (no index, no network); its
    dependencies are this test's own, seen through a .pth file."""
    v = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", str(v)], check=True, timeout=300)
    site = next((v / "lib").glob("python3.*/site-packages"))
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    out = subprocess.run([str(v / "bin" / "pip"), "install", "--quiet", "--no-deps", "--no-index",
                          "--no-build-isolation", str(ROOT)], capture_output=True, text=True,
                         timeout=600, cwd=v)
    assert out.returncode == 0, out.stderr[-3000:]
    return v


@pytest.mark.slow
def test_the_console_command_and_the_readme_example_run_from_another_folder(venv, tmp_path):
    data = write_tiny_folders(tmp_path / "cifar10-local")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    help_out = subprocess.run([str(venv / "bin" / "run-search"), "search", "--help"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300, env=env)
    assert help_out.returncode == 0 and "--jobs" in help_out.stdout
    refused = subprocess.run([str(venv / "bin" / "run-search"), "export"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300, env=env)
    assert refused.returncode == 2 and "no study storage" in refused.stderr

    example = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    assert len(example.strip().splitlines()) <= 4
    code = "import search, sys\nassert 'site-packages' in search.__file__, search.__file__\n" + example
    run = subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    best, test = run.stdout.split()[-2:]
    assert 0 < float(best) <= 1 and 0 < float(test) <= 1
    assert (data.parent / "results" / "resnet50-cifar10" / "best_model.keras").exists()

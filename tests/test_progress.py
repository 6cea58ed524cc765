"""Progress: a live bar on a terminal, plain lines at a steady interval without one."""

import io
import os
import pty
import re
import select
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from optuna.trial import TrialState

from conftest import ROOT
from helpers import write_tiny_folders
from search.runner.events import EpochEnd
from search.tracking.progress import Progress, duration


def finished(number, value, state=TrialState.COMPLETE):
    return SimpleNamespace(number=number, value=value, state=state)


def test_lines_say_trials_done_eta_best_and_each_running_trial_s_stage_and_epoch():
    out = io.StringIO()
    p = Progress(trials=4, every=0, out=out, terminal=False, best=(0.5, 0))
    p.trial_started(1, {})
    p.epoch_ended(1, EpochEnd(2, {"val_accuracy": 0.625}, stage=1, depth=5))
    p.trial_started(2, {})
    p.epoch_ended(2, EpochEnd(0, {"val_accuracy": 0.25}, stage=0))
    p.trial_finished(None, finished(1, 0.7))
    p.trial_finished(None, finished(2, None, TrialState.PRUNED))
    lines = out.getvalue().splitlines()
    assert all(line.startswith("progress: ") for line in lines)
    assert "trial 1: stage 1, epoch 3, val 0.6250" in lines[1]
    assert "trial 2: stage 0, epoch 1, val 0.2500" in lines[3] and "best 0.5000 (#0)" in lines[3]
    assert lines[-1].startswith("progress: 2/4 trials") and "best 0.7000 (#1)" in lines[-1]
    assert "ETA ?" in lines[0] and re.search(r"ETA \d+m\d\ds", lines[-1])


def test_the_eta_is_the_least_of_trials_timeout_and_epoch_budget(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    p = Progress(trials=10, timeout=300, epoch_budget=50, out=io.StringIO(), terminal=False)
    assert p.eta() == 300
    clock[0] += 60
    p.trial_finished(None, finished(0, 0.5))  # 60 s a trial: 9 more take 540 s
    assert p.eta() == 240  # the timeout is nearer
    for e in range(20):
        p.epoch_ended(1, EpochEnd(e, {}))  # 3 s an epoch: 30 more take 90 s
    assert p.eta() == 90
    assert duration(3725) == "1h02m" and duration(75) == "1m15s"


def _search(tmp, results, *extra):
    return [sys.executable, "run_search.py", "search", "--trials", "2", "--no-final",
            "--space", "tiny", "--data-dir", str(tmp / "data"), "--weights", "none",
            "--train-samples", "100", "--val-samples", "30", "--set", "head_epochs=6",
            "--results-dir", str(tmp / results), *extra]


@pytest.mark.slow
def test_a_terminal_gets_a_live_bar_and_a_pipe_gets_periodic_lines(tmp_path):
    write_tiny_folders(tmp_path / "data")
    piped = subprocess.Popen(_search(tmp_path, "piped", "--progress-every", "0.2"), cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    master, slave = pty.openpty()  # of no size, as a fresh pty or `docker run -t` may be
    tty = subprocess.Popen(_search(tmp_path, "tty"), cwd=ROOT, stdin=slave, stdout=slave, stderr=slave,
                           close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data.decode(errors="replace"))
        elif tty.poll() is not None:
            break
    os.close(master)
    assert tty.wait(60) == 0
    screen = "".join(chunks)
    assert "\r" in screen  # redrawn in place
    bars = re.findall(r"(\d)/2 trials \|[^|\r\n]*\| ([^\r\n]*)", screen)
    assert any("trial 0: stage" in text and "epoch" in text and "val 0." in text
               for _, text in bars), screen[-2000:]
    assert any(n == "1" and "best 0." in text and re.search(r"ETA \d+m\d\ds", text)
               for n, text in bars), screen[-2000:]
    out, _ = piped.communicate(timeout=300)
    assert piped.returncode == 0, out[-2000:]
    lines = [line for line in out.splitlines() if line.startswith("progress: ")]
    assert len(lines) >= 3 and "\r" not in out
    assert any(re.search(r"trial \d: stage \d, epoch \d+, val 0\.\d{4}", line) for line in lines)
    assert any(line.startswith("progress: 1/2 trials") and "best 0." in line for line in lines)

"""The search end to end on tiny data: states, steps, seed trial, resume, export, final, failures."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, make_server

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from conftest import ROOT
from helpers import write_tiny_folders
from search.cli import main
from search.recipe.config import TrainConfig
from search.tuning.space import SPACES_DIR, load_space
from search.tuning.storage import DEFAULT_STUDY, default_storage

TINY = str(SPACES_DIR / "tiny.yaml")


def common(tmp, space=TINY):
    return ["--space", space, "--data-dir", str(tmp / "data"), "--weights", "none",
            "--train-samples", "100", "--val-samples", "30", "--results-dir", str(tmp / "res")]


def load(tmp, name=DEFAULT_STUDY):
    return optuna.load_study(study_name=name, storage=default_storage(tmp / "res"))


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study")
    write_tiny_folders(tmp / "data")
    assert main(["search", "--trials", "3", "--pruner", "median", "--retrain-seeds", "2",
                 *common(tmp)]) == 0
    return tmp


def test_three_trials_finish_with_the_seed_recipe_first(searched):
    trials = load(searched).trials
    assert len(trials) == 3
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert trials[0].state == TrialState.COMPLETE
    space = load_space(TINY).with_base(weights="none", train_samples=100, val_samples=30)
    assert trials[0].params == space.seed_values()
    assert trials[0].user_attrs["seed_recipe"] is True
    assert TrainConfig.from_dict(trials[0].user_attrs["config"]) == space.base


def test_every_epoch_is_reported_once_with_increasing_steps(searched):
    for t in load(searched).trials:
        steps = sorted(t.intermediate_values)
        assert steps == list(range(t.user_attrs["epochs"]))  # no step repeated or dropped
        if t.state == TrialState.COMPLETE:
            depth = t.params["unfreeze_depth"]
            assert t.user_attrs["stage_epochs"] == [2] + [1] * (depth // 5)
            assert len(steps) == sum(t.user_attrs["stage_epochs"])
            assert t.value == pytest.approx(max(t.intermediate_values.values()))
            assert len(t.user_attrs["stage_seconds"]) == len(t.user_attrs["stage_best_val"])


def test_trial_folders_and_final_outputs_are_written(searched):
    study_dir = searched / "res" / DEFAULT_STUDY
    for t in load(searched).trials:
        run = study_dir / "trials" / f"{t.number:04d}"
        assert t.user_attrs["run_dir"] == str(run)
        for f in ("config.yaml", "command.txt", "history.csv"):
            assert (run / f).is_file()
    for f in ("best_model.keras", "best_config.yaml", "test_metrics.json", "config.yaml",
              "command.txt", "split.npz", "space.yaml"):
        assert (study_dir / f).is_file(), f
    m = json.loads((study_dir / "test_metrics.json").read_text())
    # The pick: every completed trial here (top 3 and the seed recipe) re-run on 2 more seeds.
    trials = load(searched).trials
    done = {t.number: t for t in trials if t.state == TrialState.COMPLETE}
    assert {int(k) for k in m["pick"]["values"]} == set(done)
    assert all(len(v) == 3 and v[0] == done[int(k)].value for k, v in m["pick"]["values"].items())
    assert m["best_trial"] == m["pick"]["trial"] == load(searched).user_attrs["pick"]["trial"]
    best = done[m["best_trial"]]
    assert len(m["test_accuracy"]) == 2 and 0 <= m["test_accuracy_mean"] <= 1
    # Nothing is trained after the pick: seed 0 is the trial's own run (it kept its model), seed 1
    # the pick's re-run; no kept model is left behind in the trials' folders.
    assert [r["reused"] for r in m["runs"]] == ["trial", "pick"]
    assert m["val_accuracy"] == [best.value, m["pick"]["values"][str(best.number)][1]]
    assert not list(study_dir.glob("trials/*/model.keras"))
    assert (study_dir / "trials" / f"{best.number:04d}" / "config.yaml").is_file()
    assert sum(map(sum, m["saved_model"]["confusion_matrix"])) == 40  # the whole test split
    assert TrainConfig.load(study_dir / "best_config.yaml").to_dict() == best.user_attrs["config"]


def test_export_round_trips_and_train_reproduces_the_best_params(searched, tmp_path, capsys):
    out = tmp_path / "best.yaml"
    assert main(["export", "--results-dir", str(searched / "res"), "--out", str(out)]) == 0
    study = load(searched)
    best = study.trials[study.user_attrs["pick"]["trial"]]  # the pick over seeds is the best
    cfg = TrainConfig.load(out)
    assert cfg.to_dict() == best.user_attrs["config"]
    for k, v in best.params.items():
        if k.startswith("stage_lr_"):
            assert cfg.stage_lrs[int(k.rsplit("_", 1)[1]) - 1] == v
        else:
            assert getattr(cfg, k) == v
    assert main(["export", "--results-dir", str(searched / "res"), "--format", "json"]) == 0
    assert TrainConfig.from_dict(json.loads(capsys.readouterr().out)) == cfg

    assert main(["train", "--config", str(out), "--data-dir", str(searched / "data"),
                 "--results-dir", str(tmp_path / "r"), "--verbose", "0"]) == 0
    (run,) = (tmp_path / "r" / "runs").iterdir()
    assert (run / "config.yaml").read_text() == out.read_text()


@pytest.mark.slow
def test_rerun_adds_trials_to_the_same_study(searched, tmp_path):
    shutil.copytree(searched, tmp_path, dirs_exist_ok=True)  # the shared study stays as it was
    assert main(["search", "--trials", "2", "--no-final", "--no-cache", "--pruner", "median",
                 *common(tmp_path)]) == 0  # the pruner it was started with: steps must match
    trials = load(tmp_path).trials
    assert len(trials) == 5 and [t.number for t in trials] == list(range(5))
    assert sum(t.params == trials[0].params for t in trials) == 1  # the seed is not re-enqueued


def test_resume_with_a_conflicting_space_is_refused(searched, capsys):
    n = len(load(searched).trials)
    rc = main(["search", "--trials", "1", *common(searched, str(SPACES_DIR / "small.yaml"))])
    assert rc == 2
    err = capsys.readouterr().err
    assert "conflicts with this search" in err and "unfreeze_depth" in err
    assert len(load(searched).trials) == n


def test_resume_with_another_set_of_the_base_config_is_refused(searched, capsys):
    n = len(load(searched).trials)
    assert main(["search", "--trials", "1", "--pruner", "median", "--set", "batch_size=16",
                 *common(searched)]) == 2
    err = capsys.readouterr().err
    assert "conflicts with this search" in err and "base config 'batch_size' was 32, now 16" in err
    assert len(load(searched).trials) == n


def test_resume_with_a_pruner_of_another_step_is_refused(searched, capsys):
    n = len(load(searched).trials)
    assert n == 3  # no other test adds to the shared study
    assert main(["search", "--trials", "1", "--pruner", "stage", *common(searched)]) == 2
    err = capsys.readouterr().err
    assert "pruned per epoch" in err and "--pruner hyperband or median or none or sha" in err
    assert len(load(searched).trials) == n  # nothing added
    assert load(searched).user_attrs["identity"]["pruning_step"] == "epoch"


def test_a_study_without_an_identity_is_refused_unless_adopted_and_then_bound(tmp_path, capsys):
    """A study made outside (optuna create-study), or whose creator stopped before writing its
    identity, once stayed unbound for good and accepted any data; now it is refused with the
    way to adopt it, and an adopted study checks the next joiner's data like any other."""
    write_tiny_folders(tmp_path / "data")
    (tmp_path / "res").mkdir()
    optuna.create_study(study_name="outside", storage=default_storage(tmp_path / "res"),
                        direction="maximize")
    argv = ["search", "--trials", "0", "--no-final", "--study-name", "outside", *common(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "records no data, base config or pruner step" in err and "--adopt" in err
    assert main([*argv, "--adopt"]) == 0
    ident = load(tmp_path, "outside").user_attrs["identity"]
    assert ident["pruning_step"] == "stage" and ident["data"]["fingerprint"]
    write_tiny_folders(tmp_path / "other", 100, 40)
    other = [a if a != str(tmp_path / "data") else str(tmp_path / "other") for a in argv]
    assert main(other) == 2
    assert "fingerprint" in capsys.readouterr().err


def test_finalize_flags_that_change_what_the_study_searched_with_are_refused(searched, capsys):
    assert main(["finalize", "--results-dir", str(searched / "res"), "--data-dir",
                 str(searched / "data"), "--split-seed", "7"]) == 2
    assert "was searched with split_seed=0, but this finalize asks for 7" in capsys.readouterr().err


def test_unknown_study_lists_the_existing_ones(searched, capsys):
    assert main(["export", "--results-dir", str(searched / "res"), "--study-name", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no study named 'nope'" in err and DEFAULT_STUDY in err


def test_unreachable_storage_names_the_url(tmp_path, capsys):
    write_tiny_folders(tmp_path / "data")
    for url in ("sqlite:////proc/no-such-dir/x.db", "postgresql://u:secret@127.0.0.1:9/db"):
        assert main(["search", "--trials", "1", "--storage", url, *common(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert url.replace("secret", "***") in err and "secret" not in err


def test_dashboard_serves_the_study_over_http(searched):
    import optuna_dashboard

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    srv = make_server("127.0.0.1", 0, optuna_dashboard.wsgi(default_storage(searched / "res")),
                      handler_class=Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/api/studies"
        body = json.loads(urllib.request.urlopen(url, timeout=10).read())
    finally:
        srv.shutdown()
    assert [s["study_name"] for s in body["study_summaries"]] == [DEFAULT_STUDY]


@pytest.mark.slow
def test_diverging_trials_are_pruned_with_the_reason_and_the_study_goes_on(tmp_path, capsys):
    """Both trials run (the study goes on after the first diverges); a search in which nothing
    completed then exits 1 with the reason."""
    write_tiny_folders(tmp_path / "data")
    space = tmp_path / "nan.yaml"
    space.write_text(
        f"base_config: {ROOT / 'configs' / 'seed.yaml'}\n"
        "fixed: {head_epochs: 1, unfreeze_depth: 0, stage_lrs: [], batch_size: 32}\n"
        "params:\n  head_lr: {type: float, low: 1.0e+30, high: 1.0e+32, log: true}\n")
    assert main(["search", "--trials", "2", "--no-final", *common(tmp_path, str(space))]) == 1
    assert "without a completed trial; the most common reason (2x): diverged" in capsys.readouterr().err
    trials = load(tmp_path).trials
    assert [t.state for t in trials] == [TrialState.PRUNED, TrialState.PRUNED]
    assert all(t.user_attrs["failure"].startswith("diverged: loss became non-finite")
               for t in trials)


def interrupt_when(cmd, ready, timeout=600):
    """Start `cmd`, send SIGINT once `ready(line)` holds for a printed line (and then whatever
    `ready` waits on), and return (exit code, stdout, stderr). Waits on conditions, not a clock:
    a slow machine only takes longer."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)  # its own group
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if ready(line):
                break
        else:
            pytest.fail(f"the condition never held: {''.join(lines)[-2000:]}")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):  # the search and any worker left behind
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return proc.returncode, "".join(lines) + out, err


def a_trial_is_training(tmp):
    """True once a trial after the first completed one is running with epochs still to go: it has
    reported its first epoch of three (two head epochs, one stage; a trial near its end could
    finish between this look and the signal, and then no trial would be running)."""
    deadline = time.time() + 600
    while time.time() < deadline:
        trials = load(tmp).get_trials()
        if any(t.state == TrialState.RUNNING and len(t.intermediate_values) == 1
               and t.params.get("unfreeze_depth") == 5 for t in trials):
            return True
        time.sleep(0.05)
    pytest.fail("no trial started training in 10 minutes")


@pytest.mark.slow
def test_sigint_in_a_trial_fails_it_keeps_completed_ones_and_resumes(tmp_path):
    """Default --jobs (one worker per core here): every trial running at the Ctrl-C fails, and
    none goes on or begins after it (a thread about to start one is refused a worker)."""
    from datetime import datetime, timedelta

    from search.runner.pool import default_jobs

    write_tiny_folders(tmp_path / "data")
    cmd = [sys.executable, "run_search.py", "--trials", "20", "--pruner", "none", *common(tmp_path)]
    sent = []

    def ready(line):
        if line.startswith("trial ") and "COMPLETE" in line and a_trial_is_training(tmp_path):
            sent.append(datetime.now())  # Optuna's trial times are local and naive too
            return True
        return False
    rc, _, err = interrupt_when(cmd, ready)
    assert rc == 130, err[-2000:]
    assert "Resume with" in err and "run_search.py" in err
    hint = err[err.index("Resume with"):]  # the flags this search was given, not the test's argv
    assert "--pruner none" in hint and str(tmp_path / "res") in hint and "--trials 20" in hint
    before = load(tmp_path).trials
    complete = [(t.number, t.value) for t in before if t.state == TrialState.COMPLETE]
    assert len(complete) >= 1
    rest = [t.state for t in before if t.state != TrialState.COMPLETE]
    assert rest and set(rest) == {TrialState.FAIL} and len(rest) <= default_jobs(), rest
    late = sent[0] + timedelta(seconds=1)  # a trial takes seconds; the signal follows at once
    assert all(t.datetime_complete <= late for t in before if t.state == TrialState.COMPLETE)

    assert main(["search", "--trials", "1", "--no-final", "--pruner", "none",
                 *common(tmp_path)]) == 0
    after = load(tmp_path).trials
    assert [(t.number, t.value) for t in after if t.state == TrialState.COMPLETE][:-1] == complete
    assert len(after) == len(before) + 1 and after[-1].state == TrialState.COMPLETE


@pytest.mark.slow
def test_sigint_in_the_retrain_ends_non_zero_keeps_every_trial_and_publishes_nothing(tmp_path):
    write_tiny_folders(tmp_path / "data")
    cmd = [sys.executable, "run_search.py", "--trials", "2", "--pruner", "none", "--confirm-top", "0",
           "--retrain-seeds", "2", *common(tmp_path)]  # seed 0 is the trial's: seed 1 trains
    rc, out, err = interrupt_when(cmd, lambda line: line.startswith("retraining best with seed"))
    assert rc == 130 and "interrupted" in err, (out[-2000:], err[-2000:])
    trials = load(tmp_path).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert not (tmp_path / "res" / DEFAULT_STUDY / "best").exists()  # no half set published


def test_export_without_any_storage_writes_nothing(tmp_path, capsys):
    assert main(["export", "--results-dir", str(tmp_path / "res")]) == 2
    assert "no study storage at" in capsys.readouterr().err
    assert not (tmp_path / "res").exists()


STAGED = """base_config: {seed}
fixed: {{head_epochs: 2, finetune_epochs: 1, unfreeze_depth: 10, stage_lrs: [1.0e-4, 5.0e-5],
        batch_size: 32}}
params:
  head_lr:         {{type: float, low: 1.0e-4, high: 1.0e-2, log: true}}
  unfreeze_stages: {{type: int, low: 0, high: 2}}
  stage_lr:        {{type: float, low: 1.0e-5, high: 1.0e-2, log: true, per_stage: true}}
"""


@pytest.mark.slow
def test_stage_pruning_acts_at_stage_ends_alike_in_a_worker_and_in_process(tmp_path):
    """The stage pruner sees the best val accuracy so far at the end of every stage but the
    last (step = stage index), halves the trials there, and a reused worker process gives what
    this process gives, value for value (its later trials inherit nothing)."""
    write_tiny_folders(tmp_path / "data")
    space = tmp_path / "staged.yaml"
    space.write_text(STAGED.format(seed=ROOT / "configs" / "seed.yaml"))
    runs = {}
    for flag, name in ((["--no-isolate"], "inproc"), (["--jobs", "1"], "worker")):  # one worker
        argv = ["search", "--trials", "7", "--no-final", "--study-name", name, "--pruner", "stage",
                "--sampler", "random", "--sampler-seed", "1", *flag]  # seed 1: some are pruned
        assert main([*argv, *common(tmp_path, str(space))]) == 0
        runs[name] = [(t.state, t.params, t.value, t.intermediate_values)
                       for t in load(tmp_path, name).trials]
    assert runs["worker"] == runs["inproc"]
    trials = load(tmp_path, "worker").trials
    states = [t.state for t in trials]
    assert states.count(TrialState.PRUNED) >= 1 and states.count(TrialState.COMPLETE) >= 2
    for t in trials:
        ends = {int(k): v for k, v in t.user_attrs["stage_ends"].items()}
        steps = sorted(ends)
        # every epoch's val accuracy is reported (the dashboard's curve), step = global epoch
        assert sorted(t.intermediate_values) == list(range(t.user_attrs["epochs"]))
        if t.state == TrialState.COMPLETE:
            n = t.params["unfreeze_stages"]
            assert steps == list(range(n))  # every stage end but the last
            best = np.maximum.accumulate(t.user_attrs["stage_best_val"]).tolist()
            assert [ends[s] for s in steps] == best[:n]
            assert t.value == best[-1] == max(t.intermediate_values.values())
        else:  # pruned where successive halving says: at stage 1 or 2, not in the top half of
            # the trials that had reached that stage end by then (pruned ones included)
            assert t.state == TrialState.PRUNED and steps[-1] in (1, 2)
            s = steps[-1]
            rung = sorted((u.user_attrs["stage_ends"][str(s)] for u in trials[:t.number + 1]
                           if str(s) in u.user_attrs["stage_ends"]), reverse=True)
            assert ends[s] < rung[max(len(rung) // 2 - 1, 0)]


@pytest.mark.slow
def test_worker_is_reused_then_replaced_and_a_bad_value_is_refused(tmp_path, capsys):
    from search.recipe.config import SEED_CONFIG, TrainConfig
    from search.recipe.data import make_data
    from search.runner.events import EpochEnd, Stopped
    from search.runner.worker import WorkerRunner, WorkerSpec
    from tests.helpers import tiny_source

    assert main(["search", "--worker-trials", "0", *common(tmp_path)]) == 2
    assert "--worker-trials" in capsys.readouterr().err
    assert not (tmp_path / "res").exists()
    data = make_data(tiny_source(60, 20), 40, 20, 0)
    config = TrainConfig.load(SEED_CONFIG).replace(
        weights="none", head_epochs=1, unfreeze_depth=0, stage_lrs=(), batch_size=20,
        train_samples=40, val_samples=20)
    worker = WorkerRunner(WorkerSpec(data), max_runs=2)
    try:
        seen = []
        values = [worker.run(config, lambda e: seen.append(e.epoch) and False).value
                  for _ in range(3)]
        assert worker.started == 2 and worker.runs == 1  # 2 runs in the first, 1 in the next
        assert seen == [0, 0, 0] and values[0] == values[1] == values[2]
        worker.proc.kill()  # dies while idle, with a run to spare: the next gets a new one
        worker.proc.join(5)
        assert worker.run(config).value == values[0]
        assert worker.started == 3 and worker.runs == 1
        pid = worker.proc.pid
        stopped = worker.run(config, lambda e: isinstance(e, EpochEnd))  # pruned: kept
        assert stopped == Stopped("at epoch 0", 1)
        assert worker.proc.pid == pid and worker.started == 3
    finally:
        worker.close()
    assert worker.proc is None


def test_a_search_ends_with_its_report_notes_and_trial_artifacts(searched):
    from optuna.artifacts import get_all_artifact_meta
    from optuna_dashboard import get_note

    storage = optuna.storages.RDBStorage(default_storage(searched / "res"))
    study = optuna.load_study(study_name=DEFAULT_STUDY, storage=storage)
    report = searched / "res" / DEFAULT_STUDY / "report"
    for f in ("index.html", "trials.csv", "optimization_history.png", "confusion_matrix.png",
              "misclassified.png", "top5_curves.png"):
        assert (report / f).is_file(), f
    study_id = storage.get_study_id_from_name(DEFAULT_STUDY)

    def note(t):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        return get_note(optuna.trial.Trial(study, trial_id))

    for t in study.trials:
        assert note(t).startswith("**complete**" if t.state == TrialState.COMPLETE else "**pruned")
    best = study.best_trial
    assert "| 0 | 0 |" in note(best)
    names = {m.filename for m in get_all_artifact_meta(best, storage=storage)}
    assert names == {"curves.png", "history.csv"}
    assert "best_model.keras" in {m.filename for m in get_all_artifact_meta(study)}


def test_the_saved_model_loads_and_predicts_without_this_package(searched, tmp_path):
    """best_model.keras in a Python that never imports `search` (run from a folder where it cannot
    be imported) gives the in-process probabilities; the SavedModel export the same classes."""
    from helpers import tiny_source
    from search.recipe.evaluate import load_model

    study_dir = searched / "res" / DEFAULT_STUDY
    x = tiny_source(20, 20, seed=5).x_test.astype("float32")
    np.save(tmp_path / "x.npy", x)
    want = load_model(study_dir / "best_model.keras").predict(x, verbose=0)
    code = ("import sys, numpy as np, keras, tensorflow as tf\n"
            "x = np.load(sys.argv[2])\n"
            "p = keras.saving.load_model(sys.argv[1]).predict(x, verbose=0)\n"
            "served = tf.saved_model.load(sys.argv[3])  # held: its variables live in it\n"
            "q = served.serve(x).numpy()\n"
            "assert not any(m == 'search' or m.startswith('search.') for m in sys.modules)\n"
            "np.save(sys.argv[4], np.stack([p, q]))\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code, str(study_dir / "best_model.keras"),
                          str(tmp_path / "x.npy"), str(study_dir / "best_model_savedmodel"),
                          str(tmp_path / "out.npy")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    p, q = np.load(tmp_path / "out.npy")
    np.testing.assert_allclose(p, want, atol=1e-5, rtol=0)
    assert (q.argmax(1) == want.argmax(1)).all()
    assert len(set(want.argmax(1))) > 1  # a model that predicts more than one class


def test_a_search_whose_trials_all_fail_stops_and_exits_1_with_the_reason(tmp_path, capsys,
                                                                           monkeypatch):
    import search.runner.trial as trial_module

    def broken(*args, **kwargs):
        raise RuntimeError("the GPU caught fire")

    monkeypatch.setattr(trial_module, "train", broken)
    write_tiny_folders(tmp_path / "data", 40, 20)
    argv = ["search", "--trials", "10", "--max-failures", "3", "--no-isolate", *common(tmp_path),
            "--train-samples", "40", "--val-samples", "10"]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert "the last 3 trials failed (--max-failures 3)" in out
    assert err.strip() == ("error: all 3 trials of this search failed; the most common reason (3x): "
                           "RuntimeError: the GPU caught fire")
    assert [t.state for t in load(tmp_path).trials] == [TrialState.FAIL] * 3


def test_resumes_draw_their_own_sampler_seeds_unless_pinned(tmp_path):
    """Two processes resuming one SQLite study at once used to draw the same seed (seed + trials):
    now each resume draws its own from os.urandom; --sampler-seed pins it."""
    from search.tuning.optuna_space import all_distributions
    from search.tuning.study import create_or_resume

    space = load_space(TINY).with_base(weights="none", train_samples=100, val_samples=30)
    dists = all_distributions(space)
    url = default_storage(tmp_path)
    study, _ = create_or_resume("s", url, space, "random", "none", 0)
    study.tell(study.ask(dists), state=TrialState.FAIL)  # the enqueued seed recipe
    for pinned, distinct in ((True, 1), (False, 2)):
        drawn = set()
        together = [create_or_resume("s", url, space, "random", "none", 0, pinned=pinned)[0]
                    for _ in range(2)]  # both resumed before either draws
        for st in together:
            trial = st.ask(dists)
            drawn.add(trial.params["head_lr"])
            st.tell(trial, state=TrialState.FAIL)
        assert len(drawn) == distinct, (pinned, drawn)


@pytest.mark.parametrize("rule,first", [("halving", 1), ("halving", 2), ("median", 1)])
def test_the_stage_end_pruner_decides_as_optuna_s_pruner_on_stage_steps(rule, first):
    """The stage pruners read stage ends from an attribute (the intermediate values are per
    epoch); fed the same stage-end values, they prune exactly where Optuna's SuccessiveHalving
    and Median pruners, reporting stage ends as steps, do (40 trials of up to 6 stage ends,
    each decision changing what later trials compete with)."""
    from search.tuning.pruning import STAGE_ENDS, StageEndPruner

    ours = StageEndPruner(rule, reduction_factor=2, n_startup_trials=4, first_stage=first)
    theirs = (optuna.pruners.SuccessiveHalvingPruner(min_resource=first, reduction_factor=2)
              if rule == "halving" else optuna.pruners.MedianPruner(n_startup_trials=4,
                                                                     n_warmup_steps=1))
    a = optuna.create_study(direction="maximize", pruner=ours)
    b = optuna.create_study(direction="maximize", pruner=theirs)
    rng = np.random.default_rng(3)
    decisions = {"ours": [], "theirs": []}
    for _ in range(40):
        values = np.maximum.accumulate(rng.uniform(0, 1, rng.integers(1, 7))).round(2)
        values[rng.random(len(values)) < 0.05] = np.nan  # now and then a NaN stage end
        ta, tb = a.ask(), b.ask()
        ta.set_user_attr(STAGE_ENDS, {})
        ends, stopped = {}, {"ours": None, "theirs": None}
        for s, v in enumerate(values):
            ta.report(float(v), step=10 * s)  # per-epoch values: not what ours reads
            ends[str(s)] = float(v)
            ta.set_user_attr(STAGE_ENDS, dict(ends))
            if stopped["ours"] is None and ta.should_prune():
                stopped["ours"] = s
            tb.report(float(v), step=s)
            if stopped["theirs"] is None and tb.should_prune():
                stopped["theirs"] = s
            if stopped["ours"] is not None or stopped["theirs"] is not None:
                break
        for key, t, study in (("ours", ta, a), ("theirs", tb, b)):
            decisions[key].append(stopped[key])
            last = float(values[-1])
            study.tell(t, state=optuna.trial.TrialState.PRUNED) if stopped[key] is not None \
                else study.tell(t, last if last == last else 0.0)
    assert decisions["ours"] == decisions["theirs"]
    assert sum(d is not None for d in decisions["ours"]) >= 5  # it did prune
    if rule == "halving":  # its rungs only: stage ends first, 2 x first, 4 x first
        assert {d for d in decisions["ours"] if d is not None} <= {first, 2 * first, 4 * first}


def test_stage_late_never_judges_a_trial_at_the_end_of_its_first_stage():
    from search.tuning.pruning import STAGE_ENDS
    from search.tuning.study import make_pruner

    study = optuna.create_study(direction="maximize", pruner=make_pruner("stage-late", 40))
    for v in (0.9, 0.8, 0.7, 0.6):  # earlier trials, far ahead at both stage ends
        t = study.ask()
        t.set_user_attr(STAGE_ENDS, {"1": v, "2": v})
        study.tell(t, v)
    t = study.ask()
    t.set_user_attr(STAGE_ENDS, {"1": 0.1})
    assert not t.should_prune()  # the worst at stage 1 goes on
    t.set_user_attr(STAGE_ENDS, {"1": 0.1, "2": 0.2})
    assert t.should_prune()  # and is judged at stage 2


def _dashboard_get(storage_url: str, path: str):
    import optuna_dashboard

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    srv = make_server("127.0.0.1", 0, optuna_dashboard.wsgi(storage_url), handler_class=Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}{path}"
        return json.loads(urllib.request.urlopen(url, timeout=30).read())
    finally:
        srv.shutdown()


@pytest.mark.slow
def test_the_dashboard_shows_a_running_trial_s_curve_under_the_stage_pruner(tmp_path):
    """The default (stage) pruner once reported only stage ends, so a running trial had no
    curve: now every epoch's val accuracy is an intermediate value, and the objective is named."""
    write_tiny_folders(tmp_path / "data")
    cmd = [sys.executable, "run_search.py", "search", "--trials", "1", "--no-final", "--no-cache",
           "--set", "head_epochs=40", *common(tmp_path)]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True)
    try:
        seen = []  # read the storage only once the search made it (a reader that opens a
        while not any("new study" in line for line in seen):  # missing SQLite file makes one)
            seen.append(p.stdout.readline())
            assert seen[-1], "".join(seen)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            time.sleep(0.5)
            trials = load(tmp_path).get_trials(states=(TrialState.RUNNING,))
            if trials and len(trials[0].intermediate_values) >= 2:
                break
        else:
            pytest.fail("no running trial reported two epochs")
        study_id = load(tmp_path)._study_id
        body = _dashboard_get(default_storage(tmp_path / "res"), f"/api/studies/{study_id}")
    finally:
        os.killpg(p.pid, signal.SIGINT)
        p.wait(60)
    running = [t for t in body["trials"] if t["state"] == "Running"]
    assert len(running) == 1 and len(running[0]["intermediate_values"]) >= 2
    steps = [v["step"] for v in running[0]["intermediate_values"]]
    assert steps == list(range(len(steps)))  # per epoch
    assert body["objective_names"] == ["val_accuracy"]

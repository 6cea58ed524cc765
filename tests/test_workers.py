"""Many workers on one study: PostgreSQL, a worker killed mid-trial, SQLite and journal storages.

The PostgreSQL tests need a server: SEARCH_TEST_POSTGRES=postgresql+psycopg://... (.ci/run starts
one with .ci/postgres.sh, so CI always runs them; set but unreachable is a failure, not a skip)."""

import os
import signal
import subprocess
import sys
import time
import uuid

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from conftest import ROOT
from helpers import write_tiny_folders
from search.cli import main
from search.tuning.space import SPACES_DIR
from search.tuning.storage import default_storage

PG = os.environ.get("SEARCH_TEST_POSTGRES")
TINY = str(SPACES_DIR / "tiny.yaml")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


pytestmark = pytest.mark.slow  # processes that train several trials each

@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_tiny_folders(tmp_path_factory.mktemp("workers") / "data")


@pytest.fixture
def pg_url():
    if not PG:
        pytest.skip("no PostgreSQL server: set SEARCH_TEST_POSTGRES to a postgresql+psycopg:// URL "
                    "(.ci/postgres.sh start prints one)")
    import sqlalchemy

    try:
        with sqlalchemy.create_engine(PG).connect():
            pass
    except Exception as e:
        pytest.fail(f"SEARCH_TEST_POSTGRES is set but the server is unreachable: {e}")
    return PG


def worker(tmp, data_dir, storage, name, trials, *extra):
    cmd = [sys.executable, "run_search.py", "search", "--trials", str(trials), "--no-final",
           "--storage", storage, "--study-name", name, "--space", TINY, "--data-dir", str(data_dir),
           "--weights", "none", "--train-samples", "100", "--val-samples", "30",
           "--results-dir", str(tmp / "res"), *extra]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def output(p, timeout=600):
    """What worker `p` printed once it ended; a worker still running after `timeout` seconds is
    killed with its training children (a failed test leaves no process behind)."""
    try:
        return p.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise


def finish(p, timeout=600):
    out = output(p, timeout)
    assert p.returncode == 0, out[-3000:]
    return out


def test_two_workers_share_one_postgres_study_and_finalize_writes_the_outputs(tmp_path, data_dir,
                                                                              pg_url):
    name = f"w-{uuid.uuid4().hex[:8]}"
    procs = [worker(tmp_path, data_dir, pg_url, name, 3) for _ in range(2)]
    for p in procs:
        finish(p)
    study = optuna.load_study(study_name=name, storage=pg_url)
    done = study.get_trials(states=FINISHED)
    assert len(done) == 6 and len({t.number for t in done}) == 6
    assert sum(bool(t.user_attrs.get("seed_recipe")) for t in study.trials) == 1
    assert main(["finalize", "--confirm-top", "0", "--storage", pg_url, "--study-name", name, "--data-dir",
                 str(data_dir), "--results-dir", str(tmp_path / "res")]) == 0
    out = tmp_path / "res" / name
    for f in ("best_model.keras", "test_metrics.json", "best_config.yaml", "report/index.html"):
        assert (out / f).is_file(), f


def kill_mid_trial_then_resume(tmp_path, data_dir, storage, name):
    """Worker A (default --jobs: one worker per core here) completes a trial and is SIGKILLed
    with its training children inside the next; after the grace period worker B marks every
    trial A was running FAIL, reruns each once and keeps every completed one."""
    pinned = ("--heartbeat", "5", "--sampler-seed", "0")  # the minimum; the same trials every run
    a = worker(tmp_path, data_dir, storage, name, 4, *pinned)
    running_trial(storage, name, completed=True, alive=a)
    os.killpg(a.pid, signal.SIGKILL)
    a.communicate()
    trials = optuna.load_study(study_name=name, storage=storage).trials  # as A left them
    killed = [t for t in trials if t.state == TrialState.RUNNING]
    before = {t.number: t.value for t in trials if t.state == TrialState.COMPLETE}
    time.sleep(11)  # past the grace period (2 x heartbeat)
    out = finish(worker(tmp_path, data_dir, storage, name, len(killed), *pinned))
    assert f"trials {[t.number for t in killed]} lost their worker" in out
    study = optuna.load_study(study_name=name, storage=storage)
    after = {t.number: t for t in study.trials}
    # A trial killed while it waited for its in-order view had no params yet; the rerun draws
    # them. One that was training (there is one: the loop above waited for it) keeps its own.
    assert any(t.intermediate_values for t in killed)
    for t in killed:
        assert after[t.number].state == TrialState.FAIL
        retries = [r for r in study.trials
                   if RetryHeartbeatStaleTrialCallback.retried_trial_number(r) == t.number]
        assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
        if t.params:
            assert retries[0].params == t.params
        if t.intermediate_values:
            assert "hits" in retries[0].user_attrs["cache"]  # the rerun read the cache A filled
    assert {n: after[n].value for n in before} == before  # no completed trial lost or changed


def test_a_killed_worker_s_trial_is_failed_and_rerun_on_postgres(tmp_path, data_dir, pg_url):
    kill_mid_trial_then_resume(tmp_path, data_dir, pg_url, f"k-{uuid.uuid4().hex[:8]}")


def test_a_killed_worker_s_trial_is_failed_and_rerun_on_sqlite(tmp_path, data_dir):
    kill_mid_trial_then_resume(tmp_path, data_dir, default_storage(tmp_path / "res"), "kill")


def test_an_unreachable_postgres_is_one_sentence_naming_host_and_port(tmp_path, data_dir, capsys):
    t0 = time.time()
    url = "postgresql+psycopg://search:secret@127.0.0.1:1/nowhere"
    rc = main(["search", "--storage", url, "--space", TINY, "--data-dir", str(data_dir),
               "--weights", "none", "--train-samples", "100", "--val-samples", "30",
               "--results-dir", str(tmp_path / "res")])
    err = capsys.readouterr().err
    assert rc == 2 and time.time() - t0 < 30
    assert "host 127.0.0.1, port 1" in err and "secret" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "res" / "resnet50-cifar10").exists()  # nothing half-written


def test_a_journal_storage_runs_and_resumes(tmp_path, data_dir):
    url = f"journal:{tmp_path / 'study.log'}"
    for trials in (2, 1):
        finish(worker(tmp_path, data_dir, url, "journal", trials))
    study = optuna.load_study(study_name="journal", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.log"))))
    assert len(study.get_trials(states=FINISHED)) == 3
    assert study.trials[0].user_attrs["seed_recipe"] is True


def test_three_workers_started_together_draw_different_trials_and_one_seed_trial(tmp_path,
                                                                                 data_dir, pg_url):
    name = f"t-{uuid.uuid4().hex[:8]}"
    procs = [worker(tmp_path, data_dir, pg_url, name, 1, "--sampler", "random") for _ in range(3)]
    for p in procs:
        finish(p)
    trials = optuna.load_study(study_name=name, storage=pg_url).trials
    assert len(trials) == 3
    assert sum(bool(t.user_attrs.get("seed_recipe")) for t in trials) == 1
    params = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(params)) == 3, params


def with_password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    userinfo, host = rest.split("@", 1) if "@" in rest else ("postgres", rest)
    return f"{scheme}://{userinfo.split(':')[0]}:{password}@{host}"


def test_a_storage_password_reaches_no_file_and_no_printed_line(tmp_path, data_dir, pg_url):
    """A search, an interrupted search and a finalize with a password in the URL (the test
    server trusts local connections and ignores it): no file under the results folder, no
    printed line and no study attribute holds the password."""
    secret = f"pw{uuid.uuid4().hex[:10]}"
    url, name = with_password(pg_url, secret), f"s-{uuid.uuid4().hex[:8]}"
    printed = [finish(worker(tmp_path, data_dir, url, name, 2))]
    storage = optuna.storages.RDBStorage(pg_url)  # one engine: a poll takes milliseconds
    study_id = storage.get_study_id_from_name(name)
    p = worker(tmp_path, data_dir, url, name, 100)  # tiny: one stage at most, never pruned
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None and not [  # a trial of this run is running
            t for t in storage.get_all_trials(study_id, states=(TrialState.RUNNING,))
            if t.number >= 2]:
        time.sleep(0.1)
    os.killpg(p.pid, signal.SIGINT)
    printed.append(output(p, timeout=120))
    assert p.returncode != 0 and "Resume with" in printed[-1], printed[-1][-2000:]
    fin = subprocess.run([sys.executable, "run_search.py", "finalize", "--confirm-top", "0", "--storage", url,
                          "--study-name", name, "--data-dir", str(data_dir), "--results-dir",
                          str(tmp_path / "res")], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert fin.returncode == 0, fin.stderr[-3000:]
    printed += [fin.stdout, fin.stderr]
    assert "***" in "".join(printed)  # the masked URL was printed, so the check below means much
    for text in printed:
        assert secret not in text
    files = [f for f in (tmp_path / "res").rglob("*") if f.is_file()]
    assert len(files) > 20
    assert [f for f in files if secret.encode() in f.read_bytes()] == []
    trials = storage.get_all_trials(study_id)
    attrs = [storage.get_study_user_attrs(study_id), storage.get_study_system_attrs(study_id),
             *(t.user_attrs for t in trials), *(t.system_attrs for t in trials)]
    assert secret not in repr(attrs)


def test_two_finalizes_at_once_leave_one_consistent_set(tmp_path, data_dir):
    storage = default_storage(tmp_path / "res")
    finish(worker(tmp_path, data_dir, storage, "f", 2))
    cmd = [sys.executable, "run_search.py", "finalize", "--confirm-top", "0", "--study-name", "f",
           "--data-dir",
           str(data_dir), "--results-dir", str(tmp_path / "res")]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(2)]
    for p in procs:
        finish(p)
    study_dir = tmp_path / "res" / "f"
    runs = sorted(p.name for p in (study_dir / "final").iterdir())
    assert len(runs) == 2  # each wrote its own folder ...
    current = (study_dir / "best").resolve()
    assert current.name in runs  # ... and one of them is what every top-level name shows
    for f in ("best_config.yaml", "best_model.keras", "test_metrics.json", "classes.json",
              "misclassified.npz", "best_model_savedmodel"):
        assert (study_dir / f).resolve().parent == current, f
    import json

    metrics = json.loads((study_dir / "test_metrics.json").read_text())
    assert metrics["final_run"] == current.name
    assert (study_dir / "best_config.yaml").read_text().startswith("seed:")
    assert not [p for p in study_dir.rglob(".*.tmp*")]  # no temporary file left behind


def test_jobs_run_distinct_trials_side_by_side_and_each_value_is_reproduced_with_one(tmp_path,
                                                                                    data_dir):
    """--jobs 2: two worker processes on one study; every trial ran once, with its own params;
    each trial's value is what --jobs 1 gives for the same params (a run depends on its config
    alone, whichever worker ran it and whatever ran beside it)."""
    storage = default_storage(tmp_path / "res")
    out = finish(worker(tmp_path, data_dir, storage, "pair", 4, "--jobs", "2", "--sampler",
                        "random", "--pruner", "none"))
    assert "2 trials side by side" in out
    study = optuna.load_study(study_name="pair", storage=storage)
    trials = study.trials
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4, [
        (t.state, t.user_attrs.get("failure")) for t in trials]
    assert sum(bool(t.user_attrs.get("seed_recipe")) for t in trials) == 1
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4
    starts = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    assert any(a[1] > b[0] for a, b in zip(starts, starts[1:]))  # two ran at once

    again = optuna.create_study(study_name="again", storage=storage, direction="maximize")
    for t in trials:
        again.enqueue_trial(t.params)
    finish(worker(tmp_path, data_dir, storage, "again", 4, "--jobs", "1", "--sampler", "random",
                  "--pruner", "none", "--adopt"))  # made here, so it records no identity yet
    redo = {tuple(sorted(t.params.items())): t.value
            for t in optuna.load_study(study_name="again", storage=storage).trials}
    assert {tuple(sorted(t.params.items())): t.value for t in trials} == redo


def test_jobs_in_order_give_the_same_study_on_every_run_of_the_same_seed(tmp_path, data_dir):
    """--jobs 2 with TPE and the stage pruner (the defaults): two runs, two studies, the same
    trials, states and values (search.tuning.in_order), though their trials' times differ."""
    storage = default_storage(tmp_path / "res")
    runs = {}
    for name in ("first", "second"):
        out = finish(worker(tmp_path, data_dir, storage, name, 7, "--jobs", "2"))
        assert "trial k drawn from trials 0..k-4" in out
        trials = optuna.load_study(study_name=name, storage=storage).trials
        assert all(t.user_attrs["waited_s"] >= 0 for t in trials)  # its wait, apart from training
        runs[name] = [(t.number, t.state, t.params, t.value) for t in trials]
    assert runs["first"] == runs["second"]
    assert len(runs["first"]) == 7 and all(s in FINISHED for _, s, _, _ in runs["first"])
    assert len({tuple(sorted(p.items())) for _, _, p, _ in runs["first"]}) == 7


def running_trial(storage, name, deadline=300, completed=False, alive=None):
    """Wait until a trial of the study is running and has reported an epoch (with `completed`,
    and another trial has completed); return it. `alive`: a worker that must still be running
    meanwhile. The study is loaded once, then polled every 0.05 s: a poll takes milliseconds, not
    a new engine's start, and tiny trials leave a window of an epoch or two."""
    end, study = time.time() + deadline, None
    while time.time() < end:
        assert alive is None or alive.poll() is None, "the worker ended before the moment came"
        if study is None:
            try:
                study = optuna.load_study(study_name=name, storage=storage)
            except Exception:  # no storage or study yet
                time.sleep(0.3)
                continue
        trials = study.get_trials(deepcopy=False)
        running = [t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values]
        if running and (not completed or any(t.state == TrialState.COMPLETE for t in trials)):
            return running[0]
        time.sleep(0.05)
    pytest.fail("no trial started training")


def test_on_a_journal_a_killed_worker_s_trial_stays_running_and_nothing_runs_twice(tmp_path,
                                                                                  data_dir):
    """The journal storage has no heartbeat (so --heartbeat is refused there): a killed worker's
    trial is left RUNNING, as the README says, and never run a second time."""
    url = f"journal:{tmp_path / 'study.log'}"
    journal = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.log")))
    a = worker(tmp_path, data_dir, url, "j", 3, "--sampler-seed", "0", "--pruner", "none")
    killed = running_trial(journal, "j")
    os.killpg(a.pid, signal.SIGKILL)
    a.communicate()
    finish(worker(tmp_path, data_dir, url, "j", 2, "--pruner", "none"))
    trials = optuna.load_study(study_name="j", storage=journal).trials
    assert next(t for t in trials if t.number == killed.number).state == TrialState.RUNNING
    params = [tuple(sorted(t.params.items())) for t in trials if t.params]
    assert len(params) == len(set(params))  # nothing ran twice
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= 2


def test_a_stopped_worker_under_the_minimum_heartbeat_keeps_its_trial(tmp_path, data_dir, pg_url):
    """A live but stalled worker (SIGSTOP for 3 s) is not taken for dead at the minimum heartbeat
    (5 s: failed only after 10 s of silence), where --heartbeat 1 (2 s grace) took it for dead
    and ran its trial a second time. The check every worker makes at a trial's start is made here
    at a known moment; the trial completes once the worker goes on. Nothing runs twice."""
    name = f"stop-{uuid.uuid4().hex[:8]}"
    a = worker(tmp_path, data_dir, pg_url, name, 4, "--heartbeat", "5", "--sampler-seed", "0",
               "--pruner", "none", "--jobs", "1")  # one running trial
    stalled = running_trial(pg_url, name)
    os.killpg(a.pid, signal.SIGSTOP)
    try:
        time.sleep(3)

        def stale_after(beat):  # the trials a worker at this heartbeat would fail now
            storage = optuna.storages.RDBStorage(pg_url, heartbeat_interval=beat,
                                                 grace_period=2 * beat)
            study_id = storage.get_study_id_from_name(name)
            return storage._get_stale_trial_ids(study_id)  # read-only; fail_stale_trials acts

        assert stale_after(5) == []  # the minimum: 3 s of silence is no death
        assert len(stale_after(1)) == 1  # what --heartbeat 1 would have failed and rerun
        optuna.storages.fail_stale_trials(optuna.load_study(
            study_name=name, storage=optuna.storages.RDBStorage(pg_url, heartbeat_interval=5,
                                                                grace_period=10)))
    finally:
        os.killpg(a.pid, signal.SIGCONT)
    finish(a)
    study = optuna.load_study(study_name=name, storage=pg_url)
    assert next(t for t in study.trials if t.number == stalled.number).state == TrialState.COMPLETE
    assert not [t for t in study.trials if t.state == TrialState.FAIL]


def _read_until(p, text, timeout=120):
    """The worker's output up to the first line holding `text` (the worker keeps running)."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return "".join(seen)
    p.kill()
    raise AssertionError(f"no line with {text!r} in: {''.join(seen)[-3000:]}")


def test_joiners_that_arrive_before_the_creator_records_the_identity_wait_and_check_it(
        tmp_path, data_dir, pg_url):
    """Two workers join bare studies (created, identity not yet written: a creator's window),
    wait, and act on the identity written while they wait: one written by a real search on the
    same data is joined, one naming other data is refused. Nothing runs on the refused one."""
    ref, good, bad = (f"{k}-{uuid.uuid4().hex[:8]}" for k in ("ref", "good", "bad"))
    finish(worker(tmp_path, data_dir, pg_url, ref, 0))  # a real creator's identity
    real = optuna.load_study(study_name=ref, storage=pg_url).user_attrs["identity"]
    foreign = {**real, "data": {"source": "/elsewhere", "fingerprint": "f" * 64}}
    for name in (good, bad):
        optuna.create_study(study_name=name, storage=pg_url, direction="maximize")
    joiners = {name: worker(tmp_path, data_dir, pg_url, name, 1) for name in (good, bad)}
    for name, ident in ((good, real), (bad, foreign)):
        _read_until(joiners[name], "creator to record its identity")
        optuna.load_study(study_name=name, storage=pg_url).set_user_attr("identity", ident)
    out = finish(joiners[good])
    assert len(optuna.load_study(study_name=good, storage=pg_url).trials) == 1, out[-2000:]
    out = output(joiners[bad], timeout=300)
    assert joiners[bad].returncode == 2, out[-2000:]
    assert "/elsewhere" in out and "--data-dir" in out
    assert optuna.load_study(study_name=bad, storage=pg_url).trials == []

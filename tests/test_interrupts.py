"""The interrupt latch: a Ctrl-C ends a run with status 130 and publishes nothing, even when its
KeyboardInterrupt was lost on the way (TensorFlow's C++ code, tracing a function, can drop it or
turn it into pybind11's RuntimeError)."""

import os
import signal
from types import SimpleNamespace

import pytest

from search.cli.main import _dispatch
from search.process import check_interrupt, interrupt_latch, interrupted
from search.tuning.records import new_final_dir, publish_final

ARGS = SimpleNamespace(storage=None)


def ctrl_c_then(after):
    """A command handler that receives a real SIGINT, then does `after(the KeyboardInterrupt)`."""
    def handler(args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # Python runs the handler between bytecodes
                pass
        except KeyboardInterrupt as e:
            return after(e)
        pytest.fail("the signal did not raise KeyboardInterrupt")
    return handler


def test_a_ctrl_c_whose_exception_was_swallowed_still_ends_with_130(capsys):
    with interrupt_latch():
        assert _dispatch(ctrl_c_then(lambda e: 0), ARGS) == 130
        assert interrupted() == signal.SIGINT
    assert capsys.readouterr().err.strip() == "interrupted"


def test_a_ctrl_c_turned_into_another_error_ends_with_130_not_a_traceback(capsys):
    def mangle(e):
        raise RuntimeError("pybind11::error_already_set: MISMATCH ... KeyboardInterrupt")
    with interrupt_latch():
        assert _dispatch(ctrl_c_then(mangle), ARGS) == 130
    err = capsys.readouterr().err
    assert err.strip() == "interrupted" and "unexpected" not in err


def test_without_a_ctrl_c_the_handler_s_status_and_errors_stand(capsys):
    def boom(args):
        raise RuntimeError("a real bug")
    with interrupt_latch():
        assert interrupted() is None
        assert _dispatch(lambda args: 0, ARGS) == 0
        assert _dispatch(lambda args: 3, ARGS) == 3
        assert _dispatch(boom, ARGS) == 1
    assert "unexpected RuntimeError: a real bug" in capsys.readouterr().err


def test_each_latch_starts_fresh_and_gives_back_the_previous_handler():
    before = signal.getsignal(signal.SIGINT)
    with interrupt_latch():
        assert _dispatch(ctrl_c_then(lambda e: 0), ARGS) == 130
    assert signal.getsignal(signal.SIGINT) is before
    with interrupt_latch():
        assert interrupted() is None
        check_interrupt()  # nothing latched: no exception


def test_nothing_is_published_after_a_ctrl_c_even_a_swallowed_one(tmp_path):
    folder = new_final_dir(tmp_path)
    (folder / "test_metrics.json").write_text("{}")
    with interrupt_latch():
        ctrl_c_then(lambda e: 0)(ARGS)  # swallowed, as TensorFlow may
        with pytest.raises(KeyboardInterrupt):
            publish_final(tmp_path, folder)
    assert not (tmp_path / "best").exists() and not (tmp_path / "test_metrics.json").exists()


def test_after_a_ctrl_c_no_worker_starts_another_run(monkeypatch):
    """With --jobs, a thread may be about to start a trial when Ctrl-C comes: the stopped pool
    refuses the run at once, even when the stop lands while the worker's child is starting."""
    from helpers import tiny_config, tiny_data
    from search.runner.events import RunFailed
    from search.runner.pool import RunnerPool
    from search.runner.worker import STOPPED, WorkerRunner, WorkerSpec

    spec = WorkerSpec(tiny_data(20, 10))
    pool = RunnerPool([WorkerRunner(spec), WorkerRunner(spec)])
    pool.stop()
    for _ in range(3):
        with pytest.raises(RunFailed, match=STOPPED):
            pool.run(tiny_config())
    assert [r.started for r in pool.runners] == [0, 0]  # no child was started for them

    runner, real_start = WorkerRunner(spec), WorkerRunner._start

    def start_then_stop(self):  # the Ctrl-C arrives just as the child has started
        real_start(self)
        self.stop()
    monkeypatch.setattr(WorkerRunner, "_start", start_then_stop)
    with pytest.raises(RunFailed, match=STOPPED):
        runner.run(tiny_config())
    assert runner.started == 1 and runner.proc is None


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc")
def test_a_worker_child_is_born_deaf_to_ctrl_c_even_the_first_one():
    """A Ctrl-C sent to the process group while a worker's child starts must not kill the child
    before it has read its arguments (the parent would block for ever writing them). The first
    child of a process also starts multiprocessing's resource tracker, which unblocks SIGINT in
    its thread: run in a fresh process so this child is that first one."""
    from helpers import run_python

    code = ("from helpers import tiny_data\n"
            "from search.runner.worker import WorkerRunner, WorkerSpec\n"
            "r = WorkerRunner(WorkerSpec(tiny_data(20, 10)))\n"
            "r._start()\n"
            "status = open(f'/proc/{r.proc.pid}/status').read()\n"
            "r.close(wait=False)\n"
            "print(int(status.split('SigBlk:')[1].split()[0], 16))\n")
    assert int(run_python(code, timeout=120)[-1]) & (1 << (signal.SIGINT - 1))

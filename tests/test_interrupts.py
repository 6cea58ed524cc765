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

"""The command line behind run_search.py. Thin: parse, build the options, call, print.

    python run_search.py [search] --trials 50        the search (default command)
    python run_search.py train --config FILE         train one config
    python run_search.py finalize|export|report|dashboard|evaluate|predict|bench|compare
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback

from search.cli import bench_cmds, recipe_cmds, study_cmds
from search.errors import SearchFailed, UserError
from search.process import check_interrupt, configure, interrupt_latch, interrupted
from search.secrets import process_secrets, scrub

MODULES = (study_cmds, recipe_cmds, bench_cmds)  # in the order `-h` lists their commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_search.py",
        description="Hyperparameter search for ResNet50 transfer learning on CIFAR-10. "
        "Without a command, runs `search`.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in MODULES:
        module.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    configure(search=True)  # once, before TensorFlow starts (no module does it on import)
    handlers = {name: fn for module in MODULES for name, fn in module.HANDLERS.items()}
    if not argv or (argv[0] not in handlers and argv[0] not in ("-h", "--help")):
        argv = ["search", *argv]
    args = build_parser().parse_args(argv)
    with interrupt_latch():  # a Ctrl-C ends the run with 130, even one TensorFlow swallowed
        return _dispatch(handlers[args.command], args)


def _dispatch(handler, args) -> int:
    """The handler's exit status; 130 after a Ctrl-C, whatever became of its KeyboardInterrupt."""
    try:
        code = handler(args)
        check_interrupt()  # received, but its exception was lost on the way
        return code
    except KeyboardInterrupt:
        pass
    except Exception as e:
        if interrupted() is None:  # else e.g. pybind11's RuntimeError around a KeyboardInterrupt
            return _report(e, args)
    print("interrupted", file=sys.stderr)
    return 130


def _report(e: Exception, args) -> int:
    """One line, not a traceback, for the errors users meet; the last handler writes the scrubbed
    traceback to a file."""
    if isinstance(e, (UserError, SearchFailed)):
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    urls = [u for u in (getattr(args, "storage", None), *process_secrets()) if u]
    where = _write_traceback(scrub(traceback.format_exc(), *urls))
    print(f"error: unexpected {type(e).__name__}: {scrub(str(e), *urls)[:300]}; "
          f"the full traceback (passwords masked) is in {where}", file=sys.stderr)
    return 1


def run() -> None:
    """The installed console command (`run-search`): what `python run_search.py` does."""
    sys.exit(main())


def _write_traceback(text: str) -> str:
    """The traceback in a fresh private file in the system's temporary folder (never under the
    results folder, which the failed command must not have half-written)."""
    fd, path = tempfile.mkstemp(prefix="run_search-error-", suffix=".txt")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path

"""The `--track KIND=TARGET` specs, the trackers they open, and a fan-out over every callback
that keeps a failing tracker from failing a trial."""

from __future__ import annotations

import subprocess
import threading
from importlib import metadata
from pathlib import Path

from search.errors import UserError, require, show
from search.secrets import safe_url, scrub
from search.tracking.base import SearchCallback, SearchInfo  # noqa: F401  (the API's names)

KINDS = ("mlflow", "tensorboard")
PACKAGES = ("tensorflow", "tensorflow-cpu", "keras", "optuna", "optuna-integration", "numpy")


class Callbacks(SearchCallback):
    """Every callback, in order; an error in one is printed once per hook (passwords scrubbed)
    and never fails a trial or the search."""

    def __init__(self, callbacks=(), secrets: tuple[str, ...] = (), log=print):
        self.items = [c if isinstance(c, SearchCallback) else OptunaCallback(c)
                      for c in callbacks]
        self.secrets, self.log, self._warned, self._lock = secrets, log, set(), threading.Lock()

    def add(self, callback: SearchCallback) -> None:
        self.items.append(callback)

    def _each(self, hook: str, *args) -> None:
        for c in self.items:
            try:
                getattr(c, hook)(*args)
            except Exception as e:
                with self._lock:
                    if (id(c), hook) not in self._warned:
                        self._warned.add((id(c), hook))
                        self.log(scrub(f"warning: {type(c).__name__}.{hook} failed ({type(e).__name__}"
                                       f": {e}); the search goes on", *self.secrets)[:500])

    def search_started(self, info):
        self._each("search_started", info)

    def trial_started(self, number, params):
        self._each("trial_started", number, params)

    def epoch_ended(self, number, event):
        self._each("epoch_ended", number, event)

    def trial_finished(self, study, trial):
        self._each("trial_finished", study, trial)

    def search_finalized(self, test, files):
        self._each("search_finalized", test, files)

    def close(self):
        self._each("close")


class OptunaCallback(SearchCallback):
    """A plain function of (study, frozen trial), called as each trial finishes."""

    def __init__(self, fn):
        if not callable(fn):
            raise TypeError(f"a search callback must be a SearchCallback or callable, not {fn!r}")
        self.fn = fn

    def trial_finished(self, study, trial):
        self.fn(study, trial)


def parse_track(specs) -> list[tuple[str, str]]:
    """--track KIND=TARGET items as (kind, target), refused with one sentence when malformed."""
    out = []
    for item in specs or ():
        kind, sep, target = str(item).partition("=")
        kind = kind.strip().lower()
        if not sep or kind not in KINDS or not target.strip():
            raise UserError(f"--track expects mlflow=URI or tensorboard=DIR, got "
                            f"{show(masked_spec(str(item)))}.")
        out.append((kind, target.strip()))
    return out


def masked_spec(item: str) -> str:
    """A --track item as it may be shown: a URL's password masked (or the URL withheld when it
    does not parse); a folder as it is."""
    kind, sep, target = str(item).partition("=")
    return f"{kind}{sep}{safe_url(target) if '://' in target or '@' in target else target}"


def open_trackers(specs, log=print) -> list[SearchCallback]:
    """The trackers --track asks for, each checked (a server reached, a folder made) now,
    before the search writes anything."""
    trackers = []
    for kind, target in parse_track(specs):
        require(kind, f"--track {kind}=...", "track", ", or drop --track")  # packages as named
        if kind == "mlflow":
            from search.tracking.mlflow_tracker import MLflowTracker
            trackers.append(MLflowTracker(target))
        else:
            from search.tracking.tensorboard_tracker import TensorBoardTracker
            trackers.append(TensorBoardTracker(target))
        log(f"tracking: {kind} at {safe_url(target)}")
    return trackers


def run_tags() -> dict:
    """Package versions and the git commit of this package's checkout (when it is one)."""
    tags = {}
    for name in PACKAGES:
        try:
            tags[f"version.{name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    try:
        here = Path(__file__).resolve().parents[2]
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5)
        if commit.returncode == 0:
            tags["git.commit"] = commit.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return tags

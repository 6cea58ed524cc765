"""Where a study lives: storage URLs (SQLite, PostgreSQL/MySQL, journal files), opening them, the
heartbeat that lets another worker take over a dead worker's trial, and loading a study by name."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import optuna

from search.errors import UserError
from search.secrets import safe_url, scrub

DEFAULT_STUDY = "resnet50-cifar10"


def is_server(url: str) -> bool:
    return url.startswith(("postgresql", "mysql"))


def default_heartbeat(url: str, given: int | None) -> int | None:
    """--heartbeat as given (0 = off); by default 60 s on database servers, off on SQLite: with
    SQLite a heartbeat thread can wait on the write lock of an interrupted transaction."""
    if given is not None:
        return given or None
    return 60 if is_server(url) else None


def default_storage(results_dir: str | Path) -> str:
    return f"sqlite:///{(Path(results_dir) / 'optuna.db').resolve()}"


def open_storage(url: str, create: bool = True,
                 heartbeat: int | None = None) -> optuna.storages.BaseStorage:
    """An Optuna storage for the URL; an unreachable one is a UserError naming it.

    `sqlite:///PATH`, `postgresql+psycopg://...` (or any SQLAlchemy URL) give an RDBStorage;
    `journal:PATH` gives a JournalStorage on a file (several processes, even on several machines
    sharing a filesystem, without a database server). With `heartbeat` seconds (RDB only), a
    trial whose process died stops heartbeating, is marked FAIL after twice that time, and is
    queued once more (RetryHeartbeatStaleTrialCallback). With create=False (export, evaluate,
    dashboard, report) a missing SQLite or journal file is an error rather than a new study."""
    if url.startswith("journal:"):
        return _journal(Path(url[len("journal:"):]), create)
    kwargs: dict = {}
    if url.startswith("sqlite:///"):
        db = Path(url[len("sqlite:///"):])
        if not create and not db.is_file():
            raise UserError(f"no study storage at {db}; run a search first, or pass --storage "
                            "and --results-dir as the search had them.")
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create the study storage {url} ({e.strerror}); pass "
                            "--storage or --results-dir with a writable location.") from None
        kwargs = {"connect_args": {"timeout": 60}}  # wait on another process's write lock
    elif is_server(url):  # fail fast on an unreachable server
        kwargs = {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    beat: dict = {}
    if heartbeat:
        beat = {"heartbeat_interval": heartbeat, "grace_period": 2 * heartbeat,
                "heartbeat_stale_trial_callback":
                    optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)}
    for attempt in range(5):
        try:
            return ThreadSafeRDBStorage(url, engine_kwargs=kwargs, **beat)
        except Exception as e:
            # Workers starting together on a fresh database race to create Optuna's tables; the
            # loser sees a duplicate-key error and finds the tables there on the next try.
            if attempt < 4 and ("duplicate key" in str(e) or "already exists" in str(e)):
                time.sleep(0.5 + attempt)
                continue
            raise UserError(f"cannot open the study storage {describe_url(url)} "
                            f"({scrub(_first_line(e), url)}); "
                            "check the --storage URL, that the database server is running and "
                            "reachable, and that its driver is installed.") from None


class ThreadSafeRDBStorage(optuna.storages.RDBStorage):
    """RDBStorage whose trial state changes go one at a time within a process. SQLite has no row
    locks (`FOR UPDATE` is ignored), so two of Optuna's threads (--jobs) could both see a waiting
    trial (an enqueued seed recipe, a heartbeat retry) as WAITING and both start it; under this
    lock the second sees it RUNNING and moves on. (PostgreSQL's row lock does this across
    processes; two processes on one SQLite file remain a race, as with Optuna alone.)"""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._state_lock = threading.Lock()

    def set_trial_state_values(self, trial_id, state, values=None) -> bool:
        with self._state_lock:
            return super().set_trial_state_values(trial_id, state, values)

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_state_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._state_lock = threading.Lock()


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__


def describe_url(url: str) -> str:
    """The URL, password masked, with host and port spelled out for a server."""
    try:
        from sqlalchemy.engine import make_url

        u = make_url(url)
        if u.host:
            default = {"postgresql": 5432, "mysql": 3306}.get(u.get_backend_name())
            return f"{safe_url(url)} (host {u.host}, port {u.port or default})"
    except Exception:
        pass
    return safe_url(url)


def _journal(path: Path, create: bool) -> optuna.storages.BaseStorage:
    from optuna.storages.journal import JournalFileBackend

    if not create and not path.is_file():
        raise UserError(f"no journal storage at {path}; run a search first, or pass the "
                        "--storage the search had.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except OSError as e:
        raise UserError(f"cannot open the journal storage {path} ({e.strerror}); pass "
                        "--storage journal:PATH with a writable location.") from None


def study_names(storage) -> list[str]:
    return sorted(optuna.get_all_study_names(storage=storage))


def load_existing(name: str, storage, url: str) -> optuna.Study:
    """Load a study that must exist; an unknown name lists the studies that do."""
    names = study_names(storage)
    if name not in names:
        listed = ", ".join(names) if names else "none"
        raise UserError(f"no study named '{name}' in {safe_url(url)}; existing studies: {listed}; "
                        "pass --study-name with one of them (and --storage if it lives elsewhere).")
    return optuna.load_study(study_name=name, storage=storage)


def open_study(name: str, url: str) -> optuna.Study:
    """The existing study `name` in the storage at `url` (never creates either)."""
    return load_existing(name, open_storage(url, create=False), url)

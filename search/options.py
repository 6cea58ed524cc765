"""The options of every command that trains, as frozen dataclasses: what the CLI parses flags
into, what the jobs (search.jobs) and benchmarks take, and what a resume command is built from.

    RunOptions      data, backbone, results folder and cache: every command that trains
    SearchOptions   a search's own settings on top of those

Flags that no file can make right are refused here, before anything is read or written.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from search.errors import UserError, show
from search.secrets import safe_url
from search.tuning.storage import DEFAULT_STUDY, default_storage

STORAGE_ENV = "SEARCH_STORAGE"
MIN_HEARTBEAT = 5  # seconds; a dead worker's trial is failed after twice the heartbeat
STUDY_NAME = re.compile(r"[A-Za-z0-9._-]+")
OVERRIDES = ("weights", "train_samples", "val_samples", "image_size", "seed", "split_seed")


@dataclass(frozen=True)
class RunOptions:
    """Where the data, weights and outputs are, and how the frozen part is cached. None: the
    config's own value (the overrides) or the default location."""

    data_dir: str | None = None
    weights: str | None = None
    train_samples: int | None = None
    val_samples: int | None = None
    image_size: int | None = None
    seed: int | None = None
    split_seed: int | None = None
    results_dir: str = "results"
    no_cache: bool = False
    aug_views: int = 4
    cache_dir: str | None = None  # default <results_dir>/cache; "none": memory only
    cache_mem: float = 0.0  # MiB of newly computed entries held in memory (0: mapped from disk)
    cache_dtype: str = "float32"
    xla: bool = False
    sets: tuple[str, ...] = ()  # --set KEY=VALUE: config keys, validated as a config file's

    def __post_init__(self) -> None:
        """Flags that no file can make right are refused before anything is read or written."""
        if self.aug_views < 1 or self.cache_mem < 0:
            raise UserError("--aug-views must be at least 1 and --cache-mem 0 or more.")
        object.__setattr__(self, "sets", tuple(self.sets or ()))
        self.set_values()  # a malformed --set fails here

    @classmethod
    def from_namespace(cls, ns, **extra):
        """The options an argparse namespace carries (flags a command lacks keep their default)."""
        given = {f.name: getattr(ns, f.name) for f in dataclasses.fields(cls) if hasattr(ns, f.name)}
        return cls(**{**given, **extra})

    def set_values(self) -> dict:
        """--set KEY=VALUE pairs, each value read as YAML (a number, a string, a list); the keys
        and values are checked where a config is made of them (TrainConfig.from_dict)."""
        out = {}
        for item in self.sets:
            key, sep, text = item.partition("=")
            if not sep or not key.strip():
                raise UserError(f"--set expects KEY=VALUE (e.g. --set head_epochs=5), got "
                                f"{show(item)}.")
            try:
                out[key.strip()] = yaml.safe_load(text) if text.strip() else ""
            except (yaml.YAMLError, RecursionError, ValueError):
                raise UserError(f"--set {key.strip()}: its value {show(text)} is not a YAML "
                                "number, string or list.") from None
        return out

    def flag_overrides(self) -> dict:
        """Config keys given by their own flags (--weights, --seed ...)."""
        return {k: getattr(self, k) for k in OVERRIDES if getattr(self, k) is not None}

    def overrides(self) -> dict:
        """Config keys given on the command line: the data flags, then --set."""
        return {**self.flag_overrides(), **self.set_values()}

    def make_cache(self):
        """The FeatureCache these options ask for, or None with no_cache."""
        from search.cache.store import FeatureCache

        if self.no_cache:
            return None
        d = self.cache_dir or str(Path(self.results_dir) / "cache")
        return FeatureCache(None if d.lower() == "none" else d, self.cache_mem, self.aug_views,
                            self.cache_dtype, self.xla)


@dataclass(frozen=True)
class SearchOptions(RunOptions):
    trials: int = 50
    timeout: float | None = None
    epoch_budget: int | None = None
    space: str | None = None  # default spaces/default.yaml
    sampler: str = "tpe"
    pruner: str = "stage"
    backend: str = "optuna"
    tuner: str = "hyperband"
    heartbeat: int | None = None
    max_failures: int = 5  # consecutive failed trials that stop the search (0: never)
    sampler_seed: int | None = None  # None: the config's seed; random on a resume or shared storage
    jobs: int = 0  # trials side by side in worker processes; 0: one per GPU, else per core
    any_order: bool = False  # --jobs N without the in-order draw (search.tuning.in_order)
    adopt: bool = False  # bind a study that records no identity to this search's
    no_final: bool = False
    retrain_seeds: int = 1
    confirm_top: int = 3  # top trials re-run on further seeds before the pick (0: the best trial)
    confirm_seeds: int = 2  # further seeds each of them (and the seed recipe) is re-run on
    test_baseline: bool = True  # the seed recipe retrained and tested beside the best
    verbose: bool = False
    no_isolate: bool = False
    worker_trials: int | None = None
    study_name: str = DEFAULT_STUDY
    storage: str | None = None
    track: tuple[str, ...] = ()  # --track mlflow=URI / tensorboard=DIR (search.tracking)
    progress_every: float = 60.0  # seconds between progress lines when not on a terminal

    def keep_top(self) -> int:
        """How many of the best trials keep their model for the final step, which takes it
        instead of training the trial's seed again: the pick's candidates, else the best."""
        return self.confirm_top if self.confirm_top and self.confirm_seeds else 1

    def __post_init__(self) -> None:
        super().__post_init__()
        from search.tracking.callbacks import parse_track

        object.__setattr__(self, "track", tuple(self.track or ()))
        parse_track(self.track)  # a malformed --track fails here
        if self.max_failures < 0:
            raise UserError("--max-failures must be 0 (never stop) or more.")
        if (self.trials < 0 or self.retrain_seeds < 1
                or (self.worker_trials is not None and self.worker_trials < 1)):
            raise UserError("--trials must be 0 or more, and --retrain-seeds and --worker-trials "
                            "at least 1.")
        if self.timeout is not None and not self.timeout > 0:
            raise UserError(f"--timeout must be a number of seconds above 0, not {self.timeout:g}.")
        if self.epoch_budget is not None and self.epoch_budget < 1:
            raise UserError("--epoch-budget must be at least 1 epoch.")
        if self.confirm_top < 0 or self.confirm_seeds < 0:
            raise UserError("--confirm-top and --confirm-seeds must be 0 (off) or more.")
        if self.heartbeat is not None and (self.heartbeat < 0 or 0 < self.heartbeat < MIN_HEARTBEAT):
            raise UserError(f"--heartbeat must be 0 (off) or at least {MIN_HEARTBEAT} seconds: a "
                            "shorter one lets a live but busy trial be failed and run twice.")
        if self.heartbeat and self.storage_url().startswith("journal:"):
            raise UserError("--heartbeat needs a database storage (PostgreSQL, MySQL, SQLite); the "
                            "journal storage has none, so drop --heartbeat there.")
        if not self.progress_every > 0:
            raise UserError("--progress-every must be a number of seconds above 0.")
        if self.jobs < 0:
            raise UserError("--jobs must be 0 (one per GPU, or per core) or more.")
        if self.no_isolate and self.jobs > 1:
            raise UserError("--jobs runs trials side by side in worker processes; drop "
                            "--no-isolate, or pass --jobs 1.")
        name = self.study_name
        if not STUDY_NAME.fullmatch(name) or name in (".", ".."):
            raise UserError(f"study name {name!r} is not a plain name; use letters, digits, '.', "
                            "'_' and '-' only (it names a folder under --results-dir).")

    def command(self) -> list[str]:
        """The command line that runs this search again (resuming it), built from these options,
        not from sys.argv: right whoever called run_search (the CLI, bench, compare, a test). A
        storage password is masked."""
        from search.tracking.callbacks import masked_spec

        argv = [Path(sys.executable).name, "run_search.py", "search"]
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value == f.default:
                continue
            flag = "--" + f.name.replace("_", "-")
            if isinstance(value, bool):  # a flag that defaults to on is turned off with --no-
                argv.append(flag if value else "--no-" + flag[2:])
            elif f.name == "sets":
                for item in value:
                    argv += ["--set", item]
            elif f.name == "track":
                for item in value:
                    argv += ["--track", masked_spec(item)]
            else:
                argv += [flag, safe_url(value) if f.name == "storage" else str(value)]
        return argv

    def jobs_to_run(self) -> int:
        """--jobs, with 0 resolved from the machine (search.runner.pool.default_jobs), or 1 with
        --no-isolate (trials in this process)."""
        if self.no_isolate:
            return 1
        if self.jobs:
            return self.jobs
        from search.runner.pool import default_jobs

        return default_jobs()

    def storage_url(self) -> str:
        """--storage, else $SEARCH_STORAGE (keeps a password off the command line), else SQLite
        in the results folder."""
        return self.storage or os.environ.get(STORAGE_ENV) or default_storage(self.results_dir)

    @property
    def study_dir(self) -> Path:
        return Path(self.results_dir) / self.study_name

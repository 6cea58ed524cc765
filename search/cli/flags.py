"""Flags shared by several commands, with their defaults taken from the job options."""

from __future__ import annotations

import argparse

from search.options import RunOptions, SearchOptions
from search.tuning.storage import DEFAULT_STUDY


def add_data_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data and backbone (override the config)")
    g.add_argument("--data-dir", help="local CIFAR-10: a folder with cifar-10-batches-py/ or "
                   "train/<class>/ + test/<class>/ images (default: Keras' download)")
    g.add_argument("--weights", help="ResNet50 weights: imagenet (Keras' download, cached in "
                   "~/.keras/models), none, or a path to a notop .h5 file")
    g.add_argument("--train-samples", type=int, help="images taken from the training pool, "
                   "validation included (default 10000)")
    g.add_argument("--val-samples", type=int, help="of those, held out for validation (default 2000)")
    g.add_argument("--image-size", type=int, help="input size in pixels; images are resized to it "
                   "(default 32)")
    g.add_argument("--seed", type=int, help="seed for init, augmentation, dropout and shuffling")
    g.add_argument("--split-seed", type=int, help="seed for the train/val split")
    g.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="any config key (repeatable; the value is read as YAML), checked as a "
                   "config file's: e.g. --set head_epochs=5 --set stage_lrs=[1e-4,5e-5]")
    p.add_argument("--results-dir", default=RunOptions.results_dir,
                   help="where outputs go (default: results)")
    g = p.add_argument_group("cache of the frozen part of ResNet50")
    g.add_argument("--no-cache", action="store_true", help="run the full network on live, freshly "
                   "augmented images every epoch (exact recipe, much slower on a CPU)")
    g.add_argument("--aug-views", type=int, default=RunOptions.aug_views,
                   help="augmented views per training image pushed through the frozen part once; "
                   "each epoch draws one (default 4)")
    g.add_argument("--cache-dir", help="on-disk cache shared by runs, resumes and workers "
                   "(default: <results-dir>/cache; 'none' keeps it in memory only)")
    g.add_argument("--cache-mem", type=float, default=RunOptions.cache_mem,
                   help="MiB of newly computed cache held in memory, split between the --jobs "
                        "workers (default 0: written, then memory-mapped from disk like every "
                        "entry read back, one copy in the OS page cache for all workers)")
    g.add_argument("--cache-dtype", choices=("float32", "float16"), default=RunOptions.cache_dtype,
                   help="storage type of cached tensors (default float32)")
    g.add_argument("--xla", action="store_true", help="compile the cached stages' train and test "
                   "steps with XLA; off by default: 1.2-2.2x slower per epoch on a 2-core CPU "
                   "(docs/benchmarks.md), worth measuring on a GPU")


def add_study_flags(p: argparse.ArgumentParser, results: bool = True) -> None:
    p.add_argument("--study-name", default=DEFAULT_STUDY,
                   help=f"Optuna study name (default: {DEFAULT_STUDY}); rerunning resumes it")
    p.add_argument("--storage", help="Optuna storage: sqlite:///path.db, "
                   "postgresql+psycopg://user@host/db, or journal:PATH (a journal file on a "
                   "shared filesystem) (default: $SEARCH_STORAGE, else sqlite in --results-dir); "
                   "keep a password off the command line with $SEARCH_STORAGE or PGPASSWORD")
    if results:
        p.add_argument("--results-dir", default=RunOptions.results_dir,
                       help="output root (default: results)")


def add_retrain_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--confirm-top", type=int, default=SearchOptions.confirm_top, metavar="K",
                   help="before the retrain, re-run the top K trials and the seed recipe on "
                   "further seeds (validation only) and retrain the best mean (default 3; 0: the "
                   "best trial as it is)")
    p.add_argument("--confirm-seeds", type=int, default=SearchOptions.confirm_seeds, metavar="S",
                   help="further seeds for each of those re-runs (default 2)")
    p.add_argument("--retrain-seeds", type=int, default=SearchOptions.retrain_seeds,
                   help="retrain the best config with this many seeds (3 gives mean ± std)")
    p.add_argument("--test-baseline", action=argparse.BooleanOptionalAction,
                   default=SearchOptions.test_baseline,
                   help="also retrain and test the seed recipe (trial 0) on the same seeds, to "
                   "show the gain over it on the test set (default on; it costs one seed-recipe "
                   "training per retrain seed)")


def add_track_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--track", action="append", default=[], metavar="KIND=TARGET",
                   help="also log the search to mlflow=URI (a tracking server or store: the study "
                   "as a parent run, each trial a child run) or tensorboard=DIR (a run per trial "
                   "with its HParams); repeatable")

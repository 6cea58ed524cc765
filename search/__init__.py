"""Hyperparameter search for transfer learning: ResNet50 → CIFAR-10, searched with Optuna.

Layers, each importing only those before it (tests/test_layout.py enforces it):
  errors.py, files.py, secrets.py, process.py   user errors, the atomic writer, masking, set-up
  recipe/   one training run: config, data, schedule, network, train, evaluate, run folder
  cache/    the exact cache of the frozen part, and the StageSource that trains on it
  runner/   one run as typed events, in this process, a worker process, or N side by side
  tuning/   spaces, the Optuna and KerasTuner adapters, storage, study loop, retrain
  report/   the study's report: index.html, figures, trials.csv, artifacts
  tracking/ what a search tells MLflow, TensorBoard and a user's callbacks
  options.py  every command's options, checked before any write
  jobs.py   the end-to-end jobs (search, finalize) as typed functions
  bench/    benchmarks that return their figures as values
  cli/      the command line behind run_search.py
Importing the package changes no process-wide setting (search.process does, at start).

The Python API (imported on first use, so `import search` stays light):

    from search import run_search, SearchOptions, train, TrainConfig
    outcome = run_search(SearchOptions(trials=20, data_dir="cifar10", weights="w.h5"))
    print(outcome.best_value, outcome.test and outcome.test["test_accuracy_mean"])
"""

_API = {"run_search": "search.jobs", "finalize_study": "search.jobs", "SearchOptions": "search.options",
        "RunOptions": "search.options", "SearchOutcome": "search.jobs", "train": "search.recipe.train",
        "TrainConfig": "search.recipe.config", "load_space": "search.tuning.space",
        "configure": "search.process", "SearchCallback": "search.tracking.base"}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'search' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_API[name]), name)

"""Hyperparameter search for transfer learning: ResNet50 → CIFAR-10, searched with Optuna.

Layers, each importing only those before it (tests/test_layout.py enforces it):
  errors.py, files.py   user errors; the one atomic writer
  recipe/   one training run: config, data, model, train, evaluate, run folder
  cache/    the exact cache of the frozen part, and the StageSource that trains on it
  tuning/   spaces, the Optuna and KerasTuner adapters, storage, worker, study loop, retrain
  report/   the study's report: index.html, figures, trials.csv, artifacts
  jobs.py   the end-to-end jobs (search, finalize) as typed functions
  bench/    benchmarks that return their figures as values
  cli/      the command line behind run_search.py
"""

import os

# TensorFlow's C++ start-up chatter hides our own output; users can still override it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

"""Hyperparameter search for transfer learning: ResNet50 → CIFAR-10, searched with Optuna.

Layers, each importing only those before it (tests/test_layout.py enforces it):
  errors.py, files.py, secrets.py, process.py   user errors, the atomic writer, masking, set-up
  recipe/   one training run: config, data, schedule, network, train, evaluate, run folder
  cache/    the exact cache of the frozen part, and the StageSource that trains on it
  runner/   one run as typed events, in this process or a worker process
  tuning/   spaces, the Optuna and KerasTuner adapters, storage, study loop, retrain
  report/   the study's report: index.html, figures, trials.csv, artifacts
  jobs.py   the end-to-end jobs (search, finalize) as typed functions
  bench/    benchmarks that return their figures as values
  cli/      the command line behind run_search.py
Importing the package changes no process-wide setting (search.process does, at start).
"""

"""Hyperparameter search for transfer learning: ResNet50 → CIFAR-10, searched with Optuna.

Layout (build / fit / search kept apart, as in keras-tuner):
  config.py    TrainConfig, the one frozen dataclass that reaches training
  data.py      the three CIFAR-10 sources, the seeded stratified split
  model.py     ResNet50 base + head, which layers are open at each stage
  train.py     train(config, data) -> TrainResult; never imports Optuna
  outputs.py   the run folder: config, command, history, curves, metrics, model
  evaluate.py  test-set metrics and single-image prediction
  space.py     search spaces (spaces/*.yaml), backend-neutral
  objective.py / study.py   the Optuna side
  cli.py       argparse front end behind run_search.py
"""

import os

# TensorFlow's C++ start-up chatter hides our own output; users can still override it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

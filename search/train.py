"""train(config, data) -> TrainResult: the staged fine-tuning recipe as one function.

Stage 0 trains the head with the base frozen; stage k opens the top k*unfreeze_step layers of the
base. Each stage compiles a fresh Adam(W) at its own learning rate, decays it along a cosine over the
stage's epochs, and stops on a val_accuracy plateau (EarlyStopping, best weights restored) while
ReduceLROnPlateau cuts the LR on a val_loss plateau. Epochs carry one global index across stages
(`initial_epoch`), so callbacks passed in (e.g. a pruner) see strictly increasing steps.

The returned model holds the weights of the best validation epoch across all stages.
No Optuna here: the search reaches training only through `callbacks`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from search.config import TrainConfig
from search.data import Data
from search.errors import DivergedError
from search.model import build_model, set_stage

# Each stage recompiles the model by design; TF's retracing warning about that is noise.
tf.get_logger().setLevel("ERROR")


@dataclass
class StageRecord:
    index: int
    depth: int  # layers of the base open
    lr: float  # initial learning rate
    first_epoch: int  # global epoch index of the stage's first epoch
    epochs: int  # epochs run (EarlyStopping may cut the stage short)
    seconds: float
    best_val_accuracy: float
    stopped_early: bool


@dataclass
class TrainResult:
    val_accuracy: float  # best validation accuracy over all epochs: the number a search maximises
    history: pd.DataFrame  # one row per global epoch
    stages: list[StageRecord]
    model: keras.Model | None = field(repr=False, default=None)
    seconds: float = 0.0

    def summary(self) -> dict:
        return {
            "val_accuracy": self.val_accuracy,
            "epochs": int(len(self.history)),
            "seconds": round(self.seconds, 2),
            "stages": [s.__dict__ for s in self.stages],
        }


class StageCosine(keras.callbacks.Callback):
    """Cosine decay over a stage's epochs, applied as a ratio so that ReduceLROnPlateau's cuts
    (which set the optimizer's LR directly) persist: lr_e = lr_{e-1} * c(e) / c(e-1)."""

    def __init__(self, first_epoch: int, epochs: int):
        super().__init__()
        self.first, self.n = first_epoch, epochs

    def _c(self, e: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * e / self.n))  # > 0 for e < n

    def on_epoch_begin(self, epoch, logs=None):
        e = epoch - self.first
        if e > 0:
            opt = self.model.optimizer
            lr = float(keras.ops.convert_to_numpy(opt.learning_rate))
            opt.learning_rate = lr * self._c(e) / self._c(e - 1)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class KeepBest(keras.callbacks.Callback):
    """Remembers the weights of the best val_accuracy epoch across every fit it is passed to."""

    def __init__(self):
        super().__init__()
        self.best, self.weights, self.epoch = -math.inf, None, -1

    def on_epoch_end(self, epoch, logs=None):
        v = (logs or {}).get("val_accuracy")
        if v is not None and np.isfinite(v) and v > self.best:
            self.best, self.epoch, self.weights = float(v), epoch, self.model.get_weights()


def _check_finite(hist: dict, stage: int, first_epoch: int, model: keras.Model) -> None:
    losses = hist.get("loss", [])
    bad = [i for i, v in enumerate(losses) if not np.isfinite(v)]
    if bad or model.stop_training and len(losses) == 0:
        at = first_epoch + (bad[0] if bad else 0)
        raise DivergedError(f"loss became non-finite (NaN/inf) at epoch {at} in stage {stage}")


def train(config: TrainConfig, data: Data, callbacks: list | tuple = (), verbose: int = 0,
          log=print) -> TrainResult:
    """Train one config on one split. `callbacks` are added to every stage's fit."""
    t_start = time.perf_counter()
    keras.backend.clear_session()
    keras.utils.set_random_seed(config.seed)

    n_cls = data.num_classes
    y_train = keras.utils.to_categorical(data.y_train, n_cls)
    y_val = keras.utils.to_categorical(data.y_val, n_cls)
    x_train = data.x_train.astype("float32")
    x_val = data.x_val.astype("float32")
    model = build_model(config, x_train.shape[1:], n_cls)

    lrs = [config.head_lr, *config.stage_lrs]
    epochs = [config.head_epochs] + [config.finetune_epochs] * config.n_stages
    keep = KeepBest()
    stages: list[StageRecord] = []
    rows: list[dict] = []
    epoch = 0
    for k, depth in enumerate(config.stage_depths()):
        set_stage(model, depth)
        if config.weight_decay > 0:
            opt = keras.optimizers.AdamW(lrs[k], weight_decay=config.weight_decay)
        else:
            opt = keras.optimizers.Adam(lrs[k])
        model.compile(
            optimizer=opt,
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
            metrics=["accuracy"],
        )
        stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                             patience=config.early_stop_patience,
                                             restore_best_weights=True)
        plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", mode="min",
                                                    factor=config.reduce_lr_factor,
                                                    patience=config.reduce_lr_patience,
                                                    min_lr=config.min_lr, verbose=0)
        cbs = [keras.callbacks.TerminateOnNaN(), StageCosine(epoch, epochs[k]), plateau, stop,
               keep, *callbacks]
        t0 = time.perf_counter()
        h = model.fit(x_train, y_train, batch_size=config.batch_size, epochs=epoch + epochs[k],
                      initial_epoch=epoch, validation_data=(x_val, y_val), shuffle=True,
                      callbacks=cbs, verbose=verbose)
        secs = time.perf_counter() - t0
        _check_finite(h.history, k, epoch, model)
        n_run = len(h.epoch)
        for i, e in enumerate(h.epoch):
            row = {"epoch": e, "stage": k, "depth": depth}
            row.update({m: float(v[i]) for m, v in h.history.items()})
            rows.append(row)
        val = h.history.get("val_accuracy", [float("nan")])
        rec = StageRecord(k, depth, float(lrs[k]), epoch, n_run, round(secs, 3),
                          float(np.nanmax(val)), bool(stop.stopped_epoch))
        stages.append(rec)
        log(f"  stage {k}: {depth:>3} layers open, lr {lrs[k]:.2e}, {n_run} epochs in "
            f"{secs:.1f}s ({secs / max(n_run, 1):.1f}s/epoch), best val_accuracy "
            f"{rec.best_val_accuracy:.4f}{' (early stop)' if rec.stopped_early else ''}")
        epoch += n_run

    if keep.weights is not None:
        model.set_weights(keep.weights)
    history = pd.DataFrame(rows)
    return TrainResult(keep.best if keep.weights is not None else float("nan"), history, stages,
                       model, time.perf_counter() - t_start)

"""train(config, data) -> TrainResult: the staged fine-tuning recipe as one function.

Stage 0 trains the head with the base frozen; stage k opens the top k*unfreeze_step layers of the
base. Each stage compiles a fresh Adam(W) at its own learning rate, decays it along a cosine over the
stage's epochs, and stops on a val_accuracy plateau (EarlyStopping, best weights restored) while
ReduceLROnPlateau cuts the LR on a val_loss plateau. Epochs carry one global index across stages
(`initial_epoch`), so callbacks passed in (e.g. a pruner) see strictly increasing steps.

The returned model holds the weights of the best validation epoch across all stages.
No Optuna here: the search reaches training only through `callbacks`. What each stage fits on is a
`StageSource`: by default the full network on live-augmented images; search.cache provides one
that trains each stage's open layers on cached boundary tensors. This module knows neither.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from search.errors import DivergedError
from search.recipe.config import TrainConfig
from search.recipe.data import Data
from search.recipe.feed import array_stream, training_stream
from search.recipe.model import BASE, HEAD, build_augment, build_model, set_stage
from search.recipe.session import reset_session

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
    """Remembers `variables` at the best val_accuracy epoch across every fit it is passed to
    (each stage may fit a different model; all share these variables)."""

    def __init__(self, variables: list):
        super().__init__()
        self.variables = variables
        self.best, self.weights, self.epoch = -math.inf, None, -1

    def on_epoch_end(self, epoch, logs=None):
        v = (logs or {}).get("val_accuracy")
        if v is not None and np.isfinite(v) and v > self.best:
            self.best, self.epoch = float(v), epoch
            self.weights = [keras.ops.convert_to_numpy(w) for w in self.variables]

    def restore(self) -> None:
        if self.weights is not None:
            for var, w in zip(self.variables, self.weights):
                var.assign(w)


@dataclass
class Stage:
    """What a stage opening `depth` layers fits: `model` shares its layers with the inference model;
    train_views[v][j] is input j of augmented view v (one view: no choice), val_inputs[j] input j.
    `sync`, when given, copies variables private to the stage model back into the shared layers;
    it runs after every epoch (before anything snapshots the weights) and after the fit.
    `prepare(lr)`, when given, readies an already compiled `model` for the stage (open layers, a
    zeroed optimizer at `lr`) in place of fit_stages' own set_stage and compile."""

    model: keras.Model
    train_views: list[list[np.ndarray]]
    val_inputs: list[np.ndarray]
    sync: Callable[[], None] | None = None
    prepare: Callable[[float], None] | None = None


# A StageSource gets (config, data, inference model, base) once per training run and returns
# depth -> Stage, called once per stage.
StageSource = Callable[[TrainConfig, Data, keras.Model, keras.Model], Callable[[int], Stage]]


def live_stages(config: TrainConfig, data: Data, model: keras.Model, base: keras.Model):
    """The exact recipe: the full network on freshly augmented images every epoch, every stage."""
    aug_in = keras.Input(shape=data.x_train.shape[1:], name="image")
    live = keras.Model(aug_in, model(build_augment(config)(aug_in)), name="live_augment")
    stage = Stage(live, [[data.x_train]], [data.x_val.astype("float32")])
    return lambda depth: stage


class Sync(keras.callbacks.Callback):
    """Runs a stage's `sync` after every epoch, ahead of the callbacks that snapshot weights."""

    def __init__(self, sync: Callable[[], None]):
        super().__init__()
        self.sync = sync

    def on_epoch_end(self, epoch, logs=None):
        self.sync()


def _check_finite(hist: dict, stage: int, first_epoch: int, model: keras.Model) -> None:
    losses = hist.get("loss", [])
    bad = [i for i, v in enumerate(losses) if not np.isfinite(v)]
    if bad or model.stop_training and len(losses) == 0:
        at = first_epoch + (bad[0] if bad else 0)
        raise DivergedError(f"loss became non-finite (NaN/inf) at epoch {at} in stage {stage}")


def make_optimizer(config: TrainConfig, lr: float) -> keras.optimizers.Optimizer:
    """A stage's optimizer: AdamW with the config's decoupled weight decay, plain Adam without."""
    if config.weight_decay > 0:
        return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay)
    return keras.optimizers.Adam(lr)


def fit_stages(config: TrainConfig, owner: keras.Model, base: keras.Model, stage_inputs, y_train,
               y_val, callbacks=(), verbose: int = 0, log=print, depths=None,
               epoch_budget: int | None = None, optimizer=make_optimizer):
    """Run stages 0..k; returns (history rows, stage records, KeepBest). `owner` is the inference
    model, left holding the best epoch's weights.

    stage_inputs(depth) -> Stage: what a stage opening `depth` layers trains, e.g. the
    live-augmenting full model on images, or that stage's own suffix on its own cached boundary
    tensors. Every stage model shares its layers with `owner`.
    epoch_budget: train at most this many epochs in all, cutting the schedule short (a tuner's
    resource, e.g. Hyperband's). optimizer(config, lr) makes each stage's optimizer (a stage with
    `prepare` is compiled already, with make_optimizer's).
    A callback with an `on_stage_end(stage, best_val_accuracy)` method is also told when each
    stage but the last ends, with the best validation accuracy so far (a stage-aware pruner's
    step); it may raise to stop training."""
    lrs = [config.head_lr, *config.stage_lrs]
    planned = [config.head_epochs] + [config.finetune_epochs] * config.n_stages
    epochs = list(planned)  # what runs: the plan, unless the epoch budget cuts it
    depths = config.stage_depths() if depths is None else depths
    # Only the head and the layers some stage opens can change; copying just those keeps a
    # stage-0 epoch on cached features from paying for a copy of all of ResNet50.
    movable = [owner.get_layer(HEAD), *base.layers[len(base.layers) - max(depths):]]
    keep = KeepBest([w for layer in movable for w in layer.weights])
    stages: list[StageRecord] = []
    rows: list[dict] = []
    epoch = 0
    for k, depth in enumerate(depths):
        if epoch_budget is not None:
            epochs[k] = min(epochs[k], epoch_budget - epoch)
            if epochs[k] <= 0:
                break
        t0 = time.perf_counter()
        stage = stage_inputs(depth)
        model, val = stage.model, array_stream(stage.val_inputs, y_val, 256)
        if stage.prepare is not None:
            if optimizer is not make_optimizer:
                raise ValueError("a prepared stage brings its own optimizer (make_optimizer's)")
            stage.prepare(lrs[k])
        else:
            set_stage(model, base, depth)
            model.compile(
                optimizer=optimizer(config, lrs[k]),
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
        cbs = [*([Sync(stage.sync)] if stage.sync else []), keras.callbacks.TerminateOnNaN(),
               StageCosine(epoch, planned[k]), plateau, stop, keep, *callbacks]
        stream = training_stream(stage.train_views, y_train, config.batch_size, config.seed,
                                 epoch, epochs[k])
        h = model.fit(stream, steps_per_epoch=math.ceil(len(y_train) / config.batch_size),
                      epochs=epoch + epochs[k], initial_epoch=epoch, validation_data=val,
                      shuffle=False, callbacks=cbs, verbose=verbose)
        if stage.sync:
            stage.sync()  # EarlyStopping may have restored an earlier epoch's private variables
        secs = time.perf_counter() - t0
        _check_finite(h.history, k, epoch, model)
        n_run = len(h.epoch)
        for i, e in enumerate(h.epoch):
            row = {"epoch": e, "stage": k, "depth": depth}
            row.update({m: float(v[i]) for m, v in h.history.items()})
            rows.append(row)
        val_acc = h.history.get("val_accuracy", [float("nan")])
        rec = StageRecord(k, depth, float(lrs[k]), epoch, n_run, round(secs, 3),
                          float(np.nanmax(val_acc)), bool(stop.stopped_epoch))
        stages.append(rec)
        log(f"  stage {k}: {depth:>3} layers open, lr {lrs[k]:.2e}, {n_run} epochs in "
            f"{secs:.1f}s ({secs / max(n_run, 1):.1f}s/epoch), best val_accuracy "
            f"{rec.best_val_accuracy:.4f}{' (early stop)' if rec.stopped_early else ''}")
        epoch += n_run
        if k < len(depths) - 1:  # a point every trial of this depth plan passes, whatever stopped it
            for cb in callbacks:
                if hasattr(cb, "on_stage_end"):
                    cb.on_stage_end(k, keep.best)
    keep.restore()
    return rows, stages, keep


def train(config: TrainConfig, data: Data, callbacks: list | tuple = (), verbose: int = 0,
          log=print, stages: StageSource | None = None,
          epoch_budget: int | None = None) -> TrainResult:
    """Train one config on one split. `callbacks` are added to every stage's fit; `stages` says
    what each stage fits on (default live_stages: the full network on live, freshly augmented
    images every epoch; search.cache.cached_stages: each stage's open layers on cached tensors)."""
    t_start = time.perf_counter()
    reset_session(config.seed)  # every trial's one reset; keeps compiled stage programs warm

    n_cls = data.num_classes
    y_train = keras.utils.to_categorical(data.y_train, n_cls)
    y_val = keras.utils.to_categorical(data.y_val, n_cls)
    model = build_model(config, data.x_train.shape[1:], n_cls)  # the inference model we return
    base = model.get_layer(BASE)
    stage_inputs = (stages or live_stages)(config, data, model, base)
    rows, stages_run, keep = fit_stages(config, model, base, stage_inputs, y_train, y_val,
                                        callbacks, verbose, log, epoch_budget=epoch_budget)
    history = pd.DataFrame(rows)
    return TrainResult(keep.best if keep.weights is not None else float("nan"), history,
                       stages_run, model, time.perf_counter() - t_start)

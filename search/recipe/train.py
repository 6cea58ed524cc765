"""train(config, data) -> TrainResult: the staged fine-tuning recipe, run from its plan.

The schedule is search.recipe.schedule's `plan(config, budget)`; this module runs it on a
`Network` (search.recipe.network), re-initialised in place for the run. Each stage fits a model
that a `StageSource` provides (compiled once per network and stage depth), starts it as a fresh
Adam(W) at the stage's learning rate, decays that along a cosine over the stage's planned epochs,
and stops on a val_accuracy plateau (EarlyStopping, best weights restored) while
ReduceLROnPlateau cuts the LR on a val_loss plateau. Epochs carry one global index across stages
(`initial_epoch`), so callbacks passed in (a pruner's reporter) see strictly increasing steps.

Label smoothing is a transform of the targets (search.recipe.schedule knows nothing of it; the
loss is Keras' stock crossentropy). The returned model holds the weights of the best validation
epoch across all stages. No search backend here: the search reaches training only through
`callbacks`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import keras
import numpy as np
import pandas as pd

from search.errors import DivergedError
from search.recipe.config import TrainConfig
from search.recipe.data import Data
from search.recipe.feed import array_stream, training_stream
from search.recipe.model import build_augment, set_stage
from search.recipe.network import Network, Networks
from search.recipe.schedule import StagePlan, cosine_step, plan


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
    model: keras.Model | None = field(repr=False, default=None)  # valid until the network's next run
    seconds: float = 0.0

    def summary(self) -> dict:
        return {
            "val_accuracy": self.val_accuracy,
            "epochs": int(len(self.history)),
            "seconds": round(self.seconds, 2),
            "stages": [s.__dict__ for s in self.stages],
        }


# ----------------------------------------------------------------------------- what stages fit

@dataclass
class StageFit:
    """What one stage fits: `model`, compiled (`compile_program`) and sharing its layers with the
    network; train_views[v][j] is input j of augmented view v (one view: no choice), val_inputs[j]
    input j. `sync`, when given, copies variables private to `model` into the network's layers:
    the trainer calls it after every epoch (before anything reads the weights) and after the fit
    (EarlyStopping may restore an earlier epoch)."""

    model: keras.Model
    train_views: list[list[np.ndarray]]
    val_inputs: list[np.ndarray]
    sync: Callable[[], None] | None = None


class StageSource(Protocol):
    """Where stages get their inputs and models: `begin` is called once per run, on the network
    already reset for it, and returns depth -> StageFit, called at each stage's start.
    `LiveStages` (here): the full network on freshly augmented images. search.cache's
    `CachedStages`: each stage's open layers and the head on cached boundary tensors."""

    def begin(self, network: Network, config: TrainConfig,
              data: Data) -> Callable[[int], StageFit]: ...


def make_optimizer(config: TrainConfig, lr: float) -> keras.optimizers.Optimizer:
    """A stage's optimizer: AdamW with the config's decoupled weight decay, plain Adam without."""
    if config.weight_decay > 0:
        return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay)
    return keras.optimizers.Adam(lr)


def compile_program(model: keras.Model, network: Network, depth: int, config: TrainConfig,
                    xla: bool = False) -> keras.Model:
    """Compile a stage model once, with the layers `depth` opens trainable and its own Adam(W)
    built eagerly (one trace, not two); `start_stage` readies it for each later stage."""
    set_stage(model, network.base, depth)
    optimizer = make_optimizer(config, config.head_lr)
    model.compile(optimizer=optimizer, loss=keras.losses.CategoricalCrossentropy(),
                  metrics=["accuracy"], jit_compile=xla)
    optimizer.build(model.trainable_variables)
    return model


def start_stage(model: keras.Model, network: Network, depth: int, lr: float) -> None:
    """The stage's layers opened, and its optimizer as a new one starts: moments and step zeroed,
    the learning rate at `lr` (Keras keeps it in a variable, so nothing is traced again)."""
    set_stage(model, network.base, depth)
    for v in model.optimizer.variables:
        v.assign(np.zeros(v.shape, keras.backend.standardize_dtype(v.dtype)))
    model.optimizer.learning_rate = lr


class LiveStages:
    """The exact recipe: the full network on freshly augmented images every epoch, every stage.
    One model per (network, augmentation, weight decay, depth), compiled once; its augmentation
    layers are re-seeded from config.seed at every run."""

    def __init__(self, xla: bool = False):
        self.xla = xla

    def begin(self, network: Network, config: TrainConfig, data: Data):
        aug_key = ("augment", config.aug_flip, config.aug_translate, config.aug_rotate,
                   config.aug_zoom)
        augment = network.program(aug_key, lambda: build_augment(config))
        for i, layer in enumerate(augment.layers):  # as build_augment seeds them: seed + i
            for gen in (v for v in vars(layer).values()
                        if isinstance(v, keras.random.SeedGenerator)):
                dtype = keras.backend.standardize_dtype(gen.state.dtype)
                gen.state.assign(np.array([config.seed + i, 0], dtype=dtype))
        val = [data.x_val.astype("float32")]

        def stage(depth: int) -> StageFit:
            def build():
                image = keras.Input(shape=data.x_train.shape[1:], name="image")
                live = keras.Model(image, network.model(augment(image)), name="live_augment")
                return compile_program(live, network, depth, config, self.xla)
            model = network.program(("live", aug_key, config.weight_decay, self.xla, depth), build)
            return StageFit(model, [[data.x_train]], val)
        return stage


# ----------------------------------------------------------------------------- the run

class StageCosine(keras.callbacks.Callback):
    """Cosine decay over a stage's planned epochs, applied as a ratio so that ReduceLROnPlateau's
    cuts (which set the optimizer's LR directly) persist (schedule.cosine_step)."""

    def __init__(self, first_epoch: int, epochs: int):
        super().__init__()
        self.first, self.n = first_epoch, epochs

    def on_epoch_begin(self, epoch, logs=None):
        e = epoch - self.first
        if e > 0:
            opt = self.model.optimizer
            lr = float(keras.ops.convert_to_numpy(opt.learning_rate))
            opt.learning_rate = lr * cosine_step(e, self.n)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class KeepBest(keras.callbacks.Callback):
    """Remembers `variables` at the best val_accuracy epoch across every fit it is passed to
    (each stage fits its own model; all share these variables)."""

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


class Sync(keras.callbacks.Callback):
    """Runs a stage's `sync` after every epoch, ahead of the callbacks that read weights."""

    def __init__(self, sync: Callable[[], None]):
        super().__init__()
        self.sync = sync

    def on_epoch_end(self, epoch, logs=None):
        self.sync()


def smoothed(y: np.ndarray, num_classes: int, smoothing: float) -> np.ndarray:
    """One-hot targets with label smoothing applied: y * (1 - s) + s / classes (float32), what
    CategoricalCrossentropy(label_smoothing=s) does to its targets; their argmax is the label."""
    onehot = keras.utils.to_categorical(y, num_classes).astype("float32")
    return (onehot * np.float32(1.0 - smoothing) + np.float32(smoothing / num_classes)).astype("float32")


def _check_finite(hist: dict, stage: int, first_epoch: int, model: keras.Model) -> None:
    losses = hist.get("loss", [])
    bad = [i for i, v in enumerate(losses) if not np.isfinite(v)]
    if bad or model.stop_training and len(losses) == 0:
        at = first_epoch + (bad[0] if bad else 0)
        raise DivergedError(f"loss became non-finite (NaN/inf) at epoch {at} in stage {stage}")


def stage_callbacks(p: StagePlan, first_epoch: int) -> tuple[list, keras.callbacks.EarlyStopping]:
    """The callbacks a stage's plan sets: NaN guard, cosine, plateau cut, early stop."""
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                         patience=p.early_stop_patience, restore_best_weights=True)
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", mode="min",
                                                factor=p.reduce_lr_factor,
                                                patience=p.reduce_lr_patience, min_lr=p.min_lr,
                                                verbose=0)
    return [keras.callbacks.TerminateOnNaN(), StageCosine(first_epoch, p.cosine_epochs), plateau,
            stop], stop


def fit_plan(network: Network, stages: list[StagePlan], stage_fit: Callable[[int], StageFit],
             y_train: np.ndarray, y_val: np.ndarray, batch_size: int, seed: int,
             callbacks=(), verbose: int = 0, log=print) -> tuple[list, list, KeepBest]:
    """Run a plan on `network`; returns (history rows, stage records, KeepBest), the network
    left holding the best epoch's weights. y_train/y_val: the (smoothed) targets.

    A callback with an `on_stage_begin(stage, depth)` method is told when each stage begins; one
    with an `on_stage_end(stage, best_val_accuracy)` method when each stage that reports its end
    ends, with the best validation accuracy so far (a stage-aware pruner's step); it may raise to
    stop training."""
    keep = KeepBest(network.movable(max(s.depth for s in stages)))
    records: list[StageRecord] = []
    rows: list[dict] = []
    epoch = 0
    for p in stages:
        t0 = time.perf_counter()
        fit = stage_fit(p.depth)
        start_stage(fit.model, network, p.depth, p.lr)
        own, stop = stage_callbacks(p, epoch)
        cbs = [*([Sync(fit.sync)] if fit.sync else []), *own, keep, *callbacks]
        for cb in callbacks:
            if hasattr(cb, "on_stage_begin"):
                cb.on_stage_begin(p.index, p.depth)
        stream = training_stream(fit.train_views, y_train, batch_size, seed, epoch, p.epochs)
        h = fit.model.fit(stream, steps_per_epoch=math.ceil(len(y_train) / batch_size),
                          epochs=epoch + p.epochs, initial_epoch=epoch,
                          validation_data=array_stream(fit.val_inputs, y_val, 256),
                          shuffle=False, callbacks=cbs, verbose=verbose)
        if fit.sync:
            fit.sync()  # EarlyStopping may have restored an earlier epoch's private variables
        secs = time.perf_counter() - t0
        _check_finite(h.history, p.index, epoch, fit.model)
        for i, e in enumerate(h.epoch):
            rows.append({"epoch": e, "stage": p.index, "depth": p.depth,
                         **{m: float(v[i]) for m, v in h.history.items()}})
        val_acc = h.history.get("val_accuracy", [float("nan")])
        rec = StageRecord(p.index, p.depth, p.lr, epoch, len(h.epoch), round(secs, 3),
                          float(np.nanmax(val_acc)), bool(stop.stopped_epoch))
        records.append(rec)
        log(f"  stage {p.index}: {p.depth:>3} layers open, lr {p.lr:.2e}, {rec.epochs} epochs in "
            f"{secs:.1f}s ({secs / max(rec.epochs, 1):.1f}s/epoch), best val_accuracy "
            f"{rec.best_val_accuracy:.4f}{' (early stop)' if rec.stopped_early else ''}")
        epoch += rec.epochs
        if p.report_end:  # a point every trial of this depth plan passes, whatever stopped it
            for cb in callbacks:
                if hasattr(cb, "on_stage_end"):
                    cb.on_stage_end(p.index, keep.best)
    keep.restore()
    return rows, records, keep


def train(config: TrainConfig, data: Data, callbacks: list | tuple = (), verbose: int = 0,
          log=print, stages: StageSource | None = None, epoch_budget: int | None = None,
          networks: Networks | None = None) -> TrainResult:
    """Train one config on one split. `callbacks` are added to every stage's fit; `stages` says
    what each stage fits on (default LiveStages: the full network on live, freshly augmented
    images every epoch; search.cache.CachedStages: each stage's open layers on cached tensors);
    `networks` the process's networks to reuse (default: a fresh one for this run)."""
    t_start = time.perf_counter()
    networks = networks or Networks()
    network = networks.get(config, data.x_train.shape[1:], data.num_classes)
    network.reset(config, networks.bank)
    schedule = plan(config, epoch_budget)
    stage_fit = (stages or LiveStages()).begin(network, config, data)
    n, s = data.num_classes, config.label_smoothing
    rows, records, keep = fit_plan(network, schedule, stage_fit, smoothed(data.y_train, n, s),
                                   smoothed(data.y_val, n, s), config.batch_size, config.seed,
                                   callbacks, verbose, log)
    return TrainResult(keep.best if keep.weights is not None else float("nan"),
                       pd.DataFrame(rows), records, network.classifier(config),
                       time.perf_counter() - t_start)

"""The staged schedule as pure functions: what each stage opens, at what learning rate, for how many
epochs, and the settings of the callbacks that watch it (as big_transfer's bit_hyperrule does).

    plan(config, budget)   -> [StagePlan]   stage 0 trains the head; stage k opens k*step layers
    cosine(e, n)                            the cosine factor of epoch e of an n-epoch stage
    cosine_step(e, n)                       the factor that takes epoch e-1's LR to epoch e's

The trainer (search.recipe.train) runs a plan; nothing here touches Keras or TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from search.recipe.config import TrainConfig


@dataclass(frozen=True)
class StagePlan:
    index: int  # 0 = the head alone
    depth: int  # layers of the base open
    lr: float  # initial learning rate of the stage's fresh Adam(W)
    epochs: int  # epochs to run (the epoch budget may cut the last stages)
    cosine_epochs: int  # the length of the stage's cosine, as planned before any budget cut
    early_stop_patience: int  # epochs without a val_accuracy gain before the stage stops
    reduce_lr_factor: float  # ReduceLROnPlateau on val_loss
    reduce_lr_patience: int
    min_lr: float
    report_end: bool  # a stage end every trial of this depth plan passes (not the last stage)


def plan(config: TrainConfig, budget: int | None = None) -> list[StagePlan]:
    """The stages `config` runs. With `budget`, at most that many epochs in all, taken from the
    first stages on (a tuner's resource, e.g. Hyperband's): a stage left with no epoch is dropped,
    the one it cuts keeps its planned cosine length. Every stage but the planned last reports its
    end, whatever the budget (a stage pruner's step)."""
    if budget is not None and budget < 1:
        raise ValueError(f"an epoch budget must be at least 1, not {budget}")
    lrs = (config.head_lr, *config.stage_lrs)
    planned = [config.head_epochs] + [config.finetune_epochs] * config.n_stages
    stages, used = [], 0
    for k, (depth, lr, n) in enumerate(zip(config.stage_depths(), lrs, planned)):
        run = n if budget is None else min(n, budget - used)
        if run <= 0:
            break
        stages.append(StagePlan(
            index=k, depth=depth, lr=float(lr), epochs=run, cosine_epochs=n,
            early_stop_patience=config.early_stop_patience,
            reduce_lr_factor=config.reduce_lr_factor,
            reduce_lr_patience=config.reduce_lr_patience, min_lr=config.min_lr,
            report_end=k < len(planned) - 1))
        used += run
    return stages


def cosine(e: int, n: int) -> float:
    """The cosine factor of epoch e (0-based) of an n-epoch stage: 1 at e = 0, above 0 for e < n."""
    return 0.5 * (1.0 + math.cos(math.pi * e / n))


def cosine_step(e: int, n: int) -> float:
    """The factor that takes epoch e-1's learning rate to epoch e's (e >= 1). Applied as a ratio,
    so that a ReduceLROnPlateau cut in between persists."""
    return cosine(e, n) / cosine(e - 1, n)


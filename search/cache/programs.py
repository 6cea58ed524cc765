"""Stage programs that outlive a trial: each stage's compiled train and test steps, traced once per
worker process and reused by every later trial and stage of the same structure.

Keras traces a model's train and test steps on its first fit after compile(), and a stage that
builds and compiles its own model pays that every time (about 1-3 s a stage on 2 cores, most of a
short pruned trial). Here a process keeps, per structure, one training network: a ResNet50 base
(its top layers are what stages open), a head per (width, layers, classes), and per stage depth a
compiled model from that depth's boundary tensors through the open layers and the head, with its
own Adam(W). What differs between trials is held in variables, not in the trace:
  - the weights: the trial's own (freshly built) model is copied in when the trial starts, and the
    trained weights are copied back to it after every epoch and at the end of every stage (the
    trial's model is the one callbacks snapshot and train() returns);
  - the learning rate (Keras keeps it in a variable) and the optimizer's moments, zeroed per stage,
    as a freshly made optimizer starts;
  - the dropout rate (RateDropout) and its seed state, copied from the trial's own dropout layers;
  - the label smoothing (SmoothedCrossentropy).
Each of these reproduces Keras' arithmetic exactly, so a trial gives the same values with programs
reused as with a fresh model per stage (tests/test_programs.py). Weight decay is part of the key.
"""

from __future__ import annotations

from collections import Counter, OrderedDict

import keras
import numpy as np
import tensorflow as tf

from search.cache import matmul
from search.cache.surgery import build_cached_model
from search.recipe.config import TrainConfig
from search.recipe.model import HEAD, build_base, build_head, set_stage
from search.recipe.train import make_optimizer

MAX_HEADS = 8  # head structures kept per process, least recently used dropped first

TRACES: Counter = Counter()  # (kind, head key, depth) -> traces of that program's train/test step


class RateDropout(keras.layers.Layer):
    """keras.layers.Dropout with its rate in a variable, so that one trace serves every rate.

    Same arithmetic as Keras' Dropout on TensorFlow (tf.nn.experimental.stateless_dropout with a
    number rate): keep where a stateless uniform draw is >= rate, scale kept values by 1/(1-rate)
    computed in double precision, seeded by a SeedGenerator advanced once per call."""

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.rate = self.add_weight(shape=(), initializer="zeros", trainable=False, name="rate")
        self.scale = self.add_weight(shape=(), initializer="ones", trainable=False, name="scale")
        self.set_rate(rate)

    def set_rate(self, rate: float) -> None:
        self.rate.assign(np.float32(rate))
        self.scale.assign(np.float32(1.0 / (1.0 - rate)))

    def call(self, x, training=False):
        if not training:
            return x
        seed = tf.cast(tf.math.floormod(self.seed_generator.next(), tf.int32.max - 1), "int32")
        draw = tf.random.stateless_uniform(tf.shape(x), seed=seed, dtype=x.dtype, alg=None)
        return tf.where(draw >= self.rate, x * self.scale, tf.zeros((), x.dtype))

    def compute_output_shape(self, input_shape):
        return input_shape


class SmoothedCrossentropy(keras.losses.Loss):
    """keras.losses.CategoricalCrossentropy (one-hot labels, probabilities) with its label
    smoothing in variables: y * (1 - s) + s / classes, the constants rounded to float32 as Keras
    rounds them; the same reduction (the mean over the batch)."""

    def __init__(self):
        super().__init__(name="categorical_crossentropy", reduction="sum_over_batch_size")
        self.keep = keras.Variable(1.0, trainable=False, name="smoothing_keep")
        self.spread = keras.Variable(0.0, trainable=False, name="smoothing_spread")

    def set(self, smoothing: float, classes: int) -> None:
        self.keep.assign(np.float32(1.0 - smoothing))
        self.spread.assign(np.float32(smoothing) / np.float32(classes))

    def call(self, y_true, y_pred):
        y_pred = keras.ops.convert_to_tensor(y_pred)
        y_true = keras.ops.cast(y_true, y_pred.dtype) * self.keep + self.spread
        return keras.ops.categorical_crossentropy(y_true, y_pred, from_logits=False, axis=-1)


def _copy(src_layers, dst_layers) -> None:
    for a, b in zip(src_layers, dst_layers, strict=True):
        for u, v in zip(a.weights, b.weights, strict=True):
            v.assign(u.value)


def _top(base: keras.Model, depth: int) -> list:
    """The top `depth` layers of `base` (none for 0)."""
    return base.layers[len(base.layers) - depth:]


def _counting(step, key):
    """`step` (a model's train_step or test_step) that counts its traces: Keras calls it only while
    tracing the compiled function."""
    def counted(data):
        TRACES[key] += 1
        return step(data)
    return counted


class HeadPrograms:
    """A training network for one head structure: its base and head, and a compiled program per
    stage depth, all sharing the base's and head's variables."""

    def __init__(self, config: TrainConfig, base: keras.Model, num_classes: int, key: tuple,
                 xla: bool = False):
        self.key, self.base, self.classes, self.xla = key, base, num_classes, xla
        self.head = build_head(config, base.output.shape[1:], num_classes, dropout=RateDropout)
        self.loss = SmoothedCrossentropy()
        self.models: dict[int, keras.Model] = {}

    def model(self, config: TrainConfig, depth: int) -> keras.Model:
        if depth not in self.models:
            model, _ = build_cached_model(config, self.base, self.head, depth)
            set_stage(model, self.base, depth)
            optimizer = make_optimizer(config, config.head_lr)
            model.compile(optimizer=optimizer, loss=self.loss, metrics=["accuracy"],
                          jit_compile=self.xla)
            optimizer.build(model.trainable_variables)  # eagerly: no second trace to create slots
            model.train_step = _counting(model.train_step, ("train", self.key, depth))
            model.test_step = _counting(model.test_step, ("test", self.key, depth))
            self.models[depth] = model
        return self.models[depth]

    def begin(self, owner: keras.Model, config: TrainConfig) -> None:
        """Start a trial: its dropout rate and its dropout layers' seed states (which then advance
        here across its stages, as its own would), and its label smoothing."""
        theirs = owner.get_layer(HEAD)
        for mine in self.head.layers:
            if isinstance(mine, RateDropout):
                mine.set_rate(config.dropout)
                other = getattr(theirs.get_layer(mine.name), "seed_generator", None)
                if other is not None:
                    mine.seed_generator.state.assign(other.state.value)
        self.loss.set(config.label_smoothing, self.classes)

    def prepare(self, model: keras.Model, depth: int, lr: float, owner: keras.Model,
                owner_base: keras.Model) -> None:
        """Start a stage: the trial's weights (its head and top `depth` base layers, as the last
        stage left them), its layers opened, the optimizer zeroed as a new one starts, at `lr`."""
        _copy(_top(owner_base, depth), _top(self.base, depth))
        _copy(*self._head_pairs(owner))
        set_stage(model, self.base, depth)
        for v in model.optimizer.variables:
            v.assign(np.zeros(v.shape, v.dtype))
        model.optimizer.learning_rate = lr
        matmul.load(model)

    def _head_pairs(self, owner: keras.Model) -> tuple[list, list]:
        """(the trial's head layers with weights, the matching layers here)."""
        theirs = owner.get_layer(HEAD)
        mine = [la for la in self.head.layers if la.weights and not isinstance(la, RateDropout)]
        return [theirs.get_layer(la.name) for la in mine], mine

    def store(self, model: keras.Model, owner: keras.Model, owner_base: keras.Model,
              depth: int) -> None:
        """Copy what a stage trains back to the trial's own model (centre taps first)."""
        matmul.write_back(model)
        _copy(_top(self.base, depth), _top(owner_base, depth))
        theirs, mine = self._head_pairs(owner)
        _copy(mine, theirs)


_BASES: dict[int, keras.Model] = {}
_HEADS: OrderedDict[tuple, HeadPrograms] = OrderedDict()


def head_programs(config: TrainConfig, num_classes: int, xla: bool = False) -> HeadPrograms:
    """This process's programs for the config's structure, made on first use (compiled with XLA
    when `xla`). The base is built without weights: every trial copies its own in."""
    size = config.image_size
    if size not in _BASES:
        _BASES[size] = build_base(config.replace(weights="none"))
    key = (size, config.head_width, config.head_layers, num_classes, config.weight_decay, xla)
    if key not in _HEADS:
        _HEADS[key] = HeadPrograms(config, _BASES[size], num_classes, key, xla)
        while len(_HEADS) > MAX_HEADS:
            _HEADS.popitem(last=False)
    _HEADS.move_to_end(key)
    return _HEADS[key]


def clear() -> None:
    """Drop every program of this process (tests; memory)."""
    _BASES.clear()
    _HEADS.clear()
    TRACES.clear()

"""One network per structure, re-initialised in place for every training run.

A `Network` is a ResNet50 base, a head and the input stage (resize, preprocessing), built once
per structure (image size, input shape, head width and depth, classes) and reused by every run of
that structure: `reset(config)` gives it the run's initial weights in place (the base's from the
config's weights, the head's from initialisers seeded by config.seed), its dropout rate and its
dropout seeds. A run's initial weights therefore depend on its config alone, whichever runs came
before. What stages fit (a compiled model per stage depth) is kept on the network too
(`program`), so it is traced once per process and structure.

The training head holds `RateDropout`, whose rate is a variable, so one traced program serves
every trial's rate; `classifier(config)` is the same network as a plain-Keras model (stock
Dropout at the config's rate, every other layer shared): the model a run returns and saves.

`Networks` is what a process keeps: its networks by structure and a `WeightsBank` (each weights
file read once). Nothing here is process-global: a runner owns one `Networks`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from search.recipe.config import TrainConfig
from search.recipe.model import BASE, HEAD, input_layers, weights_arg

MAX_NETWORKS = 4  # structures a process keeps, least recently used dropped first


class RateDropout(keras.layers.Layer):
    """Dropout with its rate in a variable: kept where a uniform draw is at least the rate, scaled
    by 1/(1 - rate), as keras.layers.Dropout does, drawn with keras.random and a SeedGenerator of
    its own (`reset` sets the rate and restarts the draws)."""

    def __init__(self, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.rate = self.add_weight(shape=(), initializer="zeros", trainable=False, name="rate")
        self.seed_generator = keras.random.SeedGenerator(seed)

    def reset(self, rate: float, seed: int) -> None:
        self.rate.assign(rate)
        state = self.seed_generator.state
        state.assign(np.array([seed, 0], dtype=keras.backend.standardize_dtype(state.dtype)))

    def call(self, x, training=False):
        if not training:
            return x
        draw = keras.random.uniform(keras.ops.shape(x), dtype=x.dtype, seed=self.seed_generator)
        return keras.ops.where(draw >= self.rate, x / (1.0 - self.rate), keras.ops.zeros_like(x))

    def compute_output_shape(self, input_shape):
        return input_shape


def derived_seed(seed: int, *path: int) -> int:
    """A 31-bit seed for one variable or layer, from the run's seed and the item's position."""
    return int(np.random.SeedSequence([seed, *path]).generate_state(1)[0] & 0x7FFFFFFF)


_INITIALISED = (("kernel", "kernel_initializer"), ("bias", "bias_initializer"),
                ("gamma", "gamma_initializer"), ("beta", "beta_initializer"),
                ("moving_mean", "moving_mean_initializer"),
                ("moving_variance", "moving_variance_initializer"))


def seeded_values(layers: list, seed: int) -> list[tuple]:
    """(variable, initial value) for every variable of `layers`, each drawn by its layer's own
    initialiser with an explicit seed derived from `seed` and its position: the same values for
    the same seed in any process, whatever ran before."""
    out = []
    for i, layer in enumerate(layers):
        for j, (attr, init_attr) in enumerate(_INITIALISED):
            var = getattr(layer, attr, None)
            if var is None or not isinstance(var, keras.Variable):
                continue
            init = getattr(layer, init_attr)
            config = init.get_config()
            if "seed" in config:
                init = type(init).from_config({**config, "seed": derived_seed(seed, i, j)})
            out.append((var, init(var.shape, dtype=var.dtype)))
    return out


class WeightsBank:
    """The base's weights per source, read once: a weights file (by path, size and mtime) or
    Keras' ImageNet download as arrays in `base.weights` order; 'none' is drawn from the seed."""

    def __init__(self):
        self._arrays: dict[tuple, list[np.ndarray]] = {}
        self._drawn: tuple[int, list] | None = None  # the last seed's random base

    def values(self, weights: str, seed: int, base: keras.Model) -> list:
        arg = weights_arg(weights)
        if arg is None:
            if self._drawn is None or self._drawn[0] != seed:
                self._drawn = (seed, [v for _, v in seeded_values(base.layers, seed)])
            return self._drawn[1]
        if arg == "imagenet":
            key = ("imagenet",)
        else:
            path = Path(arg).resolve()
            st = path.stat()
            key = (str(path), st.st_mtime_ns, st.st_size)
        if key not in self._arrays:  # read through Keras' own loader, on a throwaway reader
            reader = keras.applications.ResNet50(include_top=False, weights=arg,
                                                 input_shape=(32, 32, 3))
            self._arrays[key] = reader.get_weights()
            del reader
        return self._arrays[key]


class Network:
    """The base, head and input stage of one structure; see the module docstring."""

    def __init__(self, config: TrainConfig, input_shape: tuple, num_classes: int):
        size = config.image_size
        self.key = structure(config, input_shape, num_classes)
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        self.base = keras.applications.ResNet50(include_top=False, weights=None,
                                                 input_shape=(size, size, 3), name=BASE)
        self.pool = keras.layers.GlobalAveragePooling2D(name="head_pool")
        self.blocks = [(keras.layers.Dense(config.head_width, activation="relu",
                                           name=f"head_dense_{i}"),
                        keras.layers.BatchNormalization(name=f"head_bn_{i}"))
                       for i in range(config.head_layers)]
        self.dropouts = [RateDropout(name=f"head_dropout_{i}") for i in range(config.head_layers)]
        self.out = keras.layers.Dense(num_classes, activation="softmax", name="predictions")
        self.train_head = self._head(self.dropouts)
        self.stem = input_layers(config, self.input_shape)  # resize, preprocessing: no training
        self.model = self._whole(self.train_head, "resnet50_transfer_training")
        self.programs: dict[tuple, object] = {}

    def _head(self, dropouts: list) -> keras.Model:
        features = keras.Input(shape=self.base.output.shape[1:], name="features")
        x = self.pool(features)
        for (dense, bn), drop in zip(self.blocks, dropouts):
            x = drop(bn(dense(x)))
        return keras.Model(features, self.out(x), name=HEAD)

    @property
    def head_layers(self) -> list:
        return [la for pair in self.blocks for la in pair] + [self.out]

    def reset(self, config: TrainConfig, bank: WeightsBank) -> None:
        """The run's initial state, in place: base weights from the bank, head weights from
        initialisers seeded by config.seed, dropout at config.dropout with seeds from it."""
        if structure(config, self.input_shape, self.num_classes) != self.key:
            raise ValueError("a network serves only configs of its own structure")
        for var, value in zip(self.base.weights, bank.values(config.weights, config.seed,
                                                             self.base), strict=True):
            var.assign(value)
        for var, value in seeded_values(self.head_layers, config.seed):
            var.assign(value)
        for i, drop in enumerate(self.dropouts):
            drop.reset(config.dropout, config.seed + 10 + i)

    def program(self, key: tuple, build: Callable[[], object]):
        """What a stage source compiled for this network under `key`, built on first use."""
        if key not in self.programs:
            self.programs[key] = build()
        return self.programs[key]

    def movable(self, depth: int) -> list:
        """The variables a run opening at most `depth` layers can change: the head's and those
        of the base's top `depth` layers."""
        layers = [*self.head_layers, *self.base.layers[len(self.base.layers) - depth:]]
        return [w for layer in layers for w in layer.weights]

    def classifier(self, config: TrainConfig) -> keras.Model:
        """This network as a plain-Keras model (raw 0..255 pixels in, probabilities out): the
        same layers and variables, with stock Dropout at config.dropout; saves and loads
        without this package."""
        stock = [keras.layers.Dropout(config.dropout, seed=config.seed + 10 + i,
                                      name=f"head_dropout_{i}")
                 for i in range(len(self.blocks))]
        return self._whole(self._head(stock), "resnet50_transfer")

    def _whole(self, head: keras.Model, name: str) -> keras.Model:
        inputs = keras.Input(shape=self.input_shape, name="image")
        x = inputs
        for layer in self.stem:
            x = layer(x)
        return keras.Model(inputs, head(self.base(x, training=False)), name=name)


def structure(config: TrainConfig, input_shape: tuple, num_classes: int) -> tuple:
    return (config.image_size, tuple(input_shape), config.head_width, config.head_layers,
            num_classes)


class Networks:
    """A process's networks by structure (at most MAX_NETWORKS, least recently used dropped)
    and its weights bank. A worker keeps one for its life."""

    def __init__(self, max_networks: int = MAX_NETWORKS):
        self.bank = WeightsBank()
        self.max_networks = max_networks
        self._nets: OrderedDict[tuple, Network] = OrderedDict()
        self.built = 0  # networks built so far

    def get(self, config: TrainConfig, input_shape: tuple, num_classes: int) -> Network:
        key = structure(config, input_shape, num_classes)
        if key not in self._nets:
            self._nets[key] = Network(config, input_shape, num_classes)
            self.built += 1
            while len(self._nets) > self.max_networks:
                self._nets.popitem(last=False)
        self._nets.move_to_end(key)
        return self._nets[key]

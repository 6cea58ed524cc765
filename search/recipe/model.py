"""The network's parts: [resize] → ResNet50 preprocessing → ResNet50 base → head (augmentation is put
in front of it by the live stage source, or baked into cached views), the backbone weights, and
which layers of the base are open at each stage (search.recipe.network assembles them).

Every part is a named layer, so later code can find the base (`model.get_layer(BASE)`) and cut
it at a stage's boundary (search.cache.surgery). The base's
BatchNormalization layers run in inference mode at every stage, as in Keras' transfer-learning
guide. In Keras 3 calling the base with training=False is not enough (fit's training=True reaches
nested layers and updates their moving statistics), so BN layers of the base are kept
trainable=False, which Keras 3 runs in inference mode; their gamma/beta stay fixed too.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from search.errors import WeightsError
from search.recipe.config import TrainConfig

BASE = "resnet50"
SUFFIX = "resnet50_suffix"  # the top layers of the base, as search.cache.surgery rebuilds them
HEAD = "head"
AUGMENT = "augment"
IMAGENET_NOTOP = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"


IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)  # keras.applications.resnet50.preprocess_input


def preprocess_layer() -> keras.layers.Dense:
    """ResNet50's preprocessing (RGB→BGR, minus ImageNet's BGR means) as a stock, frozen Dense layer
    over the channel axis, so a saved model classifies raw 0..255 pixels and loads in plain Keras
    with nothing of this package. Exact: each output is one input times 1 plus zeros, then the bias."""
    flip = np.zeros((3, 3), "float32")
    for c in range(3):
        flip[2 - c, c] = 1.0  # output channel c (BGR) is input channel 2 - c (RGB)
    return keras.layers.Dense(
        3, name="preprocess", trainable=False,
        kernel_initializer=keras.initializers.Constant(flip),
        bias_initializer=keras.initializers.Constant(-np.array(IMAGENET_BGR_MEAN, "float32")))


@keras.saving.register_keras_serializable(package="search")
class ResNetPreprocess(keras.layers.Layer):
    """The preprocessing layer of models saved before preprocess_layer(): kept only so that those
    files still load (with this package imported); new models do not use it."""

    def call(self, x):
        return keras.applications.resnet50.preprocess_input(keras.ops.cast(x, "float32"))


def weights_arg(weights: str) -> str | None:
    """Map the config's weights value to ResNet50's `weights=` argument, checking paths."""
    if weights == "imagenet":
        return "imagenet"
    if weights.lower() == "none":
        return None
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist; pass --weights with an existing "
                           "ResNet50 notop .h5 file, 'imagenet', or 'none'.")
    return str(path)


def check_weights(weights: str) -> None:
    """Fail before any training when the weights cannot be had (e.g. imagenet offline).

    For 'imagenet' this runs Keras' real download, which caches the file in ~/.keras/models/, so
    a user with internet pays it once; offline with no cached copy it raises WeightsError.
    """
    arg = weights_arg(weights)
    if arg is None:
        return
    try:
        keras.applications.ResNet50(include_top=False, weights=arg, input_shape=(32, 32, 3))
    except Exception as e:
        if arg == "imagenet":
            raise WeightsError(
                f"ImageNet weights for ResNet50 could not be downloaded ({type(e).__name__}) and "
                f"are not cached; put {IMAGENET_NOTOP} in ~/.keras/models/, or pass "
                "--weights PATH to a local notop weights file, or --weights none.") from None
        raise WeightsError(f"weights file {arg} could not be loaded into ResNet50 "
                           f"({str(e).splitlines()[0][:200]}); pass a ResNet50 notop .h5 file.") from None
    finally:
        keras.backend.clear_session()


def build_augment(config: TrainConfig) -> keras.Sequential:
    """Random flip/translate/rotate/zoom; active only in training (Keras preprocessing layers)."""
    s = config.seed
    layers = []
    if config.aug_flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=s))
    if config.aug_translate > 0:
        layers.append(keras.layers.RandomTranslation(config.aug_translate, config.aug_translate,
                                                     seed=s + 1))
    if config.aug_rotate > 0:
        layers.append(keras.layers.RandomRotation(config.aug_rotate, seed=s + 2))
    if config.aug_zoom > 0:
        layers.append(keras.layers.RandomZoom(config.aug_zoom, seed=s + 3))
    return keras.Sequential(layers, name=AUGMENT)


def input_layers(config: TrainConfig, input_shape: tuple) -> list:
    """Raw 0..255 pixels → [resize] → ResNet50 preprocessing, as stock layers."""
    layers = []
    if tuple(input_shape[:2]) != (config.image_size, config.image_size):
        layers.append(keras.layers.Resizing(config.image_size, config.image_size, name="resize"))
    return [*layers, preprocess_layer()]


def build_input_stage(config: TrainConfig, input_shape: tuple):
    """The input stage on a fresh input. Returns (input, tensor)."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for layer in input_layers(config, input_shape):
        x = layer(x)
    return inputs, x


def set_stage(model: keras.Model, base: keras.Model, depth: int) -> list[str]:
    """Open the top `depth` layers of `base` (0 = base frozen) inside `model`, which holds either
    the base or its suffix; returns the opened layers' names.

    BatchNormalization layers among them stay frozen (inference mode); every other opened layer
    trains. Container flags are set first: in Keras 3 setting a container's flag sets its layers'."""
    for container in _containers(model):
        container.trainable = depth > 0
    layers = base.layers
    if depth >= len(layers):
        raise ValueError(f"depth {depth} exceeds the base's {len(layers)} layers")
    for layer in layers:
        layer.trainable = False
    opened = layers[-depth:] if depth else []
    for layer in opened:
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
    return [layer.name for layer in opened]


def _containers(model: keras.Model) -> list:
    found = []
    for layer in model.layers:
        if layer.name in (BASE, SUFFIX):
            found.append(layer)
        elif isinstance(layer, keras.Model) and layer.name != HEAD:
            found.extend(_containers(layer))
    return found

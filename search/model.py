"""The network: [resize] → ResNet50 preprocessing → ResNet50 base → head (augmentation is put in
front of it by train() for the live path, or baked into cached views).

Every part is a named layer of one functional model, so later code can find the base
(`model.get_layer(BASE)`) and cut it at a stage's boundary. The base's
BatchNormalization layers run in inference mode at every stage, as in Keras' transfer-learning
guide. In Keras 3 calling the base with training=False is not enough (fit's training=True reaches
nested layers and updates their moving statistics), so BN layers of the base are kept
trainable=False, which Keras 3 runs in inference mode; their gamma/beta stay fixed too.
"""

from __future__ import annotations

from pathlib import Path

import keras

from search.config import TrainConfig
from search.errors import WeightsError

BASE = "resnet50"
SUFFIX = "resnet50_suffix"  # the top layers of the base, fed from cached boundary tensors
HEAD = "head"
AUGMENT = "augment"
IMAGENET_NOTOP = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"


@keras.saving.register_keras_serializable(package="search")
class ResNetPreprocess(keras.layers.Layer):
    """keras.applications.resnet50.preprocess_input as a saveable layer (RGB→BGR, minus ImageNet
    means), so a saved model classifies raw 0..255 pixels."""

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


def build_base(config: TrainConfig) -> keras.Model:
    size = config.image_size
    return keras.applications.ResNet50(include_top=False, weights=weights_arg(config.weights),
                                       input_shape=(size, size, 3), name=BASE)


def build_head(config: TrainConfig, in_shape: tuple, num_classes: int) -> keras.Model:
    """Pool → [Dense+ReLU → BN → Dropout] × head_layers → softmax, as one nested model so that
    the full model and the cached-feature model can share it."""
    inp = keras.Input(shape=in_shape, name="features")
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(inp)
    for i in range(config.head_layers):
        x = keras.layers.Dense(config.head_width, activation="relu", name=f"head_dense_{i}")(x)
        x = keras.layers.BatchNormalization(name=f"head_bn_{i}")(x)
        x = keras.layers.Dropout(config.dropout, seed=config.seed + 10 + i, name=f"head_dropout_{i}")(x)
    out = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inp, out, name=HEAD)


def build_input_stage(config: TrainConfig, input_shape: tuple):
    """Raw 0..255 pixels → [resize] → ResNet50 preprocessing. Returns (input, tensor)."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    if tuple(input_shape[:2]) != (config.image_size, config.image_size):
        x = keras.layers.Resizing(config.image_size, config.image_size, name="resize")(x)
    return inputs, ResNetPreprocess(name="preprocess")(x)


def build_model(config: TrainConfig, input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    """The whole classifier, taking raw 0..255 pixels of the source's size (no augmentation:
    train() puts the augment block in front of it for live augmentation)."""
    inputs, x = build_input_stage(config, input_shape)
    base = build_base(config)
    x = base(x, training=False)
    head = build_head(config, base.output.shape[1:], num_classes)
    return keras.Model(inputs, head(x), name="resnet50_transfer")


def boundary(base: keras.Model, depth: int) -> list:
    """Tensors crossing from the frozen part into the top `depth` layers of the base.

    A cut inside a residual block yields both the main path and the shortcut. Uses each layer's
    first inbound node: the one made when ResNet50 itself was built."""
    if depth == 0:
        return [base.output]
    top = base.layers[-depth:]
    ids = {id(la) for la in top}
    crossing: list = []
    for layer in top:
        for t in layer._inbound_nodes[0].input_tensors:
            producer = t._keras_history.operation
            if id(producer) not in ids and not any(t is c for c in crossing):
                crossing.append(t)
    return crossing


def build_prefix(config: TrainConfig, base: keras.Model, input_shape: tuple,
                 depth: int) -> keras.Model:
    """Raw pixels → [resize] → preprocessing → the base's layers below the top `depth`, ending at
    the boundary tensors: the part of the network that is frozen in every stage up to `depth`."""
    inner = keras.Model(base.input, boundary(base, depth), name="resnet50_prefix_inner")
    inputs, x = build_input_stage(config, input_shape)
    outs = inner(x, training=False)
    return keras.Model(inputs, outs if isinstance(outs, list) else [outs], name="resnet50_prefix")


class MatmulConv(keras.layers.Layer):
    """A base Conv2D evaluated as a matrix product where that is the same maths: a 1×1 kernel
    (strided: subsample first), or a 'same' odd kernel on 1×1 maps (only its centre tap meets
    data; the rest meets zero padding and gets zero gradient).

    Why: on these maps TensorFlow's CPU convolution is several times slower than a matmul
    (conv 1×1 2048→512 on 1×1 maps, batch 128: 9.2 ms vs 1.4 ms).

    Variables: a 1×1 kernel and every bias are the conv's own (shared). A larger kernel's centre
    tap is a variable of this layer, copied from the conv when this layer is made and written
    back by `write_back()`: training the whole 3×3 kernel would compute zero gradients for its 8
    outer taps and run Adam over them (9x the variables of the centre; at 30 layers open, 7.1M of
    15M trainable parameters), and Adam leaves zero-gradient taps exactly unchanged anyway."""

    def __init__(self, conv: keras.layers.Conv2D, **kwargs):
        super().__init__(name=f"{conv.name}_mm", **kwargs)
        object.__setattr__(self, "conv", conv)  # untracked: only the variables below train
        self.centre_index = (conv.kernel_size[0] // 2, conv.kernel_size[1] // 2)
        if conv.kernel_size == (1, 1):
            self.kernel = conv.kernel
            self.own_centre = False
        else:
            centre = keras.ops.convert_to_numpy(conv.kernel)[self.centre_index]
            self.kernel = self.add_weight(shape=centre.shape, name="centre",
                                          initializer=lambda shape, dtype=None: centre)
            self.own_centre = True
        self.bias = conv.bias if conv.use_bias else None

    def write_back(self) -> None:
        """Copy the trained centre tap into the conv's kernel (no-op for a shared 1×1 kernel)."""
        if self.own_centre:
            i, j = self.centre_index
            self.conv.kernel.assign(keras.ops.slice_update(
                self.conv.kernel, (i, j, 0, 0), keras.ops.expand_dims(self.kernel, (0, 1))))

    def call(self, x):
        c = self.conv
        k = self.kernel if self.own_centre else self.kernel[0, 0]  # (in, out)
        s = c.strides
        if s != (1, 1):
            x = x[:, ::s[0], ::s[1], :]
        h, w = x.shape[1], x.shape[2]
        y = keras.ops.matmul(keras.ops.reshape(x, (-1, x.shape[-1])), k)
        if self.bias is not None:
            y = y + self.bias
        return c.activation(keras.ops.reshape(y, (-1, h, w, k.shape[-1])))


def write_back(model: keras.Model) -> None:
    """Write every MatmulConv's own centre tap in `model` back into its conv (see MatmulConv)."""
    for layer in model._flatten_layers():
        if isinstance(layer, MatmulConv):
            layer.write_back()


def _as_matmul(layer, x) -> bool:
    if not isinstance(layer, keras.layers.Conv2D) or type(layer) is not keras.layers.Conv2D:
        return False
    if layer.data_format != "channels_last" or layer.dilation_rate != (1, 1) or layer.groups != 1:
        return False
    if layer.kernel_size == (1, 1):
        return True
    odd = all(k % 2 == 1 for k in layer.kernel_size)
    return odd and layer.padding == "same" and layer.strides == (1, 1) and tuple(x.shape[1:3]) == (1, 1)


def replay(base: keras.Model, outer: int, inner: int, fast: bool = True):
    """The base's layers between the boundary of the top `outer` layers and that of the top `inner`
    (< outer; 0 = the base's output), on fresh inputs. Returns (inputs, outputs).

    Rebuilt by replaying each layer's first inbound node (a functional Model from intermediate
    tensors is refused by Keras 3 as disconnected). Every layer is the base's own, so weights are
    shared; with `fast`, convolutions that are matrix products run as one (MatmulConv)."""
    src, dst = boundary(base, outer), boundary(base, inner)
    inputs = [keras.Input(shape=t.shape[1:], name=f"boundary_{i}") for i, t in enumerate(src)]
    values = {id(t): i for t, i in zip(src, inputs)}
    n = len(base.layers)
    for layer in base.layers[n - outer:n - inner]:
        node = layer._inbound_nodes[0]
        args, kwargs = node.arguments.fill_in(values)
        op = MatmulConv(layer) if fast and _as_matmul(layer, args[0]) else layer
        out = op(*args, **kwargs)
        outs = out if isinstance(out, (list, tuple)) else [out]
        for t, o in zip(node.output_tensors, outs):
            values[id(t)] = o
    return inputs, [values[id(t)] for t in dst]


def build_bridge(base: keras.Model, outer: int, inner: int, fast: bool = True) -> keras.Model:
    """Boundary tensors at depth `outer` → those at depth `inner` (< outer): the layers in between
    are frozen in every stage that opens at most `inner` layers."""
    inputs, outputs = replay(base, outer, inner, fast)
    return keras.Model(inputs, outputs, name=f"resnet50_bridge_{outer}_{inner}")


def build_cached_model(config: TrainConfig, base: keras.Model, head: keras.Model,
                       depth: int, fast: bool = True) -> tuple[keras.Model, list[tuple]]:
    """Boundary tensors → suffix (top `depth` layers of `base`) → head; shares all weights.
    `fast`: convolutions that are matrix products run as such (see MatmulConv)."""
    if depth == 0:
        inputs = [keras.Input(shape=base.output.shape[1:], name="boundary_0")]
        x = inputs[0]
    else:
        inputs, outputs = replay(base, depth, 0, fast)
        suffix = keras.Model(inputs, outputs[0], name=SUFFIX)
        inputs = [keras.Input(shape=t.shape[1:], name=f"boundary_{i}") for i, t in enumerate(inputs)]
        x = suffix(inputs if len(inputs) > 1 else inputs[0], training=False)
    shapes = [tuple(t.shape[1:]) for t in inputs]
    return keras.Model(inputs, head(x), name="cached_transfer"), shapes


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

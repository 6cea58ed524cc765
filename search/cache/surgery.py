"""Graph surgery on ResNet50 for the cache: cut the base at a stage's boundary and rebuild its parts.

The boundary of the top `depth` layers is the set of tensors that cross from the frozen part into
them (a cut inside a residual block yields both the main path and the shortcut). From it:
  build_prefix        raw pixels -> the frozen part -> the boundary tensors (run once per image)
  build_bridge        one boundary -> a shallower one, through the frozen layers in between
  build_cached_model  boundary tensors -> the top `depth` layers -> head (what a stage trains)
Every layer is the base's own, so weights are shared with the full model.
"""

from __future__ import annotations

import keras

from search.cache.matmul import MatmulConv, as_matmul
from search.recipe.config import TrainConfig
from search.recipe.model import SUFFIX, build_input_stage


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
        op = MatmulConv(layer) if fast and as_matmul(layer, args[0]) else layer
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

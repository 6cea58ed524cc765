"""Convolutions of the base that are matrix products, run as one on the same variables."""

from __future__ import annotations

import keras


class MatmulConv(keras.layers.Layer):
    """A base Conv2D evaluated as a matrix product where that is the same maths: a 1×1 kernel
    (strided: subsample first), or a 'same' odd kernel on 1×1 maps (only its centre tap meets
    data; the rest meets zero padding and gets zero gradient).

    Why: on these small maps TensorFlow's CPU convolution is several times slower than a matmul
    (figures in docs/benchmarks.md).

    Variables: a 1×1 kernel and every bias are the conv's own (shared). A larger kernel's centre
    tap is a variable of this layer, copied from the conv when this layer is made and written
    back by `write_back()`: training the whole 3×3 kernel would compute zero gradients for its 8
    outer taps and run Adam over them (9x the variables of the centre), and Adam leaves
    zero-gradient taps exactly unchanged anyway."""

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

    def load(self) -> None:
        """Take the centre tap from the conv's kernel again (a reused layer, at a stage's start)."""
        if self.own_centre:
            i, j = self.centre_index
            self.kernel.assign(self.conv.kernel[i, j])

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


def matmul_layers(model: keras.Model) -> list[MatmulConv]:
    """Every MatmulConv inside `model` (nested models included) that has a centre tap of its own."""
    found = []
    for layer in model.layers:
        if isinstance(layer, MatmulConv) and layer.own_centre:
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found.extend(matmul_layers(layer))
    return found


def as_matmul(layer, x) -> bool:
    if not isinstance(layer, keras.layers.Conv2D) or type(layer) is not keras.layers.Conv2D:
        return False
    if layer.data_format != "channels_last" or layer.dilation_rate != (1, 1) or layer.groups != 1:
        return False
    if layer.kernel_size == (1, 1):
        return True
    odd = all(k % 2 == 1 for k in layer.kernel_size)
    return odd and layer.padding == "same" and layer.strides == (1, 1) and tuple(x.shape[1:3]) == (1, 1)

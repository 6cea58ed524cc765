"""reset_session: Keras' clear_session + set_random_seed, with TensorFlow's compiled kernels kept."""

import random

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python import pywrap_tfe

from search.recipe.session import reset_session


def test_it_resets_names_and_seeds_as_keras_does():
    draws = []
    for _ in range(2):
        reset_session(5)
        assert keras.layers.Dense(2).name == "dense"  # names restart
        draws.append((float(keras.random.normal(())), np.random.rand(), random.random()))
    assert draws[0] == draws[1]
    reset_session(6)
    assert float(keras.random.normal(())) != draws[0][0]


def test_it_keeps_instantiated_functions_where_keras_clears_them():
    # A stateful random op keeps its position in the kernel: it shows whether the kernel survived.
    draw = tf.function(lambda: tf.random.uniform((), seed=7))
    keras.utils.set_random_seed(1)
    first = float(draw())
    keras.utils.set_random_seed(1)
    assert float(draw()) == first  # Keras' call cleared the kernel: the stream restarts
    reset_session(1)
    assert float(draw()) != first  # kept: the stream goes on
    assert pywrap_tfe.TFE_ContextClearCaches.__name__ != "<lambda>"  # restored after the block

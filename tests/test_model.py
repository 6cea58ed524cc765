import keras
import numpy as np
import pytest

from search.errors import WeightsError
from search.recipe.config import TrainConfig
from search.recipe.model import BASE, HEAD, check_weights, set_stage
from search.recipe.network import Networks, WeightsBank

CFG = TrainConfig(weights="none", head_layers=2, head_width=48, dropout=0.25)


@pytest.fixture(scope="module")
def model():
    networks = Networks()
    net = networks.get(CFG, (32, 32, 3), 10)
    net.reset(CFG, networks.bank)
    return net.classifier(CFG)


def test_head_follows_config(model):
    head = model.get_layer(HEAD)
    dense = [head.get_layer(f"head_dense_{i}") for i in range(2)]
    assert [d.units for d in dense] == [48, 48]
    assert head.get_layer("head_dropout_1").rate == 0.25
    assert isinstance(head.get_layer("head_bn_0"), keras.layers.BatchNormalization)
    assert model.output_shape == (None, 10)
    with pytest.raises(ValueError):
        head.get_layer("head_dense_2")


@pytest.mark.parametrize("depth", [0, 5, 10, 15, 20])
def test_exactly_the_top_layers_are_trainable(model, depth):
    base = model.get_layer(BASE)
    opened = set_stage(model, base, depth)
    trainable = [la.name for la in base.layers if la.trainable] if base.trainable else []
    top = base.layers[-depth:] if depth else []
    assert opened == [la.name for la in top] and len(opened) == depth
    # BN layers stay frozen (inference mode); every other opened layer trains
    assert trainable == [la.name for la in top if not isinstance(la, keras.layers.BatchNormalization)]
    if depth == 5:
        assert opened == ["conv5_block3_2_relu", "conv5_block3_3_conv", "conv5_block3_3_bn",
                          "conv5_block3_add", "conv5_block3_out"]
    head = len(model.get_layer(HEAD).trainable_weights)
    assert head == 2 + 2 + 2 + 2 + 2  # two Dense+BN blocks and the softmax layer
    base_w = sum(len(la.trainable_weights) for la in base.layers[-depth:]) if depth else 0
    assert len(model.trainable_weights) == head + base_w


def test_base_batchnorm_runs_in_inference_mode(model):
    set_stage(model, model.get_layer(BASE), 10)  # opens conv5_block3_1_conv .. out, including three BN layers
    bn = model.get_layer(BASE).get_layer("conv5_block3_2_bn")
    assert not bn.trainable
    conv = model.get_layer(BASE).get_layer("conv5_block3_2_conv")
    kernel0 = conv.kernel.numpy().copy()
    mean0, gamma0 = bn.moving_mean.numpy().copy(), bn.gamma.numpy().copy()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
    x = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    y = keras.utils.to_categorical(np.arange(16) % 10, 10)
    model.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), mean0)  # statistics frozen
    np.testing.assert_array_equal(bn.gamma.numpy(), gamma0)
    assert not np.allclose(conv.kernel.numpy(), kernel0)  # while the opened conv trains


def test_missing_weights_file_is_a_sentence(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        check_weights(str(tmp_path / "absent.h5"))


def test_offline_imagenet_names_file_folder_and_flag(monkeypatch):
    def offline(*a, **k):
        raise Exception("URL fetch failure: Name or service not known")

    monkeypatch.setattr(keras.applications, "ResNet50", offline)
    with pytest.raises(WeightsError) as e:
        check_weights("imagenet")
    msg = str(e.value)
    for part in ("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", "~/.keras/models/",
                 "--weights PATH", "--weights none"):
        assert part in msg


def test_a_weights_file_is_read_once_by_a_bank_and_gives_the_file_s_weights(tmp_path,
                                                                           monkeypatch):
    """A bank reads a weights file once: a second network reset from it gets every weight (the
    file's, and the head's seeded initial ones) bit for bit, without reading the file again."""
    keras.utils.set_random_seed(3)  # a test process: Keras' global seed is fine here
    path = tmp_path / "w.weights.h5"
    keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3)).save_weights(path)
    cfg = CFG.replace(weights=str(path))
    bank = WeightsBank()

    def built():
        networks = Networks()
        networks.bank = bank
        net = networks.get(cfg, (32, 32, 3), 10)
        net.reset(cfg, bank)
        return {w.path: keras.ops.convert_to_numpy(w) for w in net.classifier(cfg).weights}
    first = built()
    real_load = keras.Model.load_weights
    monkeypatch.setattr(keras.Model, "load_weights", lambda *a, **k: pytest.fail("file read again"))
    second = built()
    monkeypatch.setattr(keras.Model, "load_weights", real_load)
    assert first.keys() == second.keys() and len(first) > 300
    assert all(np.array_equal(first[k], second[k]) for k in first)
    saved = keras.applications.ResNet50(include_top=False, weights=str(path), input_shape=(32, 32, 3))
    kernel = keras.ops.convert_to_numpy(saved.get_layer("conv1_conv").kernel)  # the file's
    (key,) = [k for k in first if k.endswith("conv1_conv/kernel")]
    assert np.array_equal(first[key], kernel)

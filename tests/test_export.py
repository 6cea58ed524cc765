"""Export to ONNX and LiteRT: the files other runtimes read, checked against Keras."""

import keras
import numpy as np
import pytest

from search.cli import main


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """Stock layers as the classifier has them: preprocessing, conv, batch norm, dropout, softmax."""
    inputs = keras.Input((32, 32, 3), name="image")
    x = keras.applications.resnet50.preprocess_input(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.3)(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    path = tmp_path_factory.mktemp("export") / "model.keras"
    model.save(path)
    return path


def images(n=5):
    return np.random.default_rng(1).uniform(0, 255, (n, 32, 32, 3)).astype("float32")


def test_onnx_export_runs_in_onnxruntime_as_in_keras(small_model, tmp_path, capsys):
    import onnxruntime as ort

    out = tmp_path / "m.onnx"
    assert main(["export", "--format", "onnx", "--model", str(small_model), "--out", str(out)]) == 0
    assert "outputs within" in capsys.readouterr().out
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    want = keras.saving.load_model(small_model).predict(images(), verbose=0)
    got = session.run(None, {"image": images()})[0]
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temporary left


def test_litert_export_runs_in_the_interpreter_as_in_keras(small_model, tmp_path):
    from search.recipe.export import _run_litert

    assert main(["export", "--format", "litert", "--model", str(small_model)]) == 0
    out = small_model.with_suffix(".tflite")  # beside the model by default
    want = keras.saving.load_model(small_model).predict(images(), verbose=0)
    np.testing.assert_allclose(_run_litert(out, images()), want, atol=1e-5)


@pytest.mark.parametrize("case, said", [
    ("wrong suffix", "should end in .onnx"),
    ("no retrained model", "has no retrained model yet"),
    ("model with a config format", "--model is for --format onnx or litert"),
])
def test_export_refusals_are_one_sentence_and_write_nothing(small_model, tmp_path, capsys, case,
                                                           said):
    argv = {"wrong suffix": ["--format", "onnx", "--model", str(small_model),
                             "--out", str(tmp_path / "x.tflite")],
            "no retrained model": ["--format", "litert"],
            "model with a config format": ["--format", "yaml", "--model", str(small_model)]}[case]
    assert main(["export", *argv, "--results-dir", str(tmp_path / "res")]) == 2
    assert said in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_export_that_disagrees_with_keras_is_refused_and_not_written(small_model, tmp_path,
                                                                       monkeypatch, capsys):
    import search.recipe.export as export

    monkeypatch.setattr(export, "_run_onnx", lambda path, x: np.zeros((len(x), 10)))
    out = tmp_path / "m.onnx"
    assert main(["export", "--format", "onnx", "--model", str(small_model), "--out", str(out)]) == 1
    assert "disagrees with the Keras model" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []

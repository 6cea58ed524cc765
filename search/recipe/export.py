"""The trained model for other runtimes: ONNX (onnxruntime, and what reads ONNX) and LiteRT
(.tflite: phones, microcontrollers). Each export is checked before it is handed over: the
exported model's outputs on a few images must match Keras' own (or the export is refused), and
the file is written under a temporary name, then renamed.

ONNX goes through tf2onnx's `from_keras`: Keras' `model.export(format="onnx")` (tf2onnx's
`from_function`) leaves a captured constant as a second graph input with the pinned TensorFlow
(2.21), a model no runtime can feed. LiteRT is Keras' own `model.export(format="litert")`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from search.errors import SearchFailed, UserError, require
from search.files import atomic_path

FORMATS = {"onnx": ".onnx", "litert": ".tflite"}
PACKAGES = {"onnx": ("tf2onnx", "onnx"), "litert": ()}
TOLERANCE = 1e-4  # largest difference of a probability between Keras and the export


def sample_images(model, n: int = 4, seed: int = 0) -> np.ndarray:
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    return np.random.default_rng(seed).uniform(0, 255, (n, *shape)).astype("float32")


def _onnx(model, path: Path) -> None:
    import tensorflow as tf
    import tf2onnx

    spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32, name="image")
    tf2onnx.convert.from_keras(model, input_signature=[spec], opset=17, output_path=str(path))


def _run_onnx(path: Path, x: np.ndarray) -> np.ndarray | None:
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise SearchFailed(f"the ONNX export has {len(inputs)} inputs, not one image input.")
    return session.run(None, {inputs[0].name: x})[0]


def _run_litert(path: Path, x: np.ndarray) -> np.ndarray:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # deprecated in favour of ai_edge_litert, still here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = Interpreter(model_path=str(path))
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    it.resize_tensor_input(inp["index"], x.shape)
    it.allocate_tensors()
    it.set_tensor(inp["index"], x)
    it.invoke()
    return it.get_tensor(out["index"])


def export_model(model, fmt: str, out: Path, log=print) -> dict:
    """Write `model` (a loaded Keras model) as `fmt` to `out`, checked against Keras on a few
    images. Returns {path, max_diff (None: not checked, the runtime is not installed)}."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format '{fmt}'; use one of {', '.join(FORMATS)}.")
    for package in PACKAGES[fmt]:
        require(package, f"export --format {fmt}", "export")
    out = Path(out)
    with atomic_path(out) as tmp:  # same suffix: the exporters go by it
        if fmt == "onnx":
            _onnx(model, tmp)
        else:
            model.export(str(tmp), format="litert", verbose=False)
        x = sample_images(model)
        want = np.asarray(model.predict(x, verbose=0))
        got = _run_onnx(tmp, x) if fmt == "onnx" else _run_litert(tmp, x)
        diff = None if got is None else float(np.max(np.abs(np.asarray(got) - want)))
        if diff is not None and not diff <= TOLERANCE:
            raise SearchFailed(f"the {fmt} export disagrees with the Keras model by up to "
                               f"{diff:.2g} on test inputs (allowed {TOLERANCE:g}); nothing "
                               "was written.")
    checked = ("not checked: onnxruntime is not installed" if diff is None
               else f"outputs within {diff:.1g} of Keras'")
    log(f"wrote {out} ({fmt}, {out.stat().st_size / 2**20:.1f} MiB; {checked})")
    return {"path": str(out), "max_diff": diff}

"""Test-set metrics (accuracy, per-class accuracy, confusion matrix) and single-image prediction."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from search.errors import DataError, UserError
from search.recipe.data import decode, open_image


def metrics(y_true: np.ndarray, y_pred: np.ndarray, class_names) -> dict:
    n = len(class_names)
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    support = cm.sum(axis=1)
    per_class = {name: float(cm[i, i] / support[i]) if support[i] else float("nan")
                 for i, name in enumerate(class_names)}
    return {"accuracy": float(np.trace(cm) / max(cm.sum(), 1)), "n": int(cm.sum()),
            "per_class_accuracy": per_class, "confusion_matrix": cm.tolist(),
            "class_names": list(class_names)}


def predict_probs(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    expected = check_model(model)
    if tuple(x.shape[1:]) != expected:
        raise DataError(f"the test images are {x.shape[1:]} but the model takes {expected}; "
                        "evaluate with the data source the model was trained on.")
    from search.recipe.feed import array_stream

    return model.predict(array_stream(x.astype("float32"), batch_size=batch_size), verbose=0)


def evaluate(model, x: np.ndarray, y: np.ndarray, class_names, batch_size: int = 256) -> dict:
    probs = predict_probs(model, x, batch_size)
    return metrics(np.asarray(y), probs.argmax(axis=1), class_names)


def format_metrics(m: dict) -> str:
    names = m["class_names"]
    w = max(len(n) for n in names)
    lines = [f"test accuracy {m['accuracy']:.4f} on {m['n']} images", "per-class accuracy:"]
    lines += [f"  {n:<{w}}  {a:.4f}" for n, a in m["per_class_accuracy"].items()]
    lines.append("confusion matrix (rows: true class, columns: predicted):")
    lines.append(" " * (w + 2) + " ".join(f"{n[:5]:>5}" for n in names))
    for n, row in zip(names, m["confusion_matrix"]):
        lines.append(f"  {n:<{w}}" + " ".join(f"{v:>5}" for v in row))
    return "\n".join(lines)


def load_model(path: str | Path):
    import keras

    import search.recipe.model  # noqa: F401  registers the layer of models saved before 2026-11-29

    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file {path} does not exist; pass a .keras file written by "
                        "`train` or by the search (best_model.keras).")
    try:
        return keras.saving.load_model(path)
    except Exception as e:
        raise UserError(f"{path} could not be loaded as a Keras model ({type(e).__name__}); "
                        "pass a .keras file written by this project.") from None


def read_image(path: str | Path, shape: tuple[int, int, int]) -> np.ndarray:
    """An image file as H×W×3 uint8 at the model's input size (resized with PIL when it differs)."""
    from PIL import Image, ImageOps

    path = Path(path)
    if not path.is_file():
        raise DataError(f"image {path} does not exist; pass paths to .png/.jpg files.")
    with open_image(path) as im:
        try:
            im = ImageOps.exif_transpose(im)  # a photo as its camera meant it, upright
            if im.mode != "RGB":
                im = im.convert("RGB")
            if im.size != (shape[1], shape[0]):
                im = im.resize((shape[1], shape[0]), Image.BILINEAR)
        except Exception as e:  # any decoder error: a damaged file
            raise DataError(f"{path} is a damaged image ({str(e)[:160]}); pass a readable "
                            ".png/.jpg file.") from None
        return decode(im, path)


def check_model(model, class_names=None) -> tuple[int, int, int]:
    """The image shape a model takes (H, W, 3), checked to be one this package can feed; with
    class_names, that its outputs are one per class. A foreign model fails here with a sentence
    instead of deep inside numpy or PIL."""
    shape = tuple(getattr(model, "input_shape", ()) or ())[1:]
    if len(shape) != 3 or shape[-1] != 3 or not all(isinstance(n, int) and n > 0 for n in shape):
        raise UserError(f"the model takes inputs of shape {shape}, not images of a fixed size "
                        "(height, width, 3); pass a model written by this project (train or the "
                        "search).")
    n = (getattr(model, "output_shape", None) or (None, None))[-1]
    if class_names is not None and n != len(class_names):
        raise DataError(f"the model gives {n} outputs but the data has {len(class_names)} classes "
                        f"({', '.join(list(class_names)[:5])}...); evaluate on the data the model "
                        "was trained for.")
    return shape


def predict(model, paths, class_names) -> list[tuple[str, str, float]]:
    shape = check_model(model)
    x = np.stack([read_image(p, shape) for p in paths]).astype("float32")
    from search.recipe.feed import array_stream

    probs = model.predict(array_stream(x, batch_size=32), verbose=0)
    return [(str(p), class_names[int(i)], float(pr[i]))
            for p, pr, i in zip(paths, probs, probs.argmax(axis=1))]


def read_classes(model_path: str | Path, n_outputs: int) -> tuple[str, ...] | None:
    """The class names saved beside a model (classes.json), checked: a JSON list of n_outputs
    distinct strings. None when the file is absent."""
    f = Path(model_path).with_name("classes.json")
    if not f.is_file():
        return None
    try:
        names = json.loads(f.read_text())
    except (ValueError, UnicodeDecodeError, OSError) as e:
        raise UserError(f"{f} is not readable JSON ({str(e)[:120]}); write it again as a list "
                        "of class names, or delete it.") from None
    if (not isinstance(names, list) or len(names) != n_outputs or len(set(map(str, names))) != len(names)
            or not all(isinstance(n, str) for n in names)):
        raise UserError(f"{f} must list the model's {n_outputs} distinct class names as strings; "
                        "write it again, or delete it.")
    return tuple(names)

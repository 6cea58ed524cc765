"""CIFAR-10 from three sources, one result; and the seeded, stratified train/val split.

Sources (detected from what the folder holds):
  - no folder: keras.datasets.cifar10.load_data() (downloads to ~/.keras/datasets on first use);
  - the python release: DIR/cifar-10-batches-py/{data_batch_1..5,test_batch} or DIR itself;
  - image folders: DIR/train/<class>/*.{png,jpg,jpeg} and DIR/test/<class>/*.
Every source yields uint8 images N×H×W×3 and int labels in CIFAR-10's class order.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search.errors import DataError
from search.recipe.batches import regular_file, unpickle

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
IMAGE_FORMATS = ("PNG", "JPEG")  # the decoders a file from anywhere may reach
MIN_SIDE = 32  # ResNet50 without its top needs at least 32×32 inputs
MAX_PIXELS = 40_000_000  # one image; PIL's own bomb check allows ~180M before it refuses
MAX_DECODED_BYTES = 8 * 2**30  # all images of a folder source, decoded (CIFAR-10: 180 MB)


def content_hash(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:32]


@dataclass
class Source:
    """A whole source: its training pool and its test split."""

    x_train: np.ndarray  # uint8, N×H×W×3
    y_train: np.ndarray  # int64, N
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    layout: str  # "keras", "python", "folders"
    location: str

    def fingerprint(self) -> str:
        """Content hash of the pixels and labels, recorded with each run."""
        return content_hash(self.x_train, self.y_train, self.x_test, self.y_test)


@dataclass
class Data:
    """What train() receives: the three disjoint sets, labels as ints (one-hot is made at fit)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    train_idx: np.ndarray  # indices into the source's training pool, for reproduction
    val_idx: np.ndarray
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def fingerprint(self) -> str:
        """Content hash of the training and validation images and labels (keys the cache)."""
        return content_hash(self.x_train, self.y_train, self.x_val, self.y_val)


# ----------------------------------------------------------------------------- loading

def load_source(data_dir: str | Path | None = None, max_bytes: int = MAX_DECODED_BYTES) -> Source:
    """Load a source; with no folder, Keras' own CIFAR-10 download. Image folders decode at most
    `max_bytes` of pixels in all (each image's size is read from its header first)."""
    if data_dir is None:
        return _load_keras()
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist; pass --data-dir with a folder holding "
                        "cifar-10-batches-py/ or train/<class>/ and test/<class>/ image folders.")
    for cand in (root / "cifar-10-batches-py", root):
        if (cand / "data_batch_1").is_file() or (cand / "test_batch").is_file():
            return _load_python(cand)
    if (root / "train").is_dir() or (root / "test").is_dir():
        return _load_folders(root, max_bytes)
    raise DataError(f"no CIFAR-10 layout found in {root}; expected cifar-10-batches-py/ "
                    "(data_batch_1..5, test_batch) or train/<class>/*.jpg and test/<class>/*.jpg.")


# Keras' own CIFAR-10 download (keras.datasets.cifar10.load_data), fetched the same way but read
# with the checked loader below: Keras' loader unpickles the cached files with the plain pickle.
KERAS_CIFAR10 = {"fname": "cifar-10-batches-py-target",
                 "origin": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                 "file_hash": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"}


def _load_keras() -> Source:
    import keras

    try:
        path = keras.utils.get_file(extract=True, **KERAS_CIFAR10)
    except Exception as e:  # no network and no cached copy
        raise DataError("could not download CIFAR-10 as keras.datasets.cifar10 does "
                        f"({type(e).__name__}); connect to the internet once, or pass --data-dir "
                        "with a local copy (cifar-10-batches-py/ or train/ and test/ image folders)."
                        ) from None
    s = _load_python(Path(path) / "cifar-10-batches-py")
    return Source(s.x_train, s.y_train, s.x_test, s.y_test, CIFAR10_CLASSES, "keras",
                  "keras.datasets.cifar10")


def _batch_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    d = unpickle(path)
    try:
        data, labels = d[b"data"], d[b"labels"]
    except KeyError as e:
        raise DataError(f"{path} lacks the key {e}; it is not a CIFAR-10 python batch.") from None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        raise DataError(f"{path}: its data is {type(data).__name__} "
                        f"{getattr(data, 'dtype', '')}, not a uint8 array; it is not a CIFAR-10 "
                        "python batch.")
    if not isinstance(labels, list | np.ndarray) or not all(
            isinstance(v, int | np.integer) and not isinstance(v, bool) and 0 <= v < 2**31
            for v in labels):
        raise DataError(f"{path}: its labels are not a list of class numbers (integers from 0); "
                        "it is not a CIFAR-10 python batch.")
    labels = np.asarray(labels, dtype=np.int64)
    if data.ndim != 2 or len(labels) != len(data):
        raise DataError(f"{path} holds {len(labels)} labels for data of shape {data.shape}; it is "
                        "not a CIFAR-10 python batch.")
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path} holds rows of {data.shape[1:]} values, not 3072 (32×32×3); "
                        "it is not a CIFAR-10 python batch.")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _load_python(folder: Path) -> Source:
    batches = sorted(folder.glob("data_batch_*"))
    if not batches:
        raise DataError(f"{folder} has no data_batch_* files; re-extract cifar-10-python.tar.gz.")
    if not (folder / "test_batch").is_file():
        raise DataError(f"{folder} has no test_batch; re-extract cifar-10-python.tar.gz.")
    parts = [_batch_arrays(p) for p in batches]
    xtr = np.concatenate([p[0] for p in parts])
    ytr = np.concatenate([p[1] for p in parts])
    xte, yte = _batch_arrays(folder / "test_batch")
    names = CIFAR10_CLASSES
    meta = folder / "batches.meta"
    if meta.is_file():
        raw = unpickle(meta).get(b"label_names", names)
        if not isinstance(raw, list | tuple) or not all(isinstance(n, bytes | str) for n in raw):
            raise DataError(f"{meta}: label_names is not a list of names; remove the file or "
                            "re-extract it.")
        names = tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in raw)
    return _checked(xtr, ytr, xte, yte, names, "python", str(folder))


def _class_order(names: list[str]) -> list[str]:
    """CIFAR-10's label order when the folders are CIFAR-10's classes, sorted names otherwise."""
    if set(names) == set(CIFAR10_CLASSES):
        return list(CIFAR10_CLASSES)
    return sorted(names)


def _read_split(split_dir: Path, classes: list[str] | None,
                budget: list[int] | None = None) -> tuple[np.ndarray, np.ndarray, list]:
    """One split's images by class folder. `budget` ([bytes left]): each image's decoded size,
    read from its header, is taken from it before the image is decoded."""
    budget = budget if budget is not None else [MAX_DECODED_BYTES, MAX_DECODED_BYTES]
    if not split_dir.is_dir():
        raise DataError(f"image folder {split_dir} does not exist; the folder layout needs both "
                        "train/<class>/ and test/<class>/.")
    found = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    if not found:
        raise DataError(f"{split_dir} has no class folders; put images in {split_dir}/<class>/.")
    classes = classes or _class_order(found)
    if sorted(found) != sorted(classes):
        raise DataError(f"{split_dir} has classes {found}, which differ from the training classes "
                        f"{classes}; make both splits hold the same class folders.")
    images, labels, shape = [], [], None
    for label, name in enumerate(classes):
        files = sorted(p for p in (split_dir / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for p in files:
            regular_file(p, "images")
        if not files:
            raise DataError(f"class folder {split_dir / name} has no .png/.jpg/.jpeg images; "
                            "add images or remove the folder.")
        for p in files:
            with open_image(p) as im:
                budget[0] -= im.size[0] * im.size[1] * 3
                if budget[0] < 0:
                    raise DataError(f"the images of {split_dir.parent} decode to more than "
                                    f"{budget[1] / 2**30:.3g} GiB of pixels (over the limit at "
                                    f"{p.name}); resize them, or use fewer images.")
                arr = decode(im, p)
            if shape is None:
                shape = arr.shape
            elif arr.shape != shape:
                raise DataError(f"{p} is {arr.shape[1]}×{arr.shape[0]} px but earlier images are "
                                f"{shape[1]}×{shape[0]}; resize all images to one size.")
            images.append(arr)
            labels.append(label)
    return np.stack(images), np.asarray(labels, dtype=np.int64), classes


@contextmanager
def open_image(path: Path):
    """A PIL image of a file from anywhere: not an image, unreadable, or (by its header) over
    MAX_PIXELS is a DataError naming the file. Decode it with `decode`."""
    from PIL import Image

    try:
        im = Image.open(path, formats=IMAGE_FORMATS)  # no other decoder is reached
    except Exception as e:  # any decoder error (OSError, zlib.error, struct.error ...): a bad file
        raise DataError(f"{path} is not a readable image ({str(e)[:160]}); replace or remove "
                        "it.") from None
    with im:
        w, h = im.size
        if w * h > MAX_PIXELS:
            raise DataError(f"{path} is {w}×{h} px, over the {MAX_PIXELS // 10**6}-megapixel "
                            "limit for one image; resize it or remove it.")
        yield im


def decode(im, path: Path) -> np.ndarray:
    """The image's pixels as H×W×3 uint8: other modes (grayscale, palette, CMYK, 16-bit) are
    converted to RGB as Keras' own image loaders do; a truncated or corrupt file is a DataError
    naming it."""
    try:
        if im.mode != "RGB":
            im = im.convert("RGB")
        return np.asarray(im, dtype=np.uint8)
    except Exception as e:  # any decoder error: a damaged file
        raise DataError(f"{path} is a damaged image ({str(e)[:160]}); replace or remove it.") from None


def _load_folders(root: Path, max_bytes: int = MAX_DECODED_BYTES) -> Source:
    budget = [max_bytes, max_bytes]  # bytes left, the limit
    xtr, ytr, classes = _read_split(root / "train", None, budget)
    xte, yte, _ = _read_split(root / "test", classes, budget)
    return _checked(xtr, ytr, xte, yte, tuple(classes), "folders", str(root))


def _checked(xtr, ytr, xte, yte, names, layout, location) -> Source:
    for split, x, y in (("training", xtr, ytr), ("test", xte, yte)):
        if len(x) == 0:
            raise DataError(f"the {split} split of {location} has no images; check the data folder.")
        if x.ndim != 4 or x.shape[-1] != 3:
            raise DataError(f"{split} images of {location} have shape {x.shape[1:]}, not H×W×3; "
                            "supply 3-channel RGB images.")
        if min(x.shape[1:3]) < MIN_SIDE:
            raise DataError(f"{split} images of {location} are {x.shape[2]}×{x.shape[1]} px, "
                            f"smaller than ResNet50's minimum {MIN_SIDE}×{MIN_SIDE}; resize them.")
        if len(y) != len(x):
            raise DataError(f"{split} split of {location} has {len(x)} images but {len(y)} labels.")
        if y.min() < 0 or y.max() >= len(names):
            raise DataError(f"{split} labels of {location} run from {y.min()} to {y.max()}, outside "
                            f"0..{len(names) - 1} for {len(names)} classes; fix the labels.")
        missing = sorted(set(range(len(names))) - set(np.unique(y).tolist()))
        if missing:
            raise DataError(f"the {split} split of {location} has no images of class "
                            f"{names[missing[0]]!r}; every class needs images.")
    if xtr.shape[1:] != xte.shape[1:]:
        raise DataError(f"training images of {location} are {xtr.shape[1:]} but test images are "
                        f"{xte.shape[1:]}; use one image size.")
    return Source(np.ascontiguousarray(xtr, dtype=np.uint8), ytr.astype(np.int64),
                  np.ascontiguousarray(xte, dtype=np.uint8), yte.astype(np.int64),
                  tuple(names), layout, location)


# ----------------------------------------------------------------------------- splitting

def _quotas(counts: np.ndarray, n: int) -> np.ndarray:
    """Split n across classes in proportion to counts (largest remainder, ties to lower class)."""
    exact = counts / counts.sum() * n
    q = np.floor(exact).astype(int)
    order = np.argsort(-(exact - q), kind="stable")
    q[order[: n - q.sum()]] += 1
    return q


def stratified_split(labels: np.ndarray, n_total: int, n_val: int, seed: int):
    """Pick n_total indices (stratified), n_val of them for validation. Returns (train, val)."""
    labels = np.asarray(labels)
    if n_total > len(labels):
        raise DataError(f"asked for {n_total} training samples but the source has only "
                        f"{len(labels)}; lower --train-samples.")
    classes, counts = np.unique(labels, return_counts=True)
    take = _quotas(counts, n_total)
    val_take = _quotas(take, n_val)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c, k, kv in zip(classes, take, val_take):
        idx = rng.permutation(np.flatnonzero(labels == c))[:k]
        val.append(idx[:kv])
        train.append(idx[kv:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def make_data(source: Source, train_samples: int, val_samples: int, seed: int) -> Data:
    """The three disjoint sets of one run: train and val from the pool, the whole test split."""
    if not 0 < val_samples < train_samples:
        raise DataError(f"--val-samples ({val_samples}) must be positive and below "
                        f"--train-samples ({train_samples}).")
    tr, va = stratified_split(source.y_train, train_samples, val_samples, seed)
    return Data(source.x_train[tr], source.y_train[tr], source.x_train[va], source.y_train[va],
                source.x_test, source.y_test, source.class_names, tr, va,
                f"{source.layout}:{source.location}")

"""Tiny data with signal, made by the tests themselves."""

from __future__ import annotations

import numpy as np
from PIL import Image

from search.data import CIFAR10_CLASSES, Data, Source, make_data

# One distinct mean colour per class (RGB, 0..255): a frozen random base still separates them.
PALETTE = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                    [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [0, 0, 128]],
                   dtype=np.float32)


def colour_images(labels: np.ndarray, seed: int, size: int = 32, noise: float = 40.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = PALETTE[labels][:, None, None, :]
    x = base + rng.normal(0, noise, size=(len(labels), size, size, 3))
    return np.clip(x, 0, 255).astype(np.uint8)


def tiny_source(n_train: int = 300, n_test: int = 100, size: int = 32, seed: int = 0) -> Source:
    ytr = np.arange(n_train) % 10
    yte = np.arange(n_test) % 10
    return Source(colour_images(ytr, seed, size), ytr.astype(np.int64),
                  colour_images(yte, seed + 1, size), yte.astype(np.int64),
                  CIFAR10_CLASSES, "tiny", "memory")


def tiny_data(n_train: int = 200, n_val: int = 50, seed: int = 0, **kw) -> Data:
    return make_data(tiny_source(**kw), n_train, n_val, seed)


def write_tiny_folders(root, n_train=120, n_test=40):
    s = tiny_source(n_train, n_test)
    for split, x, y in (("train", s.x_train, s.y_train), ("test", s.x_test, s.y_test)):
        for i, (img, lab) in enumerate(zip(x, y)):
            d = root / split / s.class_names[lab]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{i:04d}.png")
    return root

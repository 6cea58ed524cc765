"""Tiny synthetic CIFAR-shaped data with signal (one mean colour per class), for tests and
benchmarks that must not need downloads. A frozen random-weight base still separates the classes."""

from __future__ import annotations

import numpy as np

from search.recipe.data import CIFAR10_CLASSES, Source

PALETTE = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                    [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [0, 0, 128]],
                   dtype=np.float32)  # RGB, 0..255


def colour_images(labels: np.ndarray, seed: int, size: int = 32, noise: float = 40.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = PALETTE[labels][:, None, None, :] + rng.normal(0, noise, size=(len(labels), size, size, 3))
    return np.clip(x, 0, 255).astype(np.uint8)


def colour_source(n_train: int = 300, n_test: int = 100, size: int = 32, seed: int = 0) -> Source:
    ytr = np.arange(n_train) % 10
    yte = np.arange(n_test) % 10
    return Source(colour_images(ytr, seed, size), ytr.astype(np.int64),
                  colour_images(yte, seed + 1, size), yte.astype(np.int64),
                  CIFAR10_CLASSES, "synthetic", "memory")

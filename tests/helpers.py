"""Tiny data with signal, made by the tests themselves."""

from __future__ import annotations

from PIL import Image

from search.recipe.data import Data, Source, make_data
from search.recipe.synthetic import colour_source


def tiny_source(n_train: int = 300, n_test: int = 100, size: int = 32, seed: int = 0) -> Source:
    return colour_source(n_train, n_test, size, seed)


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

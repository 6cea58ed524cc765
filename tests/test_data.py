import pickle

import numpy as np
import pytest
from PIL import Image

from search.errors import DataError
from search.recipe.data import CIFAR10_CLASSES, load_source, make_data, stratified_split

rng = np.random.default_rng(0)
XTR = rng.integers(0, 256, size=(40, 32, 32, 3), dtype=np.uint8)
YTR = np.arange(40) % 10
XTE = rng.integers(0, 256, size=(20, 32, 32, 3), dtype=np.uint8)
YTE = np.arange(20) % 10


def write_python(folder, xtr=XTR, ytr=YTR, xte=XTE, yte=YTE):
    folder.mkdir(parents=True)
    flat = lambda x: x.transpose(0, 3, 1, 2).reshape(len(x), -1)
    for i, sl in enumerate((slice(0, 20), slice(20, 40)), start=1):
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump({b"data": flat(xtr[sl]), b"labels": list(ytr[sl])}, f)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": flat(xte), b"labels": list(yte)}, f)


def write_folders(root, xtr=XTR, ytr=YTR, xte=XTE, yte=YTE, names=CIFAR10_CLASSES):
    for split, x, y in (("train", xtr, ytr), ("test", xte, yte)):
        for i, (img, lab) in enumerate(zip(x, y)):
            d = root / split / names[lab]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{i:04d}.png")  # PNG: lossless, so pixels compare


def test_python_batches_load_in_either_folder(tmp_path):
    write_python(tmp_path / "cifar-10-batches-py")
    for d in (tmp_path, tmp_path / "cifar-10-batches-py"):
        s = load_source(d)
        assert s.layout == "python"
        np.testing.assert_array_equal(s.x_train, XTR)
        np.testing.assert_array_equal(s.y_train, YTR)
        np.testing.assert_array_equal(s.x_test, XTE)


def test_folders_and_python_and_keras_give_identical_arrays(tmp_path, monkeypatch):
    import keras

    write_python(tmp_path / "py" / "cifar-10-batches-py")
    write_folders(tmp_path / "img")
    # Keras' download, as get_file leaves it extracted in its cache (no network here).
    write_python(tmp_path / "keras" / "cifar-10-batches-py-target" / "cifar-10-batches-py")
    monkeypatch.setattr(keras.utils, "get_file",
                        lambda **kw: str(tmp_path / "keras" / kw["fname"]))
    py, img, ks = load_source(tmp_path / "py"), load_source(tmp_path / "img"), load_source(None)
    assert (py.layout, img.layout, ks.layout) == ("python", "folders", "keras")
    # Folder order differs from the file order; compare as sets of (label, pixels) per class.
    for s in (img, ks):
        for c in range(10):
            a = py.x_train[py.y_train == c]
            b = s.x_train[s.y_train == c]
            assert sorted(map(bytes, a)) == sorted(map(bytes, b))
    assert img.class_names == CIFAR10_CLASSES


def test_folder_class_order_sorted_for_unknown_names(tmp_path):
    names = ("zebra", "ant", "moose", "bee", "cow", "dog", "eel", "fox", "gnu", "hen")
    write_folders(tmp_path, names=names)
    s = load_source(tmp_path)
    assert s.class_names == tuple(sorted(names))


def test_split_is_stratified_disjoint_sized_and_seeded():
    labels = np.repeat(np.arange(10), 100)
    tr, va = stratified_split(labels, 500, 100, seed=3)
    assert len(tr) == 400 and len(va) == 100
    assert not set(tr) & set(va)
    assert np.bincount(labels[tr]).tolist() == [40] * 10
    assert np.bincount(labels[va]).tolist() == [10] * 10
    tr2, va2 = stratified_split(labels, 500, 100, seed=3)
    np.testing.assert_array_equal(tr, tr2)
    np.testing.assert_array_equal(va, va2)
    tr3, _ = stratified_split(labels, 500, 100, seed=4)
    assert not np.array_equal(tr, tr3)


def test_make_data_keeps_test_whole_and_separate(tmp_path):
    write_python(tmp_path / "p")
    d = make_data(load_source(tmp_path / "p"), 30, 10, seed=0)
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (20, 10, 20)
    np.testing.assert_array_equal(d.x_train, XTR[d.train_idx])


# ---- bad data: one clear sentence each


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_source(tmp_path / "nope")


def test_no_images(tmp_path):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="has no .png/.jpg/.jpeg images"):
        load_source(tmp_path)


def test_empty_class(tmp_path):
    write_folders(tmp_path)
    (tmp_path / "train" / "frog2").mkdir()
    (tmp_path / "test" / "frog2").mkdir()
    with pytest.raises(DataError, match="frog2 has no"):
        load_source(tmp_path)


def test_fewer_images_than_requested(tmp_path):
    write_python(tmp_path / "p")
    with pytest.raises(DataError, match="only 40"):
        make_data(load_source(tmp_path / "p"), 100, 10, 0)


def test_too_small(tmp_path):
    small = rng.integers(0, 256, size=(40, 16, 16, 3), dtype=np.uint8)
    write_folders(tmp_path, xtr=small, xte=small[:20])
    with pytest.raises(DataError, match="smaller than"):
        load_source(tmp_path)


def test_labels_out_of_range(tmp_path):
    write_python(tmp_path / "p", ytr=np.where(YTR == 3, 12, YTR))
    with pytest.raises(DataError, match="outside 0..9"):
        load_source(tmp_path / "p")


def test_keras_download_failure_is_a_sentence(monkeypatch):
    import keras

    def boom(**kwargs):
        raise OSError("no network")

    monkeypatch.setattr(keras.utils, "get_file", boom)
    with pytest.raises(DataError, match="--data-dir"):
        load_source(None)


def test_images_in_other_modes_are_converted_to_rgb_as_keras_loads_them(tmp_path):
    """Grayscale, palette and CMYK images are legitimate: converted to RGB (PIL's convert, as
    keras.utils.load_img does), never refused."""
    from PIL import Image

    root = tmp_path / "img"
    write_folders(root)
    first = sorted((root / "train" / "airplane").iterdir())[0]
    rgb = np.asarray(Image.open(first).convert("RGB"))
    for mode, suffix in (("L", ".png"), ("P", ".png"), ("CMYK", ".jpg")):
        target = first.with_name(f"other_{mode}{suffix}")
        Image.open(first).convert(mode).save(target)
    s = load_source(root)
    assert s.x_train.shape[1:] == (32, 32, 3)
    gray = np.asarray(Image.open(first).convert("L").convert("RGB"))
    assert any(np.array_equal(x, gray) for x in s.x_train)  # three equal channels
    assert any(np.array_equal(x, rgb) for x in s.x_train)


def test_a_folder_whose_images_decode_past_the_budget_is_refused_before_it_is_decoded(tmp_path):
    write_folders(tmp_path)
    with pytest.raises(DataError, match="decode to more than"):
        load_source(tmp_path, max_bytes=30 * 32 * 32 * 3)  # 30 images' worth, of 60
    s = load_source(tmp_path, max_bytes=60 * 32 * 32 * 3)
    assert len(s.x_train) + len(s.x_test) == 60

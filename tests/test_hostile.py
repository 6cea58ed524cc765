"""Files and flags from anywhere: every command answers bad input with one sentence, exit status 2,
no traceback, and nothing written; a crafted pickle never runs."""

import json
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from helpers import tiny_source, write_tiny_folders
from search.cli import main


class Exploit:
    """Unpickling this calls Path.touch(marker): what a crafted data_batch_1 could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        from pathlib import Path

        return Path.touch, (Path(self.marker),)


class Reduce:
    """Pickles as `fn(*args)` (then BUILD with `state`, if given): a crafted batch's payload."""

    def __init__(self, fn, args, state=None):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


def memory_bombs():
    """Batches that once passed every check and then allocated gigabytes: an array claiming far
    more elements than its bytes (rebuilt with stride 0 it fits every shape check), and a number
    of a 1 GB void type."""
    from numpy._core import multiarray

    n = 10**6  # 3 GB at 3,072 bytes an image, from a file of a few KB
    labels = [0] * n
    strided = Reduce(np.ndarray, ((n, 3072), "u1", b"\0" * 3072, 0, (0, 1)))
    claimed = Reduce(multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                     (1, (n, 3072), np.dtype("u1"), False, b"\0" * 3072))
    void = Reduce(multiarray.scalar, (np.dtype("V1000000000"),))
    return ({b"data": strided, b"labels": labels}, {b"data": claimed, b"labels": labels},
            {b"data": np.zeros((5, 3072), "u1"), b"labels": [void] * 5})


def fifo(path):
    import os

    os.mkfifo(path)


def python_batches(root, poison=None):
    """cifar-10-batches-py/ with real-shaped batches; `poison` replaces data_batch_1's content."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    s = tiny_source(60, 20)
    for name, x, y in (("data_batch_1", s.x_train, s.y_train), ("test_batch", s.x_test, s.y_test)):
        batch = {b"data": x.transpose(0, 3, 1, 2).reshape(len(x), -1), b"labels": y.tolist()}
        (d / name).write_bytes(pickle.dumps(poison if poison is not None and name == "data_batch_1"
                                            else batch))
    return root


def folders_with(root, name, write):
    """Tiny image folders with one extra file train/airplane/<name> written by write(path)."""
    write_tiny_folders(root, 40, 20)
    write(root / "train" / "airplane" / name)
    return root


def truncated_jpeg(path):
    Image.fromarray(tiny_source(10, 10).x_train[0]).save(path.with_suffix(".tmp.jpg"), quality=95)
    data = path.with_suffix(".tmp.jpg").read_bytes()
    path.with_suffix(".tmp.jpg").unlink()
    path.write_bytes(data[: len(data) // 2])


def huge_png(path):  # a header of 7000×7000 px: over the 40-megapixel limit before any decoding
    Image.new("1", (7000, 7000)).save(path)


def tiny_model(path):
    import keras

    path.parent.mkdir(parents=True)
    keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(),
                      keras.layers.Dense(10, activation="softmax")]).save(path)
    return path


def any_size_model(path):
    import keras

    path.parent.mkdir(parents=True)
    inp = keras.Input((None, None, 3))
    out = keras.layers.Dense(10, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inp))
    keras.Model(inp, out).save(path)
    return path


def three_classes(root):
    s = tiny_source(30, 15)
    for split, x, y in (("train", s.x_train, s.y_train), ("test", s.x_test, s.y_test)):
        for i, (img, lab) in enumerate(zip(x, y)):
            d = root / split / f"c{lab % 3}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{i:04d}.png")
    return root


def setup_files(tmp):
    """Everything the table's cases point at, made once; returns {name: path}."""
    f = {}
    f["bad_yaml"] = tmp / "bad.yaml"
    f["bad_yaml"].write_text("head_lr: [1, 2\n")
    f["binary_yaml"] = tmp / "binary.yaml"
    f["binary_yaml"].write_bytes(b"\xff\xfe\x00garbage\x80")
    for key, text in (("unknown_key", "learning_rate: 0.1\n"), ("neg_seed", "seed: -1\n"),
                      ("big_zoom", "aug_zoom: 2.0\n"), ("inf_lr", "head_lr: .inf\n"),
                      ("big_seed", "seed: 4294967296\n"), ("nan_min_lr", "min_lr: .nan\n")):
        f[key] = tmp / f"{key}.yaml"
        f[key].write_text(text)
    f["space_fixed"] = tmp / "space_fixed.yaml"
    f["space_fixed"].write_text(f"base_config: {ROOT / 'configs' / 'seed.yaml'}\n"
                                "params:\n  train_samples: {type: int, low: 100, high: 200}\n")
    space_head = f"base_config: {ROOT / 'configs' / 'seed.yaml'}\nparams:\n"
    for key, text in (
            ("float_step", "  unfreeze_depth: {type: int, low: 0, high: 20, step: 2.5}\n"),
            ("too_deep", "  unfreeze_stages: {type: int, low: 0, high: 5}\n"
                         "  unfreeze_step: {type: categorical, choices: [10, 40]}\n"
                         "  stage_lr: {type: float, low: 1.0e-5, high: 1.0e-3, log: true, "
                         "per_stage: true}\n")):
        f[key] = tmp / f"{key}.yaml"
        f[key].write_text(space_head + text)
    f["long_int"] = tmp / "long_int.yaml"
    f["long_int"].write_text("seed: " + "9" * 5000 + "\n")
    f["deep_yaml"] = tmp / "deep.yaml"
    f["deep_yaml"].write_text("seed: " + "[" * 50_000 + "]" * 50_000 + "\n")
    f["alias_bomb"] = tmp / "alias_bomb.yaml"  # 9^9 elements if ever expanded
    lines = ["stage_lrs:", '  - &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"  - &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    f["alias_bomb"].write_text("\n".join(lines) + "\n")
    f["garbage_h5"] = tmp / "garbage.weights.h5"
    f["garbage_h5"].write_bytes(b"not an hdf5 file at all")
    f["garbage_keras"] = tmp / "garbage.keras"
    f["garbage_keras"].write_bytes(b"PK\x03\x04 not really a zip")
    f["zip_keras"] = tmp / "wrong.keras"  # a real zip of the wrong kind
    with zipfile.ZipFile(f["zip_keras"], "w") as z:
        z.writestr("hello.txt", "not a Keras model")
    f["model"] = tiny_model(tmp / "m" / "model.keras")
    f["model10"] = tiny_model(tmp / "m10" / "model.keras")  # 10 outputs, no classes.json
    f["any_size"] = any_size_model(tmp / "any" / "model.keras")
    f["three"] = three_classes(tmp / "three")
    (tmp / "m" / "classes.json").write_text('{"not": "a list"')
    f["image"] = tmp / "cat.png"
    Image.fromarray(tiny_source(10, 10).x_train[0]).save(f["image"])
    f["data"] = write_tiny_folders(tmp / "good", 40, 20)
    f["marker"] = tmp / "pwned"
    f["evil"] = python_batches(tmp / "evil", poison=Exploit(f["marker"]))
    f["not_a_dict"] = python_batches(tmp / "list", poison=[1, 2, 3])
    f["wrong_dtype"] = python_batches(tmp / "dtype", poison={b"data": np.zeros((5, 3072), "float64"),
                                                             b"labels": [0] * 5})
    for key, bomb in zip(("strided_bomb", "claimed_bomb", "void_bomb"), memory_bombs()):
        f[key] = python_batches(tmp / key, poison=bomb)
    f["huge_label"] = python_batches(tmp / "huge_label", poison={
        b"data": np.zeros((5, 3072), "u1"), b"labels": [10**30] * 5})
    f["fifo_batch"] = python_batches(tmp / "fifo_batch")
    fifo(f["fifo_batch"] / "cifar-10-batches-py" / "data_batch_2")
    f["fifo_image"] = folders_with(tmp / "fifo_image", "x.png", fifo)
    f["gif_as_png"] = folders_with(tmp / "gif", "x.png", lambda p: Image.new("RGB", (32, 32)).save(
        p, format="GIF"))
    f["not_image"] = folders_with(tmp / "notimg", "x.jpg", lambda p: p.write_text("hello"))
    f["truncated"] = folders_with(tmp / "trunc", "x.jpg", truncated_jpeg)
    f["bomb"] = folders_with(tmp / "bomb", "x.png", huge_png)
    return f


TRAIN = ["train", "--weights", "none", "--train-samples", "40", "--val-samples", "10"]
# (id, argv with {name} placeholders, a phrase the sentence must hold)
CASES = [
    ("config-missing", ["train", "--config", "{tmp}/nope.yaml"], "does not exist"),
    ("config-bad-yaml", ["train", "--config", "{bad_yaml}"], "not valid"),
    ("config-binary", ["train", "--config", "{binary_yaml}"], "not valid"),
    ("config-unknown-key", ["train", "--config", "{unknown_key}"], "unknown config key"),
    ("config-negative-seed", ["train", "--config", "{neg_seed}"], "'seed'"),
    ("config-seed-too-big", ["train", "--config", "{big_seed}"], "'seed'"),
    ("config-zoom-over-1", ["train", "--config", "{big_zoom}"], "'aug_zoom'"),
    ("config-inf-lr", ["train", "--config", "{inf_lr}"], "'head_lr'"),
    ("config-nan-min-lr", ["train", "--config", "{nan_min_lr}"], "'min_lr'"),
    ("config-5000-digit-integer", ["train", "--config", "{long_int}"], "numbers too large"),
    ("config-billion-weight-head", [*TRAIN, "--set", "head_width=16384", "--set", "head_layers=8"],
     "1,913 million weights"),
    ("config-nested-too-deeply", ["train", "--config", "{deep_yaml}"], "nested too deeply"),
    ("config-alias-bomb", ["train", "--config", "{alias_bomb}"], "'stage_lrs' must be"),
    ("seed-flag-negative", [*TRAIN, "--seed", "-5"], "'seed'"),
    ("train-set-unknown-key", [*TRAIN, "--set", "learning_rate=0.1"],
     "unknown config key 'learning_rate'"),
    ("train-set-wrong-type", [*TRAIN, "--set", "head_epochs=many"], "'head_epochs' must be int"),
    ("train-set-malformed", [*TRAIN, "--set", "head_epochs"], "--set expects KEY=VALUE"),
    ("search-set-searched-key", ["search", "--set", "head_lr=0.1"], "the space searches 'head_lr'"),
    ("finalize-set-fixed-key", ["finalize", "--set", "split_seed=3"],
     "the study fixes 'split_seed'"),
    ("train-cache-past-the-disk", [*TRAIN, "--image-size", "1024", "--aug-views", "64",
                                   "--data-dir", "{data}"], "the cache of the frozen part would need"),
    ("search-cache-past-the-memory", ["search", "--image-size", "1024", "--aug-views", "64",
                                      "--cache-dir", "none", "--weights", "none", "--data-dir",
                                      "{data}", "--train-samples", "40", "--val-samples", "10"],
     "of this machine's memory"),
    ("weights-missing", ["train", "--weights", "{tmp}/none.h5"], "does not exist"),
    ("weights-garbage", ["train", "--weights", "{garbage_h5}"], "could not be loaded"),
    ("data-missing", [*TRAIN, "--data-dir", "{tmp}/nodata"], "does not exist"),
    ("data-malicious-pickle", [*TRAIN, "--data-dir", "{evil}"], "never holds"),
    ("data-pickle-not-a-dict", [*TRAIN, "--data-dir", "{not_a_dict}"], "not a CIFAR-10 batch"),
    ("data-pickle-wrong-dtype", [*TRAIN, "--data-dir", "{wrong_dtype}"], "not a uint8 array"),
    ("data-pickle-strided-array", [*TRAIN, "--data-dir", "{strided_bomb}"], "not a readable"),
    ("data-pickle-array-over-its-bytes", [*TRAIN, "--data-dir", "{claimed_bomb}"],
     "does not match its 3072 bytes"),
    ("data-pickle-void-scalar", [*TRAIN, "--data-dir", "{void_bomb}"], "element type"),
    ("data-label-10-to-the-30", [*TRAIN, "--data-dir", "{huge_label}"], "class numbers"),
    ("data-fifo-batch", [*TRAIN, "--data-dir", "{fifo_batch}"], "not a regular file"),
    ("data-fifo-image", [*TRAIN, "--data-dir", "{fifo_image}"], "not a regular file"),
    ("data-gif-named-png", [*TRAIN, "--data-dir", "{gif_as_png}"], "x.png is not a readable image"),
    ("data-not-an-image", [*TRAIN, "--data-dir", "{not_image}"], "x.jpg is not a readable image"),
    ("data-truncated-image", [*TRAIN, "--data-dir", "{truncated}"], "x.jpg is a damaged image"),
    ("data-decompression-bomb", [*TRAIN, "--data-dir", "{bomb}"], "megapixel limit"),
    ("search-name-dotdot", ["search", "--study-name", "../x"], "not a plain name"),
    ("search-name-absolute", ["search", "--study-name", "/abs/x"], "not a plain name"),
    ("search-name-dot", ["search", "--study-name", "."], "not a plain name"),
    ("search-space-missing", ["search", "--space", "{tmp}/nope.yaml"], "does not exist"),
    ("search-space-fixed-key", ["search", "--space", "{space_fixed}"], "cannot be searched"),
    ("search-negative-trials", ["search", "--trials", "-1"], "--trials"),
    ("search-space-float-step-on-int", ["search", "--space", "{float_step}"], "an integer"),
    ("search-space-deeper-than-the-base", ["search", "--space", "{too_deep}"], "past the 174"),
    ("search-zero-aug-views", ["search", "--aug-views", "0"], "--aug-views"),
    ("search-negative-cache-mem", ["search", "--cache-mem", "-1"], "--cache-mem"),
    ("search-negative-heartbeat", ["search", "--heartbeat", "-1"], "--heartbeat"),
    ("search-heartbeat-under-the-minimum", ["search", "--heartbeat", "1"], "at least 5 seconds"),
    ("search-heartbeat-on-a-journal", ["search", "--heartbeat", "30", "--storage",
                                       "journal:{tmp}/j.log"], "the journal storage has none"),
    ("search-negative-timeout", ["search", "--timeout", "-1"], "--timeout"),
    ("search-zero-epoch-budget", ["search", "--epoch-budget", "0"], "--epoch-budget"),
    ("search-jobs-in-process", ["search", "--jobs", "2", "--no-isolate"], "--jobs"),
    ("search-negative-max-failures", ["search", "--max-failures", "-1"], "--max-failures"),
    ("search-unreachable-storage",
     ["search", "--storage", "postgresql+psycopg://me:hunter2@127.0.0.1:1/db", "--weights", "none",
      "--data-dir", "{data}", "--train-samples", "40", "--val-samples", "10"], "port 1"),
    ("search-track-unknown-kind", ["search", "--track", "wandb=runs"], "--track expects"),
    ("search-track-unreachable-mlflow",
     ["search", "--track", "mlflow=http://me:hunter2@127.0.0.1:1", "--weights", "none",
      "--data-dir", "{data}", "--train-samples", "40", "--val-samples", "10"],
     "cannot reach the MLflow tracking server"),
    ("search-zero-progress-every", ["search", "--progress-every", "0"], "--progress-every"),
    ("finalize-track-malformed", ["finalize", "--track", "tensorboard="], "--track expects"),
    ("finalize-no-study", ["finalize"], "no study storage"),
    ("export-no-study", ["export"], "no study storage"),
    ("export-bad-name", ["export", "--study-name", "a/b"], "not a plain name"),
    ("export-onnx-wrong-suffix", ["export", "--format", "onnx", "--model", "{model}", "--out",
                                  "{tmp}/m.tflite"], "should end in .onnx"),
    ("export-litert-no-model", ["export", "--format", "litert"], "has no retrained model yet"),
    ("export-config-with-model", ["export", "--model", "{model}"], "--model is for --format"),
    ("report-no-study", ["report"], "no study storage"),
    ("dashboard-no-study", ["dashboard"], "no study storage"),
    ("evaluate-no-study", ["evaluate"], "no study storage"),
    ("evaluate-model-missing", ["evaluate", "--model", "{tmp}/none.keras"], "does not exist"),
    ("evaluate-model-garbage", ["evaluate", "--model", "{garbage_keras}"], "could not be loaded"),
    ("predict-model-wrong-zip", ["predict", "--model", "{zip_keras}", "{image}"],
     "could not be loaded"),
    ("predict-bad-classes-json", ["predict", "--model", "{model}", "{image}"], "classes.json"),
    ("predict-model-of-any-input-size", ["predict", "--model", "{any_size}", "{image}"],
     "not images of a fixed size"),
    ("evaluate-model-of-other-classes", ["evaluate", "--model", "{model10}", "--data-dir",
                                         "{three}"], "gives 10 outputs but the data has 3"),
    ("bench-data-missing", ["bench", "--data-dir", "{tmp}/nodata", "--weights", "none"],
     "does not exist"),
    ("compare-zero-budget", ["compare", "--budget", "0"], "--budget"),
    ("quality-unknown-setting", ["quality", "--settings", "hyperband,nope"], "unknown setting"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return setup_files(tmp_path_factory.mktemp("hostile"))


def files_under(root):
    return sorted(p for p in root.rglob("*")) if root.exists() else []


# Every case runs in one child process under a 4 GiB address-space limit, each under a 60 s
# alarm, in a fresh folder of its own: what it printed, its exit status, what it left there.
CHILD = r"""
import contextlib, io, json, os, resource, signal, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))
sys.path.insert(0, sys.argv[2])
from search.cli import main

def alarm(*a):
    raise TimeoutError("over 60 s")

signal.signal(signal.SIGALRM, alarm)
results = {}
for case in json.loads(Path(sys.argv[1]).read_text()):
    folder = Path(case["dir"])
    folder.mkdir(parents=True)
    os.chdir(folder)  # relative defaults (results/) land here
    out, err = io.StringIO(), io.StringIO()
    signal.alarm(60)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(case["argv"])
    except BaseException as e:
        rc = f"raised {type(e).__name__}: {e}"
    finally:
        signal.alarm(0)
    left = sorted(str(p) for p in folder.rglob("*"))
    results[case["id"]] = {"rc": rc, "out": out.getvalue(), "err": err.getvalue(), "left": left}
Path(sys.argv[3]).write_text(json.dumps(results))
"""


@pytest.fixture(scope="module")
def table(files, tmp_path_factory):
    root = tmp_path_factory.mktemp("cases")
    cases = []
    for case_id, argv, _ in CASES:
        folder = root / case_id
        argv = [a.format(tmp=folder, **files) for a in argv]
        if "--results-dir" not in argv and argv[0] not in ("predict",):
            argv += ["--results-dir", str(folder / "res")]
        cases.append({"id": case_id, "argv": argv, "dir": str(folder)})
    (root / "cases.json").write_text(json.dumps(cases))
    before = files_under(files["bad_yaml"].parent)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(root / "cases.json"), str(ROOT),
                           str(root / "results.json")], cwd=root, capture_output=True,
                          text=True, timeout=60 * len(CASES))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert files_under(files["bad_yaml"].parent) == before  # no input touched
    assert not files["marker"].exists()  # the crafted pickle ran nothing
    return json.loads((root / "results.json").read_text())


@pytest.mark.parametrize("case_id", [c[0] for c in CASES])
def test_bad_input_is_one_sentence_exit_2_and_writes_nothing(case_id, table):
    needle = next(c[2] for c in CASES if c[0] == case_id)
    r = table[case_id]
    err, out = r["err"], r["out"]
    assert r["rc"] == 2, r
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and out == "", (out, err)
    assert needle in err, err
    assert "hunter2" not in err
    assert r["left"] == [], r["left"]  # no results, no stray files


def test_the_table_covers_every_command():
    from search.cli.main import MODULES

    commands = {name for m in MODULES for name in m.HANDLERS}
    assert commands == {c[1][0] for c in CASES} and len(CASES) >= 70


def test_the_safe_unpickler_still_reads_real_batches(tmp_path):
    from search.recipe.data import load_source

    s = load_source(python_batches(tmp_path))
    ref = tiny_source(60, 20)
    np.testing.assert_array_equal(s.x_train, ref.x_train)
    np.testing.assert_array_equal(s.y_test, ref.y_test)


def test_keras_s_cached_download_is_read_by_the_checked_loader(tmp_path, monkeypatch):
    """Without --data-dir the data comes from Keras' CIFAR-10 cache; a batch planted there (in
    a temporary KERAS_HOME) is refused by our unpickler, never run."""
    import keras

    home = tmp_path / "keras_home"
    cached = home / "datasets" / "cifar-10-batches-py-target"
    marker = tmp_path / "pwned"
    python_batches(cached, poison=Exploit(marker))
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setattr(keras.utils, "get_file", lambda **kw: str(home / "datasets" / kw["fname"]))
    assert main([*TRAIN, "--results-dir", str(tmp_path / "res")]) == 2
    assert not marker.exists() and not (tmp_path / "res").exists()

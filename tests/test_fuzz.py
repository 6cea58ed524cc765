"""A seeded fuzz test of every loader that reads a file from anywhere: byte flips, truncations and
insertions applied to a valid CIFAR batch, config, space file and image. Each mutated file must
load or be refused with a UserError: never another exception, never a hang, never a file
written, never an allocation beyond the budget (the cases run in a child process under a 4 GiB
address-space limit, each under its own alarm)."""

import json
import pickle
import subprocess
import sys

import numpy as np
from PIL import Image

from conftest import ROOT
from helpers import tiny_source

CASES = 320  # 80 per kind
CHILD = r"""
import json, resource, signal, sys, traceback
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))
sys.path.insert(0, sys.argv[2])
from search.errors import UserError
from search.recipe.config import TrainConfig
from search.recipe.data import decode, load_source, open_image
from search.tuning.space import load_space

def image(p):
    with open_image(p) as im:
        decode(im, p)

LOADERS = {"batch": lambda p: load_source(p.parent.parent), "config": TrainConfig.load,
           "space": load_space, "image": image}

def alarm(*a):
    raise TimeoutError("over 10 s")

signal.signal(signal.SIGALRM, alarm)
counts, bad = {"ok": 0, "refused": 0}, []
for line in Path(sys.argv[1]).read_text().splitlines():
    kind, path = line.split("\t")
    signal.alarm(10)
    try:
        LOADERS[kind](Path(path))
        counts["ok"] += 1
    except UserError:
        counts["refused"] += 1
    except BaseException as e:
        bad.append(f"{kind} {path}: {type(e).__name__}: {str(e)[:200]}")
    finally:
        signal.alarm(0)
print(json.dumps({"counts": counts, "bad": bad}))
"""


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        op, at = rng.integers(0, 3), int(rng.integers(0, max(len(b), 1)))
        if op == 0 and b:  # flip some bits of a byte
            b[at] ^= int(rng.integers(1, 256))
        elif op == 1:  # truncate
            del b[at:]
        else:  # insert random bytes
            b[at:at] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    return bytes(b)


def originals(tmp) -> dict[str, tuple[str, bytes]]:
    s = tiny_source(30, 10)
    batch = pickle.dumps({b"data": s.x_train.transpose(0, 3, 1, 2).reshape(30, -1),
                          b"labels": s.y_train.tolist(), b"batch_label": b"training batch 1"},
                         protocol=2)
    config = (ROOT / "configs" / "seed.yaml").read_bytes()
    space = (ROOT / "spaces" / "default.yaml").read_bytes().replace(
        b"base_config: ../configs/seed.yaml", f"base_config: {ROOT / 'configs' / 'seed.yaml'}".encode())
    Image.fromarray(s.x_train[0]).save(tmp / "x.png")
    Image.fromarray(s.x_train[1]).save(tmp / "x.jpg", quality=90)
    return {"batch": ("data_batch_1", batch), "config": ("c.yaml", config),
            "space": ("s.yaml", space), "image": ("x.png", (tmp / "x.png").read_bytes()),
            "jpeg": ("x.jpg", (tmp / "x.jpg").read_bytes())}


def test_mutated_files_load_or_are_refused_with_a_sentence(tmp_path):
    rng = np.random.default_rng(20261130)
    base = originals(tmp_path)
    test_batch = pickle.dumps({b"data": np.zeros((10, 3072), np.uint8), b"labels": [0] * 10})
    lines = []
    for i in range(CASES):
        kind = ("batch", "config", "space", "image", "jpeg")[i % 5]
        name, data = base[kind]
        folder = tmp_path / "cases" / f"{i:04d}" / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        (folder / name).write_bytes(mutate(data, rng))
        if kind == "batch":
            (folder / "test_batch").write_bytes(test_batch)
        lines.append(f"{'image' if kind == 'jpeg' else kind}\t{folder / name}")
    listing = tmp_path / "cases.txt"
    listing.write_text("\n".join(lines))
    before = sorted(p for p in (tmp_path / "cases").rglob("*"))
    out = subprocess.run([sys.executable, "-c", CHILD, str(listing), str(ROOT)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["bad"] == []
    assert sum(result["counts"].values()) == CASES and result["counts"]["refused"] > CASES // 4
    assert sorted(p for p in (tmp_path / "cases").rglob("*")) == before  # nothing written

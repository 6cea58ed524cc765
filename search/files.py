"""The one atomic writer: every file the project writes goes through here.

A file is written under a unique temporary name in its target folder (so two processes writing
the same name never share a temporary file), then renamed over the target: a reader sees the old
file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from search.errors import UserError


def within(root: str | Path, path: str | Path) -> Path:
    """`path`, after checking that it does not lead out of `root` through a link planted inside
    it (`root` itself may be a link: a results folder on another disk). A UserError otherwise."""
    real_root, real = Path(root).resolve(), Path(path).resolve()
    if real != real_root and real_root not in real.parents:
        raise UserError(f"{path} leads outside {root} (through a link inside it); remove the link, "
                        "or pass a results or cache folder of your own.")
    return Path(path)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` (same suffix, so writers that go by it still work); on a
    clean exit it replaces `path`, on an error it is removed. The writer may make a file or a
    folder there; a folder replaces a folder (a link is replaced, never followed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        if tmp.is_dir() and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def write_atomic(path: str | Path, text: str | bytes) -> None:
    with atomic_path(path) as tmp:
        if isinstance(text, bytes):
            tmp.write_bytes(text)
        else:
            tmp.write_text(text)


def save_figure(fig, path: str | Path, **savefig_kwargs) -> Path:
    """A matplotlib figure written atomically, then closed (its memory released)."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, **savefig_kwargs)
    plt.close(fig)
    return Path(path)


def write_json(path: str | Path, obj) -> None:
    write_atomic(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)

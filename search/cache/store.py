"""The store of the exact cache of the frozen part of ResNet50 (what it holds: search.cache.features).

In every stage the layers below the unfreeze boundary are frozen and run in inference mode, so for
a given input image their output never changes during a study. We run that prefix once per
(data split, image size, weights, boundary, augmentation view) and train only the suffix and the
head on its outputs: the same maths as the full model, on the same inputs.

Augmentation: each training image gets `views` seeded augmented copies (Keras' own random layers,
seeded per view), pushed through the prefix once; each epoch draws one view per image
(search.recipe.feed.batches). Validation and test use the plain image.

Store: in memory, and on disk under `directory` when given (one folder per entry, written under a
temporary name and renamed, so a partial entry is never read). Entries read from disk are
memory-mapped (no copy: a trial's child process starts in a fraction of a second and all processes
share one copy in the OS page cache); entries computed here are written, then held in memory up
to `mem_limit_mb` and mapped from disk beyond it. The default is 0 (all mapped): a copy held here
only doubles the page cache's, for no speed (docs/benchmarks.md, "The cache held in memory against
mapped"). Without a directory every entry is held in memory. The key covers the data's content,
the weights (file hash or 'imagenet'), image size, boundary layer names, view index and
augmentation settings, dtype and library versions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: fills are not shared between processes there
    fcntl = None

from search.errors import UserError
from search.files import within

FORMAT = 4  # bump when the way entries are computed changes (4: one network per worker)


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()[:32]


def versions() -> dict:
    import keras
    import tensorflow as tf

    return {"keras": keras.__version__, "tensorflow": tf.__version__, "numpy": np.__version__}


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    fill_seconds: float = 0.0

    def copy(self) -> CacheStats:
        return CacheStats(self.hits, self.misses, self.fill_seconds)


class FeatureCache:
    def __init__(self, directory: str | Path | None = None, mem_limit_mb: float = 0,
                 views: int = 4, dtype: str = "float32", xla: bool = False):
        """xla: the stage programs that train on this cache compile with XLA (jit_compile); it
        changes how stages run, not what is cached (off by default: slower on 2-core CPUs,
        docs/benchmarks.md)."""
        if views < 1:
            raise ValueError("views must be at least 1")
        if dtype not in ("float32", "float16"):
            raise ValueError("dtype must be float32 or float16")
        self.directory = Path(directory) if directory else None
        self.mem_limit = mem_limit_mb * 2**20
        self.views, self.dtype, self.xla = views, dtype, xla
        self._mem: dict[str, list[np.ndarray]] = {}
        self._mem_bytes = 0
        self._hashes: dict[tuple, str] = {}  # (weights file, mtime, size) -> content hash
        self.stats = CacheStats()

    def weights_id(self, weights: str) -> str:
        """'imagenet', 'none', or the content hash of a weights file (read once per file)."""
        if weights == "imagenet" or weights.lower() == "none":
            return weights.lower()
        p = Path(weights).expanduser().resolve()
        st = p.stat()
        key = (str(p), st.st_mtime_ns, st.st_size)
        if key not in self._hashes:
            self._hashes[key] = file_hash(p)
        return self._hashes[key]

    def estimate_bytes(self, image_size: int, images: int, boundaries: int) -> int:
        """About what a study's cache will hold: every training image in every view and every
        validation image (`images` in all), at each of `boundaries` stage boundaries, each about
        twice the base's output (a cut inside a block carries two tensors; conv4 maps are 2x)."""
        per = (max(image_size // 32, 1) ** 2) * 2048 * np.dtype(self.dtype).itemsize * 2
        return images * per * boundaries

    def check_room(self, image_size: int, images: int, boundaries: int) -> None:
        """Refuse, before any work, a cache that cannot fit where it goes (the disk under its
        folder, or this machine's memory without one)."""
        need = self.estimate_bytes(image_size, images, boundaries)
        if self.directory is not None:
            probe = self.directory
            while not probe.exists() and probe != probe.parent:
                probe = probe.parent
            room, where = shutil.disk_usage(probe).free, f"free on the disk of {self.directory}"
        else:
            room = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
            where = "of this machine's memory (--cache-dir none)"
        if need > room:
            raise UserError(f"the cache of the frozen part would need about {need / 2**30:,.0f} GiB "
                            f"({images:,} images and views at {image_size} px, {boundaries} stage "
                            f"boundaries), over the {room / 2**30:,.0f} GiB {where}; lower "
                            "--image-size or --aug-views, pass --cache-dir on a larger disk, or "
                            "--no-cache.")

    def args(self) -> dict:
        """Constructor arguments: a child process opens the same store with them."""
        return {"directory": self.directory, "mem_limit_mb": self.mem_limit / 2**20,
                "views": self.views, "dtype": self.dtype, "xla": self.xla}

    # ----- keys
    def key(self, parts: dict) -> str:
        blob = json.dumps({**parts, "dtype": self.dtype, "versions": versions(), "format": FORMAT},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    @property
    def memory_bytes(self) -> int:
        return self._mem_bytes

    def disk_bytes(self) -> int:
        if self.directory is None or not self.directory.is_dir():
            return 0
        return sum(f.stat().st_size for f in self.directory.rglob("*.npy"))

    # ----- get / put
    def get(self, parts: dict, compute: Callable[[], list[np.ndarray]],
            wait: bool = True) -> list[np.ndarray] | None:
        """The entry for `parts`, computed by `compute` on a miss. Without `wait`, None when
        another process is filling it right now."""
        k = self.key(parts)
        if k in self._mem:
            self.stats.hits += 1
            return self._mem[k]
        if self._on_disk(k):
            self.stats.hits += 1
            return self._load(k)
        with self._filling(k, wait) as mine:  # workers that start together fill an entry once
            if not mine:
                return None
            if self._on_disk(k):  # another process filled it while this one waited
                self.stats.hits += 1
                return self._load(k)
            self.stats.misses += 1
            t0 = time.perf_counter()
            arrays = [np.ascontiguousarray(a, dtype=self.dtype) for a in compute()]
            self.stats.fill_seconds += time.perf_counter() - t0
            if self.directory is not None:
                self._write(k, arrays, parts)
                if not self._fits(arrays):
                    return self._load(k)  # memory-mapped from disk
            return self._hold(k, arrays)  # without a directory, held even over the limit

    def get_many(self, items: list[tuple[dict, Callable[[], list[np.ndarray]]]]) -> list:
        """Several entries, in order. An entry another process is filling now is left for last
        (by then most likely on disk), so workers that start together split a fill between them
        rather than queue behind one another."""
        out = [self.get(parts, compute, wait=False) for parts, compute in items]
        return [got if got is not None else self.get(*items[i]) for i, got in enumerate(out)]

    @contextlib.contextmanager
    def _filling(self, k: str, wait: bool = True):
        """An exclusive lock on entry `k` across processes (a lock file beside it, flock'd; the
        lock goes with the process if it dies). Yields whether this process holds it (without
        `wait`, False when another does). Always held without a directory or flock."""
        if self.directory is None or fcntl is None:
            yield True
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / f".{k}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # releases the lock

    def _on_disk(self, k: str) -> bool:
        """Whether entry `k` is complete on disk (checked not to be an entry planted as a link)."""
        if self.directory is None or not (self.directory / k / "meta.json").is_file():
            return False
        within(self.directory, self.directory / k)
        return True

    def _fits(self, arrays) -> bool:
        return self._mem_bytes + sum(a.nbytes for a in arrays) <= self.mem_limit

    def _hold(self, k: str, arrays: list[np.ndarray]) -> list[np.ndarray]:
        self._mem[k] = arrays
        self._mem_bytes += sum(a.nbytes for a in arrays)
        return arrays

    def _load(self, k: str) -> list[np.ndarray]:
        """An entry on disk, memory-mapped: its pages live in the OS page cache, shared by every
        process on the machine (isolated trials, other workers) and outside our budget."""
        d = self.directory / k
        n = json.loads((d / "meta.json").read_text())["arrays"]
        maps = [np.load(d / f"in{i}.npy", mmap_mode="r") for i in range(n)]
        self._mem[k] = maps
        return maps

    def _write(self, k: str, arrays: list[np.ndarray], parts: dict) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".{k}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        tmp.mkdir()
        try:
            for i, a in enumerate(arrays):
                np.save(tmp / f"in{i}.npy", a)
            meta = {"arrays": len(arrays), "shapes": [list(a.shape) for a in arrays],
                    "parts": parts}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1, default=str))
            try:
                os.rename(tmp, self.directory / k)  # atomic; fails if another process won
            except OSError:
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def summary(self, since: CacheStats | None = None) -> str:
        s = self.stats
        h, m = (s.hits - since.hits, s.misses - since.misses) if since else (s.hits, s.misses)
        return (f"cache {h} hits / {m} misses, {self._mem_bytes / 2**20:.0f} MiB in memory"
                + (f", {self.disk_bytes() / 2**20:.0f} MiB on disk" if self.directory else ""))

"""CIFAR-10's python batch files, read by an unpickler that accepts only their real layout.

A batch is a pickled dict of bytes keys, lists of ints and one uint8 array. Our unpickler resolves
numpy's reconstructors to functions of its own that build numeric arrays from the bytes the file
holds (np.frombuffer, after checking shape x item size against their count): no callable the file
names can run, and nothing is allocated beyond the file's own size (512 MiB at most). Files that
are not regular (a FIFO, a device) are refused before they are opened.
"""

from __future__ import annotations

import math
import pickle
import stat
from pathlib import Path

import numpy as np

from search.errors import DataError

MAX_BATCH_BYTES = 512 * 2**20  # one batch file (CIFAR-10's are 31 MB, CIFAR-100's train 155 MB)
# The element types a batch's arrays and numbers may have: numeric only, each of a fixed size.
_NUMERIC = frozenset(("u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f2", "f4", "f8", "b1"))
_NDARRAY = object()  # what numpy.ndarray resolves to: only a tag for _reconstruct


class _DType:
    """numpy.dtype while unpickling: numeric types only (no void, object or structured type,
    whose size the file would choose)."""

    def __init__(self, name, align=False, copy=True):
        if not isinstance(name, str) or name not in _NUMERIC:
            raise pickle.UnpicklingError(f"it asks for the element type {name!r}, which a CIFAR-10 "
                                         "batch never holds")
        self.dtype = np.dtype(name)

    def __setstate__(self, state):
        order = state[1] if isinstance(state, tuple) and len(state) > 1 else "|"
        if order not in ("<", ">", "|", "="):
            raise pickle.UnpicklingError("it holds a malformed element type")
        if order in "<>":
            self.dtype = self.dtype.newbyteorder(order)


def _array_from(raw, dtype, shape, order: str = "C") -> np.ndarray:
    """An array whose every byte is in `raw`: never more elements than the bytes hold."""
    if not isinstance(dtype, _DType) or not isinstance(raw, (bytes, bytearray)):
        raise pickle.UnpicklingError("it holds an array without its bytes")
    if (not isinstance(shape, tuple) or len(shape) > 4
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise pickle.UnpicklingError(f"it holds an array of shape {str(shape)[:60]}")
    if math.prod(shape) * dtype.dtype.itemsize != len(raw):
        raise pickle.UnpicklingError(f"its array of shape {shape} does not match its "
                                     f"{len(raw)} bytes")
    return np.frombuffer(bytes(raw), dtype.dtype).reshape(shape, order=order)


class _Array:
    """numpy's _reconstruct(ndarray, (0,), b'b') and the BUILD that follows it: the array is made
    from the bytes the file holds (np.frombuffer), after their count is checked."""

    array: np.ndarray | None = None

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) != 5:
            raise pickle.UnpicklingError("it holds a malformed array")
        _, shape, dtype, fortran, raw = state
        self.array = _array_from(raw, dtype, shape, "F" if fortran is True else "C")


def _reconstruct(cls, shape, typecode):
    if cls is not _NDARRAY:
        raise pickle.UnpicklingError("it rebuilds something other than an array")
    return _Array()


def _frombuffer(buf, dtype, shape, order):
    return _array_from(buf, dtype, shape, "F" if order == "F" else "C")


def _scalar(dtype, data=b""):
    if not isinstance(dtype, _DType) or not isinstance(data, bytes) or len(data) != dtype.dtype.itemsize:
        raise pickle.UnpicklingError("it holds a malformed number")
    return np.frombuffer(data, dtype.dtype)[0]


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles only what the real CIFAR-10 batches hold: a dict of bytes, lists of ints or bytes,
    numbers, and numeric arrays rebuilt from their own bytes. Any other global (a function to
    call, a class to build) is refused, so a crafted batch cannot run code; and no array or
    number is allocated from a shape or type the file chooses beyond the bytes it holds."""

    SAFE = {"_reconstruct": _reconstruct, "scalar": _scalar}

    def find_class(self, module, name):
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in self.SAFE:
            return self.SAFE[name]
        if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
            return _frombuffer
        if (module, name) == ("numpy", "ndarray"):
            return _NDARRAY
        if (module, name) == ("numpy", "dtype"):
            return _DType
        raise pickle.UnpicklingError(f"it asks for {module}.{name}, which a CIFAR-10 batch never "
                                     "holds")


def _arrays(obj):
    """The unpickled structure with every rebuilt array in place of its placeholder."""
    if isinstance(obj, _Array):
        if obj.array is None:
            raise pickle.UnpicklingError("it holds an array without its bytes")
        return obj.array
    if isinstance(obj, dict):
        return {k: _arrays(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_arrays(v) for v in obj]
    if isinstance(obj, _DType):
        raise pickle.UnpicklingError("it holds a bare element type")
    return obj


def regular_file(path: Path, what: str) -> None:
    """A DataError unless `path` is a regular file (a link to one is fine): a FIFO or a device
    would block the read, or never end."""
    try:
        mode = path.stat().st_mode
    except OSError as e:
        raise DataError(f"{path} cannot be read ({e.strerror}); replace or remove it.") from None
    if not stat.S_ISREG(mode):
        raise DataError(f"{path} is not a regular file (a FIFO, device or folder); {what} must be "
                        "plain files: replace or remove it.")


def unpickle(path: Path) -> dict:
    regular_file(path, "CIFAR-10 batches")
    size = path.stat().st_size
    if size > MAX_BATCH_BYTES:
        raise DataError(f"{path} is {size / 2**20:.0f} MiB, over the {MAX_BATCH_BYTES // 2**20} MiB "
                        "a CIFAR batch file may have; re-extract cifar-10-python.tar.gz from a "
                        "trusted copy.")
    try:
        with open(path, "rb") as f:
            d = _arrays(_BatchUnpickler(f, encoding="bytes").load())
    except (Exception, RecursionError) as e:
        raise DataError(f"{path} is not a readable CIFAR-10 python batch ({str(e)[:200]}); "
                        "re-extract cifar-10-python.tar.gz from a trusted copy.") from None
    if not isinstance(d, dict):
        raise DataError(f"{path} holds a {type(d).__name__}, not a CIFAR-10 batch's dict; "
                        "re-extract cifar-10-python.tar.gz from a trusted copy.")
    return d

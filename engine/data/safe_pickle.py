"""A pickle reader that can only build plain containers and NumPy arrays.

Why this exists: CIFAR-10's official "python version" is a set of Python 2 pickles, and
`pickle.load` on untrusted bytes runs arbitrary code (a pickle can name any importable
callable, e.g. `os.system`, and call it). The CIFAR batches only hold dicts, lists,
byte strings, ints and uint8 ndarrays, so `find_class` here allows exactly the three
globals NumPy's array pickling needs (`_reconstruct`, `ndarray`, `dtype`) and refuses
everything else, before anything is called. Object arrays are refused too, so the
result is data only. Prefer the binary CIFAR tarball, which needs no pickle at all.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np

try:  # NumPy >= 2 moved it; pickles written by NumPy 1.x (and CIFAR's) name numpy.core
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]

_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose only reachable callables are NumPy's array reconstruction."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"pickle refers to {module}.{name}, which a data file has no reason to "
                "use; refusing to load it (only NumPy arrays and plain containers are "
                "allowed)") from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("pickle uses persistent ids; refusing to load it")


def _check_data(obj: Any, depth: int = 0) -> None:
    if depth > 16:
        raise pickle.UnpicklingError("pickle nests deeper than a data file should")
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise pickle.UnpicklingError("pickle holds an object array; refusing it")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _check_data(k, depth + 1)
            _check_data(v, depth + 1)
    elif isinstance(obj, list | tuple):
        for v in obj:
            _check_data(v, depth + 1)


def restricted_loads(data: bytes, *, encoding: str = "bytes") -> Any:
    """Unpickle `data` allowing only containers, scalars, strings and NumPy arrays.

    `encoding="bytes"` reads Python 2 `str` as bytes, which is what CIFAR's pickles and
    their NumPy array payloads need.
    """
    obj = RestrictedUnpickler(io.BytesIO(data), encoding=encoding).load()
    _check_data(obj)
    return obj

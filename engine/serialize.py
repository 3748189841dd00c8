"""Saving and loading weights as `.npz`: plain arrays keyed by state_dict names, never
pickle, so loading a file a user uploads cannot execute code."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def _as_array(name: str, v: Any) -> np.ndarray:
    if hasattr(v, "numpy") and callable(v.numpy):  # a Tensor (maybe on the GPU)
        v = v.numpy()
    arr = np.asarray(v)
    if arr.dtype == object:
        raise TypeError(f"save: state entry {name!r} is not numeric ({type(v).__name__}); "
                        "only arrays and numbers can be saved without pickle")
    return arr


def save(obj: Any, path: str | os.PathLike) -> None:
    """Write a module's state_dict (or a name -> array mapping) to `path` as .npz.

    NumPy appends ".npz" if `path` lacks it, as `np.savez` does.
    """
    state = obj.state_dict() if hasattr(obj, "state_dict") else obj
    if not isinstance(state, Mapping):
        raise TypeError(f"save: expected a Module or a dict of arrays, not "
                        f"{type(obj).__name__}")
    arrays = {str(k): _as_array(str(k), v) for k, v in state.items()}
    np.savez(Path(path), **arrays)


def load_state(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a file written by `save` into {name: ndarray} (pass to load_state_dict)."""
    p = Path(path)
    if not p.exists() and p.suffix != ".npz" and p.with_name(p.name + ".npz").exists():
        p = p.with_name(p.name + ".npz")
    if not p.is_file():
        raise FileNotFoundError(f"load_state: no such file {str(path)!r}")
    with open(p, "rb") as f:
        head = f.read(6)
    if head == b"\x93NUMPY":
        raise ValueError(f"load_state: {p} is a single .npy array, not an .npz archive of "
                         "named arrays written by engine.save")
    if head[:4] != b"PK\x03\x04":
        raise ValueError(f"load_state: {p} is not an .npz file (no zip header); weights are "
                         "saved with engine.save(model, path)")
    try:
        with np.load(p, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ValueError(f"load_state: {p} contains pickled objects, which are never "
                             "loaded (they could run code); save plain arrays") from None
        raise ValueError(f"load_state: {p} is corrupt ({exc})") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as exc:
        raise ValueError(f"load_state: {p} is not a valid .npz file ({exc}); it may be "
                         "corrupt or truncated") from None

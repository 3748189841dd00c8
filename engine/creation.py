"""New tensors filled with a value, on any device (the Tensor-level `full`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import backends
from .tensor import Tensor, _as_dtype


def full(shape: Sequence[int], value: float, *, dtype: Any = None,
         device: str | None = None) -> Tensor:
    """A new tensor of `shape` filled with `value` (float32 unless `dtype` says)."""
    dev = backends.resolve(device)
    dt = _as_dtype(dtype) if dtype is not None else np.dtype(np.float32)
    return Tensor._wrap(backends.get(dev).full(tuple(int(s) for s in shape), value, dt), dev)


def zeros(shape: Sequence[int], *, dtype: Any = None, device: str | None = None) -> Tensor:
    return full(shape, 0.0, dtype=dtype, device=device)


def ones(shape: Sequence[int], *, dtype: Any = None, device: str | None = None) -> Tensor:
    return full(shape, 1.0, dtype=dtype, device=device)


def full_like(t: Tensor, value: float) -> Tensor:
    """A tensor like `t` (shape, dtype, device) filled with `value`."""
    return full(t.shape, value, dtype=t.dtype, device=t.device)


def zeros_like(t: Tensor) -> Tensor:
    return full_like(t, 0.0)

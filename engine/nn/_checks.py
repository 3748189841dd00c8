"""Argument checks shared by `nn.functional` and its pooling half: messages that name the
op, the argument and what to do instead."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tensor import Tensor

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _pair(v: Any, name: str, op: str) -> tuple[int, int]:
    """An int or a pair of ints as an (h, w) pair."""
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    t = tuple(int(x) for x in v)
    if len(t) != 2:
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {v!r}")
    return t[0], t[1]


def _need_float(x: Tensor, op: str, what: str = "input") -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: {what} must be a Tensor, got {type(x).__name__}; "
                        "wrap it with engine.Tensor(...)")
    if x.dtype not in _FLOATS:
        raise TypeError(f"{op}: {what} must be a floating-point tensor, got {x.dtype}; "
                        "convert with .float()")


def _same_dtype(op: str, x: Tensor, w: Tensor, what: str = "weight") -> None:
    if x.dtype != w.dtype:
        hint = ".double()" if w.dtype == np.float64 else ".float()"
        raise TypeError(f"{op}: input dtype {x.dtype} does not match {what} dtype {w.dtype}; "
                        f"convert the input with {hint} or the module with "
                        f".to(dtype={str(x.dtype)!r})")

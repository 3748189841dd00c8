"""NumPy implementation of the Backend protocol (the core primitives).

The NumPy fast kernels of the fused ops (convolution, pooling, batch norm, softmax, the
FM interaction, optimizer updates) live in `cpu_kernels.py`, the recurrent scan in
`cpu_recurrent.py`, and `cpu_channels_last.py` overrides convolution, batch norm and max
pooling with channels-last kernels where they pay; `CpuBackend` has them all.
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
from collections.abc import Sequence

import numpy as np

from . import cpu_parallel as parallel
from .cpu_channels_last import ChannelsLastKernels
from .cpu_kernels import NumpyKernels
from .cpu_recurrent import NumpyRecurrentKernels

# erf element by element with math.erf: exact to float64, and NumPy stays the engine's only
# compiled dependency (no scipy, which the browser build lacks). About 0.3 us per value.
_erf_object = np.frompyfunc(math.erf, 1, 1)


def _erf(a: np.ndarray) -> np.ndarray:
    return _erf_object(a).astype(np.float64)


def _keep_freed_memory() -> None:
    """Ask glibc to keep freed activation buffers instead of unmapping them.

    Training allocates and frees the same multi-MB arrays every step; by default glibc
    returns them to the OS and every reuse page-faults (measured: ~40% of a LeNet-5 step).
    This is the CPU path's buffer pool. Opt out with DEMYSTIFY_NO_MALLOPT=1.
    """
    if not sys.platform.startswith("linux") or os.environ.get("DEMYSTIFY_NO_MALLOPT"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD: glibc's maximum
        libc.mallopt(-1, 512 * 1024 * 1024)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        pass


_keep_freed_memory()


def _sigmoid(a: np.ndarray) -> np.ndarray:
    # exp of -|a| never overflows
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(a.dtype, copy=False)


_ZERO_ROWS: dict[tuple[int, np.dtype], np.ndarray] = {}


def _relu(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """max(a, 0). NumPy's SIMD maximum loop runs only on two array operands: against the
    scalar 0 a ~3x slower loop runs (measured: LeNet-5's conv1 output, 301k floats,
    0.23 -> 0.08 ms). So a C-contiguous array is viewed as rows of its trailing dims (at
    least 256 floats) and compared with one cached row of zeros; the values are the same."""
    if a.size < 1024 or not a.flags.c_contiguous or a.dtype.kind != "f":
        return np.maximum(a, 0, out=out, dtype=a.dtype)
    k = 1
    for d in reversed(a.shape):
        k *= d
        if k >= 256:
            break
    zeros = _ZERO_ROWS.get((k, a.dtype))
    if zeros is None:
        zeros = _ZERO_ROWS[(k, a.dtype)] = np.zeros(k, a.dtype)
    if out is None:
        out = np.empty_like(a)
    np.maximum(a.reshape(-1, k), zeros, out=out.reshape(-1, k))
    return out


_UNARY = {
    "neg": np.negative,
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "sign": np.sign,
    "relu": _relu,
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "erf": lambda a: _erf(a).astype(a.dtype, copy=False),
}

_BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
    "pow": np.power, "maximum": np.maximum, "minimum": np.minimum,
    "gt": np.greater, "ge": np.greater_equal, "lt": np.less, "le": np.less_equal,
    "eq": np.equal, "ne": np.not_equal,
}

_REDUCE = {"sum": np.sum, "max": np.max, "min": np.min}


class CpuBackend(ChannelsLastKernels, NumpyKernels, NumpyRecurrentKernels):
    name = "cpu"

    def describe(self) -> str:
        return "NumPy " + np.__version__

    # -- transfer, fill, cast ----------------------------------------------------------
    def from_numpy(self, a: np.ndarray) -> np.ndarray:
        return np.array(a, copy=True)

    def to_numpy(self, a: np.ndarray) -> np.ndarray:
        return np.asarray(a)

    def full(self, shape: Sequence[int], value: float, dtype) -> np.ndarray:
        return np.full(tuple(shape), value, dtype=dtype)

    def astype(self, a: np.ndarray, dtype) -> np.ndarray:
        return a.astype(dtype)

    def copy_(self, dst, src) -> None:
        dst[...] = src

    # -- elementwise ---------------------------------------------------------------------
    # large ufunc calls run in parts on the threads (parallel.ufunc, cpu_parallel.py);
    # small ones (inference on one image) pay one size test for it
    def unary(self, op: str, a: np.ndarray) -> np.ndarray:
        if getattr(a, "size", 0) >= parallel.ELEMENTWISE:
            if op == "relu" and a.flags.c_contiguous and a.shape[0] > 1:
                out = np.empty_like(a)  # in parts of the leading axis, each as `_relu`
                parallel.map_slices(a.shape[0], a.size // a.shape[0],
                                    lambda r: _relu(a[r], out[r]), grain=parallel.PASS_GRAIN)
                return out
            if op == "relu":
                return parallel.ufunc(np.maximum, a, 0, dtype=a.dtype)
            if isinstance(_UNARY[op], np.ufunc):
                return parallel.ufunc(_UNARY[op], a)
        return np.asarray(_UNARY[op](a))

    def binary(self, op: str, a, b) -> np.ndarray:
        if max(getattr(a, "size", 0), getattr(b, "size", 0)) >= parallel.ELEMENTWISE:
            return parallel.ufunc(_BINARY[op], a, b)
        return np.asarray(_BINARY[op](a, b))

    def where(self, cond, a, b) -> np.ndarray:
        if isinstance(b, float) and b == 0.0 and isinstance(a, np.ndarray):
            # masking: ~2x faster than np.where
            if a.size >= parallel.ELEMENTWISE:
                return parallel.ufunc(np.multiply, a, cond, dtype=a.dtype)
            return np.multiply(a, cond, dtype=a.dtype)
        if isinstance(a, float) and a == 0.0 and isinstance(b, np.ndarray):
            return np.multiply(b, ~cond, dtype=b.dtype)
        out = np.where(cond, a, b)
        dt = a.dtype if isinstance(a, np.ndarray) else getattr(b, "dtype", out.dtype)
        return out.astype(dt, copy=False)

    # -- reductions ----------------------------------------------------------------------
    def reduce(self, op: str, a, axes, keepdims: bool) -> np.ndarray:
        return np.asarray(_REDUCE[op](a, axis=tuple(axes), keepdims=keepdims))

    def argmax(self, a, axis: int) -> np.ndarray:
        return np.argmax(a, axis=axis)

    # -- linear algebra ------------------------------------------------------------------
    def matmul(self, a, b, trans_a: bool = False, trans_b: bool = False) -> np.ndarray:
        if trans_a:
            a = np.swapaxes(a, -1, -2)
        if trans_b:
            b = np.swapaxes(b, -1, -2)
        return np.matmul(a, b)

    # -- views, strided copies, gather / scatter-add -------------------------------------
    def reshape(self, a, shape) -> np.ndarray:
        return np.reshape(a, tuple(shape))

    def permute(self, a, axes) -> np.ndarray:
        return np.transpose(a, tuple(axes))

    def broadcast_to(self, a, shape) -> np.ndarray:
        return np.broadcast_to(a, tuple(shape))

    def getitem(self, a, index: tuple) -> np.ndarray:
        return np.asarray(a[index])

    def index_add(self, shape, index: tuple, values) -> np.ndarray:
        out = np.zeros(tuple(shape), dtype=values.dtype)
        if any(isinstance(i, np.ndarray) and i.dtype != bool for i in index):
            np.add.at(out, index, values)
        else:  # basic indexing (and boolean masks) never repeat an element
            out[index] += values
        return out

    def take_along(self, a, idx, axis: int) -> np.ndarray:
        if a.ndim == 2 and axis % 2 == 1 and idx.shape == (a.shape[0], 1):
            return a[np.arange(a.shape[0]), idx[:, 0]][:, None]  # the cross-entropy gather
        return np.take_along_axis(a, idx, axis=axis)

    def put_along(self, shape, idx, values, axis: int) -> np.ndarray:
        out = np.zeros(tuple(shape), dtype=values.dtype)
        if len(shape) == 2 and axis % 2 == 1 and idx.shape == (shape[0], 1):
            out[np.arange(shape[0]), idx[:, 0]] = values[:, 0]
        elif idx.shape[axis] == 1:  # one index per row: no repeats, plain assignment
            np.put_along_axis(out, idx, values, axis=axis)
        else:
            grid = list(np.indices(idx.shape, sparse=True))
            grid[axis] = idx
            np.add.at(out, tuple(grid), values)
        return out

    def gather_rows(self, table, idx) -> np.ndarray:
        return table[idx]

    def scatter_rows_add(self, n_rows: int, idx, values) -> np.ndarray:
        d = values.shape[-1]
        flat = idx.reshape(-1)
        vals = values.reshape(-1, d)
        out = np.zeros((n_rows, d), dtype=values.dtype)
        np.add.at(out, flat, vals)
        return out

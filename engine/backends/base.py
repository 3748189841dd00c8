"""The Backend protocol: the twenty core primitives every device implements.

Every differentiable op in `engine.functions` is written against these primitives, forward
and backward, and every fused kernel (`engine.fused`) has a reference written in Tensor
ops over them, so a new device implements this protocol and nothing else: conv, pooling,
batch norm, softmax and optimizer updates then run through their references.

A backend may also implement *fast kernels* (tier two): extra methods such as `conv2d`,
`maxpool2d` or `adam_step_` that a fused kernel's fast path calls instead of its reference
(see `engine.fused` and docs/architecture.md). `CpuBackend` has NumPy ones
(`cpu_kernels.py`), `GpuBackend` WGSL ones (one module per shader family).

Arrays are opaque handles (`numpy.ndarray` on the CPU, a GPU buffer view elsewhere) with
`.shape` and `.dtype`. Conventions shared by all backends:
- Comparison ops return arrays of dtype bool; arithmetic keeps the input float dtype.
- Methods whose name ends in `_` update their first argument in place.
- Random numbers are drawn on the host (`engine.random`) and uploaded, so every device
  sees the same dropout masks and initial weights for the same seed.
- Images are NCHW; `pad`, `stride`, `dilation` are (h, w) pairs (fast kernels).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

Array = Any  # a backend's array handle

UNARY_OPS = ("neg", "exp", "log", "sqrt", "abs", "sign", "relu", "tanh", "sigmoid", "erf")
BINARY_OPS = ("add", "sub", "mul", "div", "pow", "maximum", "minimum",
              "gt", "ge", "lt", "le", "eq", "ne")
REDUCE_OPS = ("sum", "max", "min")


class Backend(Protocol):
    name: str  # "cpu" or "gpu"

    def describe(self) -> str:
        """Human-readable name of the device (e.g. the GPU adapter)."""

    # -- transfer, fill, cast ------------------------------------------------------------
    def from_numpy(self, a: np.ndarray) -> Array:
        """A new array holding a copy of host `a`."""
    def to_numpy(self, a: Array) -> np.ndarray:
        """Host values (the only readback)."""
    def full(self, shape: Sequence[int], value: float, dtype: np.dtype) -> Array: ...
    def astype(self, a: Array, dtype: np.dtype) -> Array: ...
    def copy_(self, dst: Array, src: Array) -> None:
        """dst[...] = src in place: `src` broadcast to dst's shape and cast to its dtype."""

    # -- elementwise ---------------------------------------------------------------------
    def unary(self, op: str, a: Array) -> Array:
        """One of UNARY_OPS."""
    def binary(self, op: str, a: Array, b: Array) -> Array:
        """One of BINARY_OPS with NumPy broadcasting; `a` or `b` may be a Python scalar."""
    def where(self, cond: Array, a: Array, b: Array) -> Array:
        """cond ? a : b, broadcast; `a` or `b` may be a Python scalar."""

    # -- reductions ----------------------------------------------------------------------
    def reduce(self, op: str, a: Array, axes: tuple[int, ...], keepdims: bool) -> Array:
        """One of REDUCE_OPS over `axes`."""
    def argmax(self, a: Array, axis: int) -> Array:
        """First index of the maximum along `axis` (int64)."""

    # -- linear algebra ------------------------------------------------------------------
    def matmul(self, a: Array, b: Array, trans_a: bool = False, trans_b: bool = False) -> Array:
        """(..., M, K) @ (..., K, N) with broadcast batch dims; transposes are free flags."""

    # -- views and strided copies --------------------------------------------------------
    def reshape(self, a: Array, shape: Sequence[int]) -> Array: ...
    def permute(self, a: Array, axes: Sequence[int]) -> Array: ...
    def broadcast_to(self, a: Array, shape: Sequence[int]) -> Array: ...
    def getitem(self, a: Array, index: tuple) -> Array:
        """Basic slices/ints/None plus integer-array (host numpy) indices."""
    def index_add(self, shape: Sequence[int], index: tuple, values: Array) -> Array:
        """zeros(shape) with `values` added at `index` (repeated indices accumulate):
        getitem's gradient."""

    # -- gather / scatter-add by device indices ------------------------------------------
    def take_along(self, a: Array, idx: Array, axis: int) -> Array:
        """np.take_along_axis; `idx` is an integer array on this backend."""
    def put_along(self, shape: Sequence[int], idx: Array, values: Array, axis: int) -> Array:
        """zeros(shape) with values scattered (added) at idx along axis: take_along's grad."""
    def gather_rows(self, table: Array, idx: Array) -> Array:
        """table[idx] for an integer array idx of any shape (embedding lookup)."""
    def scatter_rows_add(self, n_rows: int, idx: Array, values: Array) -> Array:
        """zeros((n_rows, D)) with values[i] added at row idx[i]: gather_rows' grad."""


CORE = ("from_numpy", "to_numpy", "full", "astype", "copy_", "unary", "binary", "where",
        "reduce", "argmax", "matmul", "reshape", "permute", "broadcast_to", "getitem",
        "index_add", "take_along", "put_along", "gather_rows", "scatter_rows_add")
"""The protocol's primitives by name (a test checks this list against `Backend`)."""

"""The Backend protocol: the few primitives every device implements.

Every differentiable op in `engine.functions` is written against these primitives, forward
and backward, so a new device only implements this protocol. Arrays are opaque handles
(`numpy.ndarray` on the CPU, a GPU buffer view elsewhere) with `.shape` and `.dtype`.

Conventions shared by all backends:
- Images are NCHW; conv weights are (C_out, C_in / groups, kH, kW).
- `pad`, `stride`, `dilation` are (h, w) pairs; padding is symmetric.
- Comparison ops return arrays of dtype bool; arithmetic keeps the input float dtype.
- Methods whose name ends in `_` update their first arguments in place (optimizer steps).
- Random numbers are drawn on the host (`engine.random`) and uploaded, so every device
  sees the same dropout masks and initial weights for the same seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

Array = Any  # a backend's array handle
Pair = tuple[int, int]

UNARY_OPS = ("neg", "exp", "log", "sqrt", "abs", "sign", "relu", "tanh", "sigmoid", "erf")
BINARY_OPS = ("add", "sub", "mul", "div", "pow", "maximum", "minimum",
              "gt", "ge", "lt", "le", "eq", "ne")
REDUCE_OPS = ("sum", "max", "min")


class Backend(Protocol):
    name: str  # "cpu" or "gpu"

    def describe(self) -> str:
        """Human-readable name of the device (e.g. the GPU adapter)."""

    # -- transfer and creation ---------------------------------------------------------
    def from_numpy(self, a: np.ndarray) -> Array: ...
    def to_numpy(self, a: Array) -> np.ndarray: ...
    def full(self, shape: Sequence[int], value: float, dtype: np.dtype) -> Array: ...
    def astype(self, a: Array, dtype: np.dtype) -> Array: ...

    # -- elementwise ---------------------------------------------------------------------
    def unary(self, op: str, a: Array) -> Array: ...
    def binary(self, op: str, a: Array, b: Array) -> Array:
        """NumPy broadcasting; `b` may also be a Python scalar."""
    def where(self, cond: Array, a: Array, b: Array) -> Array: ...
    def clip(self, a: Array, lo: float | None, hi: float | None) -> Array: ...

    # -- reductions ----------------------------------------------------------------------
    def reduce(self, op: str, a: Array, axes: tuple[int, ...], keepdims: bool) -> Array: ...
    def argmax(self, a: Array, axis: int) -> Array: ...

    # -- linear algebra ------------------------------------------------------------------
    def matmul(self, a: Array, b: Array, trans_a: bool = False, trans_b: bool = False) -> Array:
        """(..., M, K) @ (..., K, N) with broadcast batch dims; transposes are free flags."""

    # -- movement ------------------------------------------------------------------------
    def reshape(self, a: Array, shape: Sequence[int]) -> Array: ...
    def permute(self, a: Array, axes: Sequence[int]) -> Array: ...
    def broadcast_to(self, a: Array, shape: Sequence[int]) -> Array: ...
    def getitem(self, a: Array, index: tuple) -> Array:
        """Basic slices/ints/None plus integer-array (host numpy) indices."""
    def index_add(self, shape: Sequence[int], index: tuple, values: Array) -> Array:
        """zeros(shape) with `values` added at `index` (repeated indices accumulate)."""
    def take_along(self, a: Array, idx: Array, axis: int) -> Array:
        """np.take_along_axis; `idx` is an integer array on this backend."""
    def put_along(self, shape: Sequence[int], idx: Array, values: Array, axis: int) -> Array:
        """zeros(shape) with values scattered (added) at idx along axis: take_along's grad."""
    def gather_rows(self, table: Array, idx: Array) -> Array:
        """table[idx] for an integer array idx of any shape (embedding lookup)."""
    def scatter_rows_add(self, n_rows: int, idx: Array, values: Array) -> Array:
        """zeros((n_rows, D)) with values[i] added at row idx[i]: gather_rows' grad."""
    def pad(self, a: Array, widths: Sequence[tuple[int, int]], value: float = 0.0) -> Array: ...
    def concat(self, arrays: Sequence[Array], axis: int) -> Array: ...

    # -- convolution and pooling ---------------------------------------------------------
    def conv2d(self, x: Array, w: Array, stride: Pair, pad: Pair, dilation: Pair,
               groups: int) -> Array: ...
    def conv2d_grad_input(self, gy: Array, w: Array, x_shape: Sequence[int], stride: Pair,
                          pad: Pair, dilation: Pair, groups: int) -> Array: ...
    def conv2d_grad_weight(self, gy: Array, x: Array, w_shape: Sequence[int], stride: Pair,
                           pad: Pair, dilation: Pair, groups: int) -> Array: ...
    def maxpool2d(self, x: Array, kernel: Pair, stride: Pair, pad: Pair,
                  dilation: Pair) -> tuple[Array, Array]:
        """Returns (out, argmax) where argmax indexes the flattened H*W plane of x."""
    def maxpool2d_grad(self, gy: Array, argmax: Array, x_shape: Sequence[int]) -> Array: ...
    def avgpool2d(self, x: Array, kernel: Pair, stride: Pair, pad: Pair,
                  count_include_pad: bool) -> Array: ...
    def avgpool2d_grad(self, gy: Array, x_shape: Sequence[int], kernel: Pair, stride: Pair,
                       pad: Pair, count_include_pad: bool) -> Array: ...

    # -- fused numerics (stable or hot paths) --------------------------------------------
    def softmax(self, a: Array, axis: int) -> Array: ...
    def log_softmax(self, a: Array, axis: int) -> Array: ...
    def batch_norm_train(self, x: Array, gamma: Array, beta: Array, axes: tuple[int, ...],
                         eps: float) -> tuple[Array, Array, Array]:
        """Returns (y, batch mean, batch inverse std), stats shaped like gamma."""
    def batch_norm_grad(self, gy: Array, x: Array, gamma: Array, mean: Array, invstd: Array,
                        axes: tuple[int, ...]) -> tuple[Array, Array, Array]:
        """Returns (gx, ggamma, gbeta)."""
    def fm_pairwise(self, v: Array, x: Array) -> Array:
        """Factorization-machine interactions of padded sparse rows, fused so the (B, N, K)
        products never materialise: v (B, N, K) gathered factor rows, x (B, N) values
        (padding: 0) -> (B,) 0.5 * sum_k [(sum_n v x)^2 - sum_n (v x)^2], which is Rendle's
        O(N K) form of sum_{n<m} <v_n, v_m> x_n x_m."""
    def fm_pairwise_grad(self, g: Array, v: Array, x: Array) -> tuple[Array, Array]:
        """fm_pairwise's gradients for upstream g (B,): with s = sum_n v x (B, K),
        gv = g x (s - v x) and gx = g sum_k v (s - v x). Returns (gv, gx)."""

    # -- optimizer updates, in place -----------------------------------------------------
    def sgd_step_(self, p: Array, g: Array, buf: Array | None, lr: float, momentum: float,
                  dampening: float, nesterov: bool, weight_decay: float,
                  first: bool) -> None: ...
    def adagrad_step_(self, p: Array, g: Array, acc: Array, lr: float, eps: float,
                      weight_decay: float) -> None: ...
    def rmsprop_step_(self, p: Array, g: Array, sq: Array, buf: Array | None, lr: float,
                      alpha: float, eps: float, momentum: float, weight_decay: float) -> None: ...
    def adam_step_(self, p: Array, g: Array, m: Array, v: Array, lr: float, beta1: float,
                   beta2: float, eps: float, weight_decay: float, decoupled: bool,
                   step: int) -> None: ...
    def copy_(self, dst: Array, src: Array) -> None: ...

"""Pooling as functions of Tensors (half of `nn.functional`, which re-exports it): the
PyTorch-style forms, and the `_padded` forms with any padding on each side and ceil mode,
which ONNX's MaxPool and AveragePool import through."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import fused
from ..backends.window import ceil_extra
from ..tensor import Tensor, cat
from ._checks import _need_float, _pair


def _pool_args(x: Tensor, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
               op: str) -> tuple[tuple[int, int], ...]:
    _need_float(x, op)
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    k = _pair(kernel_size, "kernel_size", op)
    s = k if stride is None else _pair(stride, "stride", op)
    p, d = _pair(padding, "padding", op), _pair(dilation, "dilation", op)
    if min(k) < 1 or min(s) < 1 or min(d) < 1:
        raise ValueError(f"{op}: kernel_size, stride and dilation must be >= 1, got "
                         f"kernel_size={k}, stride={s}, dilation={d}")
    if p[0] > k[0] // 2 or p[1] > k[1] // 2 or min(p) < 0:
        raise ValueError(f"{op}: padding {p} must be >= 0 and at most half the kernel "
                         f"size {k}")
    for i, dim in enumerate("HW"):
        if x.shape[2 + i] + 2 * p[i] < d[i] * (k[i] - 1) + 1:
            raise ValueError(f"{op}: input {dim}={x.shape[2 + i]} (padding {p[i]}) is smaller "
                             f"than the kernel {k} (input shape {x.shape})")
    return k, s, p, d


def _widths(begin: Sequence[int], end: Sequence[int]) -> list[tuple[int, int]]:
    return [(0, 0), (0, 0), (int(begin[0]), int(end[0])), (int(begin[1]), int(end[1]))]


def _padded(x: Tensor, begin: Sequence[int], end: Sequence[int], value: float) -> Tensor:
    if not any(begin) and not any(end):
        return x
    return fused.pad(x, widths=_widths(begin, end), value=value)


def _ceil_end(x: Tensor, k: Sequence[int], s: Sequence[int], begin: Sequence[int],
              end: Sequence[int], d: Sequence[int]) -> list[int]:
    """Trailing padding plus what ceil mode adds (window.ceil_extra)."""
    return [int(end[i]) + ceil_extra(x.shape[2 + i], k[i], s[i], begin[i], d[i], end[i])
            for i in range(2)]


def max_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False) -> Tensor:
    """Max over each window; padding counts as -inf. Stride defaults to the kernel size."""
    k, s, p, d = _pool_args(x, kernel_size, stride, padding, dilation, "max_pool2d")
    if ceil_mode:
        return max_pool2d_padded(x, k, s, p, p, d, ceil_mode=True)
    return fused.max_pool2d(x, kernel=k, stride=s, padding=p, dilation=d)


def max_pool2d_padded(x: Tensor, kernel: Sequence[int], stride: Sequence[int],
                      begin: Sequence[int], end: Sequence[int], dilation: Sequence[int] = (1, 1),
                      ceil_mode: bool = False) -> Tensor:
    """Max pooling with (top, left) `begin` and (bottom, right) `end` padding of any size,
    padding counting as -inf; ceil_mode adds a last partial window (as ONNX's MaxPool)."""
    if ceil_mode:
        end = _ceil_end(x, kernel, stride, begin, end, dilation)
    return fused.max_pool2d(_padded(x, begin, end, -math.inf), kernel=tuple(kernel),
                            stride=tuple(stride), padding=(0, 0), dilation=tuple(dilation))


def avg_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True) -> Tensor:
    """Mean over each window; with count_include_pad=False padded zeros are not counted.
    ceil_mode adds a last partial window whose mean is over the cells it covers (input,
    and padding when counted), as in PyTorch."""
    k, s, p, _ = _pool_args(x, kernel_size, stride, padding, 1, "avg_pool2d")
    if ceil_mode:
        return avg_pool2d_padded(x, k, s, p, p, True, count_include_pad)
    return fused.avg_pool2d(x, kernel=k, stride=s, padding=p,
                            count_include_pad=bool(count_include_pad))


def avg_pool2d_padded(x: Tensor, kernel: Sequence[int], stride: Sequence[int],
                      begin: Sequence[int], end: Sequence[int], ceil_mode: bool = False,
                      count_include_pad: bool = True) -> Tensor:
    """Average pooling with padding of any size on each side (as ONNX's AveragePool).

    Each window's sum (of the zero-padded input) is divided by the number of cells it
    counts: padding included or not, never ceil mode's extra cells. Those counts depend
    only on shapes: they are counted on the host (NumPy) and scale as one constant."""
    k, s = tuple(kernel), tuple(stride)
    cend = _ceil_end(x, k, s, begin, end, (1, 1)) if ceil_mode else [int(e) for e in end]
    kw = {"kernel": k, "stride": s, "padding": (0, 0), "count_include_pad": True}
    if cend == list(end) and (not any(begin) and not any(end) or count_include_pad):
        return fused.avg_pool2d(_padded(x, begin, end, 0.0), **kw)
    h, w = x.shape[2], x.shape[3]
    counted = np.zeros((h + begin[0] + cend[0], w + begin[1] + cend[1]))
    if count_include_pad:
        counted[: h + begin[0] + end[0], : w + begin[1] + end[1]] = 1
    else:
        counted[begin[0]: begin[0] + h, begin[1]: begin[1] + w] = 1
    counts = np.lib.stride_tricks.sliding_window_view(counted, k)[::s[0], ::s[1]].sum((-2, -1))
    num = fused.avg_pool2d(_padded(x, begin, cend, 0.0), **kw)  # window sum / (kH kW)
    return num * Tensor(k[0] * k[1] / counts, device=x.device, dtype=x.dtype)


def _adaptive_size(out: Any, x: Tensor) -> tuple[int, int]:
    if isinstance(out, (int, np.integer)) or out is None:
        out = (out, out)
    oh, ow = tuple(out)
    return (x.shape[2] if oh is None else int(oh)), (x.shape[3] if ow is None else int(ow))


def adaptive_avg_pool2d(x: Tensor, output_size: Any) -> Tensor:
    """Average pooling to a fixed output size, windows placed exactly as PyTorch does.

    Window i along a dim of size n covers [floor(i*n/o), ceil((i+1)*n/o)). When o divides n
    this is one ordinary avg_pool2d; otherwise the mean is taken separably (rows, then
    columns), which is exact because every window is a rectangle with equal weights.
    """
    op = "adaptive_avg_pool2d"
    _need_float(x, op)
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    oh, ow = _adaptive_size(output_size, x)
    h, w = x.shape[2], x.shape[3]
    if oh < 1 or ow < 1:
        raise ValueError(f"{op}: output size must be positive, got {(oh, ow)}")
    if h % oh == 0 and w % ow == 0:
        if (oh, ow) == (h, w):
            return x
        k = (h // oh, w // ow)
        return fused.avg_pool2d(x, kernel=k, stride=k, padding=(0, 0), count_include_pad=True)
    for axis, o in ((2, oh), (3, ow)):
        n = x.shape[axis]
        if o == n:
            continue
        parts = []
        for i in range(o):
            lo, hi = (i * n) // o, -((-(i + 1) * n) // o)
            idx = (slice(None),) * axis + (slice(lo, hi),)
            parts.append(x[idx].mean(axis, keepdims=True))
        x = cat(parts, axis)
    return x

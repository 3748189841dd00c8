"""Shapes, strides and dispatch grids of the GPU backend's contiguous 32-bit arrays."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .array import GpuArray

Pair = tuple[int, int]
WG = 256  # invocations per workgroup of the 1-D kernels (their WGSL default)
MAX_GROUPS = 65535
F32_DT = np.dtype(np.float32)
I64_DT = np.dtype(np.int64)
BOOL_DT = np.dtype(bool)


def contig(shape: Sequence[int]) -> list[int]:
    """Row-major element strides."""
    out, acc = [], 1
    for s in reversed(shape):
        out.append(acc)
        acc *= s
    return out[::-1]


def coalesce(shape: Sequence[int], *strides: Sequence[int]) -> tuple[list[int], list[list[int]]]:
    """Drop size-1 dims and merge neighbours that are contiguous in every stride list."""
    dims: list[tuple[int, list[int]]] = []
    for i, s in enumerate(shape):
        if s == 1:
            continue
        st = [x[i] for x in strides]
        if dims and all(p == c * s for p, c in zip(dims[-1][1], st)):
            dims[-1] = (dims[-1][0] * s, st)
        else:
            dims.append((s, st))
    return [d[0] for d in dims], [[d[1][k] for d in dims] for k in range(len(strides))]


def bcast_strides(shape: Sequence[int], out_shape: Sequence[int]) -> list[int]:
    """Element strides of a contiguous `shape` read as `out_shape` (0 on broadcast dims)."""
    st = contig(shape)
    lead = len(out_shape) - len(shape)
    return [0] * lead + [0 if s == 1 and o != 1 else t
                         for s, t, o in zip(shape, st, out_shape[lead:])]


def resolve_shape(size: int, shape: Sequence[int]) -> tuple[int, ...]:
    shape = [int(s) for s in shape]
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        shape[shape.index(-1)] = size // known if known else 0
    if math.prod(shape) != size:
        raise ValueError(f"cannot reshape array of size {size} into shape {tuple(shape)}")
    return tuple(shape)


def basic_view(shape: Sequence[int], index: tuple) -> tuple[tuple[int, ...], list[int], int]:
    """(shape, element strides, element offset) of a basic-indexing view of a contiguous
    array, computed by NumPy on a fake strided array (no memory is touched)."""
    base = np.zeros(1, dtype=np.int32)
    probe = as_strided(base, shape=tuple(shape),
                       strides=tuple(4 * s for s in contig(shape)), writeable=False)
    v = probe[index]
    offset = (v.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // 4
    return v.shape, [s // 4 for s in v.strides], offset


def is_advanced(index: tuple) -> bool:
    return any(isinstance(i, (np.ndarray, list)) for i in index)


def grid(n: int) -> tuple[int, int, int]:
    """Workgroups covering n items, 2-D when one dimension is not enough."""
    g = max(1, -(-n // WG))
    if g <= MAX_GROUPS:
        return g, 1, 1
    return MAX_GROUPS, -(-g // MAX_GROUPS), 1


def grid_groups(g: int) -> tuple[int, int, int]:
    """A 2-D grid of at least g workgroups (kernels index them as x + y * nx)."""
    if g <= MAX_GROUPS:
        return max(g, 1), 1, 1
    return MAX_GROUPS, -(-g // MAX_GROUPS), 1


def pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def tiles(M: int, N: int, batch: int) -> tuple[int, int, int]:
    """(BM, BN, BK) for the tiled GEMM kernels: the tile follows the matrix' shape, so a
    thin product (few output channels, a single input channel) does not waste most of a
    64 x 64 tile, within 256 invocations (BM * BN / 16) and 16 KiB of workgroup memory
    (4 * BK * (BM + BN) bytes)."""
    bm, bn = min(64, max(4, pow2(M))), min(64, max(4, pow2(N)))
    while bm * bn < 4096 and bn < min(256, pow2(N)):
        bn *= 2
    while bm * bn < 4096 and bm < min(256, pow2(M)):
        bm *= 2
    if bm == bn == 64 and -(-M // 64) * -(-N // 64) * batch < 16:
        bm = bn = 32  # more, smaller workgroups when the product is small
    return bm, bn, 16 if bm + bn <= 256 else 8


def pair(v: Any) -> Pair:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def host_array(a: GpuArray, raw: bytes) -> np.ndarray:
    """The host copy of `a` from the bytes read back from its buffer."""
    host = np.frombuffer(raw, dtype=a.storage_dtype, count=a.size).reshape(a.shape)
    return host.astype(a.dtype) if host.dtype != a.dtype else host.copy()

"""shaders/reduce.wgsl: sum/max/min over axes and argmax."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .array import F32, GpuArray
from .core import GpuCore
from .device import Params
from .layout import F32_DT, I64_DT, grid, grid_groups

_REDUCE = {"sum": 0, "max": 1, "min": 2}


class ReduceOps(GpuCore):
    """Reductions as (A, L, C) views reduced over L."""

    def _axes(self, axes: Sequence[int], ndim: int) -> tuple[int, ...]:
        return tuple(sorted({int(x) % ndim for x in axes})) if ndim else ()

    def _as_alc(self, a: GpuArray, axes: tuple[int, ...]) -> tuple[GpuArray, int, int, int]:
        """View `a` as contiguous (A, L, C) with the `axes` merged into L (permuting a copy
        when the reduced axes are not one block)."""
        groups: list[list[Any]] = []  # [reduced?, size]
        for i, s in enumerate(a.shape):
            if s == 1:
                continue
            red = i in axes
            if groups and groups[-1][0] == red:
                groups[-1][1] *= s
            else:
                groups.append([red, s])
        kinds = [g[0] for g in groups]
        sizes = [g[1] for g in groups]
        if not groups:
            return a, 1, 1, 1
        if kinds == [True]:
            return a, 1, sizes[0], 1
        if kinds == [False]:
            return a, sizes[0], 1, 1
        if kinds == [False, True]:
            return a, sizes[0], sizes[1], 1
        if kinds == [True, False]:
            return a, 1, sizes[0], sizes[1]
        if kinds == [False, True, False]:
            return a, sizes[0], sizes[1], sizes[2]
        kept = [i for i in range(a.ndim) if i not in axes]
        moved = self.permute(a, kept + list(axes))
        n_kept = math.prod(a.shape[i] for i in kept)
        return moved, n_kept, a.size // max(n_kept, 1), 1

    def _reduce_alc(self, op: str, x: GpuArray, A: int, L: int, C: int,
                    out: GpuArray) -> None:
        int_math = x.kind != F32
        if C == 1 and L > 64:
            nch = 1
            if A < 128 and L >= 8192:
                nch = min(-(-L // 2048), max(1, 256 // A))
            chunk = -(-L // nch)
            dst = out if nch == 1 else self._new((A, nch), I64_DT if int_math else F32_DT)
            p = Params().u(A, L, 1, nch).u(chunk, 0, 0, 0)
            self._run("reduce", "reduce_rows", "wr", p, [dst, x], grid_groups(A * nch),
                      OP=_REDUCE[op], KIND_IN=x.kind, KIND_OUT=dst.kind, INT_MATH=int_math)
            if nch > 1:
                self._reduce_alc(op, dst, A, nch, 1, out)
            return
        p = Params().u(A, L, C, 1).u(L, 0, 0, 0)
        self._run("reduce", "reduce_strided", "wr", p, [out, x], grid(A * C),
                  OP=_REDUCE[op], KIND_IN=x.kind, KIND_OUT=out.kind, INT_MATH=int_math)

    def reduce(self, op: str, a: GpuArray, axes: Sequence[int], keepdims: bool) -> GpuArray:
        if op not in _REDUCE:
            raise ValueError(f"unknown reduction {op!r}; expected sum, max or min")
        a = self._arr(a)
        axes = self._axes(axes, a.ndim)
        if op == "sum":
            dt = F32_DT if a.kind == F32 else I64_DT
        else:
            dt = a.dtype
        kept = tuple(1 if i in axes else s for i, s in enumerate(a.shape))
        shape = kept if keepdims else tuple(s for i, s in enumerate(a.shape) if i not in axes)
        out = self._new(shape, dt)
        if out.size == 0:
            return out
        if a.size == 0:
            if op != "sum":
                raise ValueError(f"zero-size array to reduction operation {op} which has no "
                                 "identity")
            return self._fill(out, 0)
        x, A, L, C = self._as_alc(a, axes)
        self._reduce_alc(op, x, A, L, C, out)
        return out

    def argmax(self, a: GpuArray, axis: int) -> GpuArray:
        a = self._arr(a)
        axis = int(axis) % a.ndim
        A = math.prod(a.shape[:axis])
        L = a.shape[axis]
        C = math.prod(a.shape[axis + 1:])
        out = self._new(a.shape[:axis] + a.shape[axis + 1:], I64_DT)
        if out.size == 0:
            return out
        if L == 0:
            raise ValueError("attempt to get argmax of an empty sequence")
        p = Params().u(A, L, C, 1).u(L, 0, 0, 0)
        if C == 1 and L > 64:
            self._run("reduce", "argmax_rows", "wr", p, [out, a], grid_groups(A),
                      KIND_IN=a.kind)
        else:
            self._run("reduce", "argmax_strided", "wr", p, [out, a], grid(A * C),
                      KIND_IN=a.kind)
        return out

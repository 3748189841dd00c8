"""shaders/movement.wgsl: views, strided copies, gathers and scatter-adds by index."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .array import F32, I32, GpuArray, Storage, logical_dtype
from .core import GpuCore
from .device import Params
from .layout import (
    F32_DT,
    I64_DT,
    basic_view,
    bcast_strides,
    coalesce,
    contig,
    grid,
    is_advanced,
    resolve_shape,
)


class MovementOps(GpuCore):
    """Movement primitives (and `pad`, `concat`, fast kernels)."""

    def _copy_strided(self, src: GpuArray | Storage, src_off: int, src_st: Sequence[int],
                      dst: GpuArray, dst_off: int, dst_st: Sequence[int],
                      shape: Sequence[int]) -> None:
        n = math.prod(shape)
        if n == 0:
            return
        shp, (ss, ds) = coalesce(shape, src_st, dst_st)
        sst = src.storage if isinstance(src, GpuArray) else src
        if not shp or (len(shp) == 1 and ss[0] == 1 and ds[0] == 1):
            self.dev.copy(sst.buffer, 4 * src_off, dst.storage.buffer, 4 * dst_off, 4 * n)
            return
        p = (Params().u(n, len(shp), 0, 0).i(src_off, dst_off, 0, 0).vec8(shp)
             .vec8(ss, signed=True).vec8(ds, signed=True))
        self._run("movement", "copy_strided", "wr", p, [dst, sst], grid(n))

    def reshape(self, a: GpuArray, shape: Sequence[int]) -> GpuArray:
        a = self._arr(a)
        return GpuArray(a.storage, resolve_shape(a.size, shape), a.dtype)

    def permute(self, a: GpuArray, axes: Sequence[int]) -> GpuArray:
        a = self._arr(a)
        axes = [int(x) % a.ndim for x in axes] if a.ndim else []
        if sorted(axes) != list(range(a.ndim)):
            raise ValueError(f"permute: {tuple(axes)} is not a permutation of {a.ndim} dims")
        shape = [a.shape[i] for i in axes]
        out = self._new(shape, a.dtype)
        st = contig(a.shape)
        self._copy_strided(a, 0, [st[i] for i in axes], out, 0, contig(shape), shape)
        return out

    def broadcast_to(self, a: GpuArray, shape: Sequence[int]) -> GpuArray:
        a = self._arr(a)
        shape = tuple(int(s) for s in shape)
        if np.broadcast_shapes(a.shape, shape) != shape:
            raise ValueError(f"broadcast_to: cannot broadcast {a.shape} to {shape}")
        if shape == a.shape:
            return a
        out = self._new(shape, a.dtype)
        self._copy_strided(a, 0, bcast_strides(a.shape, shape), out, 0, contig(shape), shape)
        return out

    def _upload_index(self, idx: np.ndarray) -> GpuArray:
        return self.from_numpy(np.ascontiguousarray(idx, dtype=np.int32))

    def getitem(self, a: GpuArray, index: tuple) -> GpuArray:
        a = self._arr(a)
        if not isinstance(index, tuple):
            index = (index,)
        if is_advanced(index):
            flat = np.arange(a.size, dtype=np.int64).reshape(a.shape)[index]
            out = self._new(flat.shape, a.dtype)
            if out.size:
                idx = self._upload_index(flat.reshape(-1))
                p = Params().u(out.size, 0, 0, 0).i(0, 0, 0, 0)
                self._run("movement", "gather", "wrr", p.vec8([]).vec8([]).vec8([]),
                          [out, a, idx], grid(out.size))
            return out
        shape, strides, offset = basic_view(a.shape, index)
        out = self._new(shape, a.dtype)
        self._copy_strided(a, offset, strides, out, 0, contig(shape), shape)
        return out

    def index_add(self, shape: Sequence[int], index: tuple, values: GpuArray) -> GpuArray:
        values = self._arr(values)
        shape = tuple(int(s) for s in shape)
        if not isinstance(index, tuple):
            index = (index,)
        if values.kind != F32:
            res = self.index_add(shape, index, self.astype(values, F32_DT))
            return self.astype(res, values.dtype)
        out = self._new(shape, values.dtype)
        if not is_advanced(index):
            vshape, vstrides, offset = basic_view(shape, index)
            self._fill(out, 0.0)
            self._copy_strided(values, 0, bcast_strides(values.shape, vshape), out, offset,
                               vstrides, vshape)
            return out
        flat = np.arange(out.size, dtype=np.int64).reshape(shape)[index]
        if values.shape != flat.shape:
            values = self.broadcast_to(values, flat.shape)
        flat = flat.reshape(-1)
        order = np.argsort(flat, kind="stable")
        starts = np.zeros(out.size + 1, dtype=np.int64)
        np.cumsum(np.bincount(flat, minlength=out.size), out=starts[1:])
        p = Params().u(out.size, 0, 0, 0).i(0, 0, 0, 0).vec8([]).vec8([]).vec8([])
        self._run("movement", "segment_sum", "wrrr", p,
                  [out, values, self._upload_index(order), self._upload_index(starts)],
                  grid(out.size))
        return out

    def _along(self, entry: str, out: GpuArray, src: GpuArray, idx: GpuArray, axis: int,
               length: int) -> GpuArray:
        if out.size == 0:
            return out
        if idx.kind != I32:
            idx = self.astype(idx, I64_DT)
        p = (Params().u(out.size, out.ndim, axis, length).i(0, 0, 0, 0).vec8(out.shape)
             .vec8(self._along_strides(src.shape, out.shape, axis), signed=True)
             .vec8(self._along_strides(idx.shape, out.shape, axis), signed=True))
        self._run("movement", entry, "wrr", p, [out, src, idx], grid(out.size))
        return out

    @staticmethod
    def _along_strides(shape: Sequence[int], out_shape: Sequence[int], axis: int) -> list[int]:
        st = contig(shape)
        return [t if (d == axis or s != 1 or o == 1) else 0
                for d, (s, t, o) in enumerate(zip(shape, st, out_shape))]

    def take_along(self, a: GpuArray, idx: GpuArray, axis: int) -> GpuArray:
        a, idx = self._arr(a), self._arr(idx)
        axis = int(axis) % a.ndim
        if idx.ndim != a.ndim:
            raise ValueError(f"take_along: index has {idx.ndim} dims, array has {a.ndim}")
        shape = tuple(idx.shape[d] if d == axis else max(a.shape[d], idx.shape[d])
                      for d in range(a.ndim))
        return self._along("take_along", self._new(shape, a.dtype), a, idx, axis,
                           a.shape[axis])

    def put_along(self, shape: Sequence[int], idx: GpuArray, values: GpuArray,
                  axis: int) -> GpuArray:
        idx, values = self._arr(idx), self._arr(values)
        shape = tuple(int(s) for s in shape)
        axis = int(axis) % len(shape)
        if values.kind != F32:
            res = self.put_along(shape, idx, self.astype(values, F32_DT), axis)
            return self.astype(res, values.dtype)
        if values.shape != idx.shape:
            values = self.broadcast_to(values, np.broadcast_shapes(values.shape, idx.shape))
        return self._along("put_along", self._new(shape, values.dtype), values, idx, axis,
                           idx.shape[axis])

    def pad(self, a: GpuArray, widths: Sequence[tuple[int, int]],
            value: float = 0.0) -> GpuArray:
        a = self._arr(a)
        widths = [(int(lo), int(hi)) for lo, hi in widths]
        if len(widths) != a.ndim or any(lo < 0 or hi < 0 for lo, hi in widths):
            raise ValueError(f"pad: need one non-negative (before, after) pair per dim of "
                             f"{a.shape}, got {widths}")
        shape = [s + lo + hi for s, (lo, hi) in zip(a.shape, widths)]
        out = self._fill(self._new(shape, a.dtype), value)
        st = contig(shape)
        off = sum(lo * s for (lo, _), s in zip(widths, st))
        self._copy_strided(a, 0, contig(a.shape), out, off, st, a.shape)
        return out

    def concat(self, arrays: Sequence[GpuArray], axis: int) -> GpuArray:
        arrays = [self._arr(x) for x in arrays]
        first = arrays[0]
        axis = int(axis) % first.ndim
        for x in arrays[1:]:
            if x.ndim != first.ndim or any(s != t for i, (s, t) in
                                           enumerate(zip(x.shape, first.shape)) if i != axis):
                raise ValueError(f"concat: shapes {first.shape} and {x.shape} differ outside "
                                 f"axis {axis}")
        shape = list(first.shape)
        shape[axis] = sum(x.shape[axis] for x in arrays)
        dt = np.result_type(*[x.dtype for x in arrays])
        out = self._new(shape, logical_dtype(dt))
        st = contig(shape)
        start = 0
        for x in arrays:
            if x.dtype != out.dtype:
                x = self.astype(x, out.dtype)
            self._copy_strided(x, 0, contig(x.shape), out, start * st[axis], st, x.shape)
            start += x.shape[axis]
        return out

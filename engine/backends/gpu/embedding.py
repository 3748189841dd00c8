"""shaders/embedding.wgsl: gather whole rows by index, and scatter-add them."""

from __future__ import annotations

import math

from .array import F32, I32, GpuArray
from .core import GpuCore
from .device import Params
from .layout import F32_DT, I64_DT, grid


class EmbeddingOps(GpuCore):
    """Row gather / scatter-add by a device index array."""

    def gather_rows(self, table: GpuArray, idx: GpuArray) -> GpuArray:
        table, idx = self._arr(table), self._arr(idx)
        if idx.kind != I32:
            idx = self.astype(idx, I64_DT)
        d = math.prod(table.shape[1:])
        out = self._new(idx.shape + table.shape[1:], table.dtype)
        if out.size == 0:
            return out
        p = Params().u(idx.size, d, table.shape[0], 0)
        self._run("embedding", "gather_rows", "wrr", p, [out, table, idx], grid(out.size))
        return out

    def scatter_rows_add(self, n_rows: int, idx: GpuArray, values: GpuArray) -> GpuArray:
        idx, values = self._arr(idx), self._arr(values)
        if idx.kind != I32:
            idx = self.astype(idx, I64_DT)
        if values.kind != F32:
            values = self.astype(values, F32_DT)
        d = values.shape[-1] if values.ndim else 1
        out = self._new((int(n_rows), d), values.dtype)
        if out.size == 0:
            return out
        p = Params().u(idx.size, d, int(n_rows), 0)
        self._run("embedding", "scatter_rows_add", "wrr", p, [out, values, idx],
                  grid(out.size))
        return out

"""shaders/softmax.wgsl: stable softmax and log-softmax (fast kernels)."""

from __future__ import annotations

import math

from .array import F32, GpuArray
from .core import GpuCore
from .device import Params
from .layout import F32_DT, grid, grid_groups


class SoftmaxKernels(GpuCore):
    """softmax / log_softmax along one axis."""

    def _softmax(self, a: GpuArray, axis: int, log: bool) -> GpuArray:
        a = self._arr(a)
        if a.kind != F32:
            a = self.astype(a, F32_DT)
        axis = int(axis) % a.ndim
        A = math.prod(a.shape[:axis])
        L = a.shape[axis]
        C = math.prod(a.shape[axis + 1:])
        out = self._new(a.shape, F32_DT)
        if out.size == 0:
            return out
        p = Params().u(A, L, C, 0)
        if C == 1 and L > 64:
            self._run("softmax", "softmax_rows", "wr", p, [out, a], grid_groups(A), LOG=log)
        else:
            self._run("softmax", "softmax_strided", "wr", p, [out, a], grid(A * C), LOG=log)
        return out

    def softmax(self, a: GpuArray, axis: int) -> GpuArray:
        return self._softmax(a, axis, False)

    def log_softmax(self, a: GpuArray, axis: int) -> GpuArray:
        return self._softmax(a, axis, True)

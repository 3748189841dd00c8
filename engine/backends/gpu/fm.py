"""shaders/fm.wgsl: the factorization-machine pairwise term and its gradients (fast kernels)."""

from __future__ import annotations

from typing import Any

from .array import F32, GpuArray
from .core import GpuCore
from .device import Params
from .layout import F32_DT, grid, grid_groups


class FmKernels(GpuCore):
    """fm_pairwise and fm_pairwise_grad."""

    def _fm_operands(self, v: Any, x: Any) -> tuple[GpuArray, GpuArray, int, int, int]:
        v, x = self._arr(v), self._arr(x)
        v = v if v.kind == F32 else self.astype(v, F32_DT)
        x = x if x.kind == F32 else self.astype(x, F32_DT)
        if v.ndim != 3 or tuple(x.shape) != tuple(v.shape[:2]):
            raise ValueError(f"fm_pairwise: need v (B, N, K) and x (B, N), got {v.shape} "
                             f"and {x.shape}")
        return v, x, *v.shape

    def fm_pairwise(self, v: GpuArray, x: GpuArray) -> GpuArray:
        v, x, B, N, K = self._fm_operands(v, x)
        out = self._new((B,), F32_DT)
        if v.size == 0:
            return self._fill(out, 0.0)
        self._run("fm", "pairwise", "wwrr", Params().u(B, N, K, 0), [out, None, v, x],
                  grid_groups(B))
        return out

    def fm_pairwise_grad(self, g: GpuArray, v: GpuArray,
                         x: GpuArray) -> tuple[GpuArray, GpuArray]:
        v, x, B, N, K = self._fm_operands(v, x)
        g = self._arr(g)
        g = g if g.kind == F32 else self.astype(g, F32_DT)
        gv, gx = self._new(v.shape, F32_DT), self._new(x.shape, F32_DT)
        if v.size == 0:
            return gv, self._fill(gx, 0.0)
        s = self._new((B, K), F32_DT)  # s = sum_n v x, shared by the two kernels
        p = Params().u(B, N, K, 0)
        self._run("fm", "pairwise_grad_v", "wwrrr", p, [gv, s, v, x, g], grid(B * K))
        self._run("fm", "pairwise_grad_x", "wwrrr", p, [gx, s, v, x, g], grid(B * N))
        return gv, gx

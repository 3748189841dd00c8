"""shaders/matmul.wgsl: tiled batched matmul (and the naive reference kernel)."""

from __future__ import annotations

import math

import numpy as np

from .array import F32, GpuArray
from .core import GpuCore
from .device import Params
from .layout import F32_DT, MAX_GROUPS, tiles


class MatmulOps(GpuCore):
    """matmul with free transpose flags and broadcast batch dims."""

    def _batched(self, a: GpuArray, batch: tuple[int, ...]) -> tuple[GpuArray, int]:
        """(array, batch stride) for reading `a` at every index of the broadcast batch."""
        own = a.shape[:-2]
        mat = a.shape[-2] * a.shape[-1]
        if math.prod(own) <= 1:
            return a, 0
        if tuple(own) == tuple(batch[len(batch) - len(own):]) and \
                math.prod(own) == math.prod(batch):
            return a, mat
        return self.broadcast_to(a, tuple(batch) + tuple(a.shape[-2:])), mat

    def matmul(self, a: GpuArray, b: GpuArray, trans_a: bool = False,
               trans_b: bool = False, kernel: str = "tiled") -> GpuArray:
        """`kernel="naive"` selects the reference kernel (benchmarks only)."""
        a, b = self._arr(a), self._arr(b)
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError(f"matmul: operands need 2+ dims, got {a.shape} and {b.shape}")
        if a.kind != F32 or b.kind != F32:
            a = a if a.kind == F32 else self.astype(a, F32_DT)
            b = b if b.kind == F32 else self.astype(b, F32_DT)
        M, K = (a.shape[-1], a.shape[-2]) if trans_a else a.shape[-2:]
        K2, N = (b.shape[-1], b.shape[-2]) if trans_b else b.shape[-2:]
        if K != K2:
            raise ValueError(f"matmul: shapes {a.shape}{'ᵀ' if trans_a else ''} and "
                             f"{b.shape}{'ᵀ' if trans_b else ''} do not align ({K} != {K2})")
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        out = self._new(tuple(batch) + (M, N), F32_DT)
        if out.size == 0:
            return out
        if K == 0:
            return self._fill(out, 0.0)
        a, sa = self._batched(a, batch)
        b, sb = self._batched(b, batch)
        nb = math.prod(batch)
        for z0 in range(0, nb, MAX_GROUPS):
            nz = min(MAX_GROUPS, nb - z0)
            p = Params().u(M, N, K, z0).u(sa, sb, M * N, 0)
            if kernel == "naive":
                self._run("matmul", "naive", "wrr", p, [out, a, b],
                          (-(-N // 16), -(-M // 16), nz), TRANS_A=trans_a, TRANS_B=trans_b)
                continue
            bm, bn, bk = tiles(M, N, nb)
            self._run("matmul", "tiled", "wrr", p, [out, a, b],
                      (-(-N // bn), -(-M // bm), nz), TRANS_A=trans_a, TRANS_B=trans_b,
                      BM=bm, BN=bn, BK=bk)
        return out

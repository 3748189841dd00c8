"""shaders/batchnorm.wgsl: batch-norm training forward and gradient (fast kernels)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .array import GpuArray
from .core import GpuCore
from .device import Params
from .layout import F32_DT, grid_groups


class BatchNormKernels(GpuCore):
    """batch_norm_train and batch_norm_grad, a workgroup per channel."""

    def _bn_view(self, x: GpuArray, axes: Sequence[int]) -> tuple[int, int, int] | None:
        """(A, K, B) when the kept (channel) axes form one block, else None."""
        axes = self._axes(axes, x.ndim)
        kept = [i for i in range(x.ndim) if i not in axes]
        if kept and kept != list(range(kept[0], kept[-1] + 1)):
            return None
        if not kept:
            return 1, 1, x.size
        A = math.prod(x.shape[:kept[0]])
        K = math.prod(x.shape[kept[0]:kept[-1] + 1])
        return A, K, math.prod(x.shape[kept[-1] + 1:])

    def _bn_permuted(self, x: GpuArray, axes: Sequence[int]) -> tuple[list[int], list[int]]:
        axes = list(self._axes(axes, x.ndim))
        kept = [i for i in range(x.ndim) if i not in axes]
        perm = kept + axes
        inv = [perm.index(i) for i in range(x.ndim)]
        return perm, inv

    def batch_norm_train(self, x: GpuArray, gamma: GpuArray, beta: GpuArray,
                         axes: tuple[int, ...], eps: float) -> tuple[GpuArray, GpuArray, GpuArray]:
        x, gamma, beta = self._arr(x), self._arr(gamma), self._arr(beta)
        view = self._bn_view(x, axes)
        if view is None:
            perm, inv = self._bn_permuted(x, axes)
            n_kept = x.ndim - len(self._axes(axes, x.ndim))
            y, mean, invstd = self.batch_norm_train(self.permute(x, perm), gamma, beta,
                                                    tuple(range(n_kept, x.ndim)), eps)
            return self.permute(y, inv), mean, invstd
        A, K, B = view
        y = self._new(x.shape, F32_DT)
        mean = self._new(gamma.shape, F32_DT)
        invstd = self._new(gamma.shape, F32_DT)
        p = Params().u(A, K, B, 0).f(eps, 0, 0, 0)
        self._run("batchnorm", "bn_train", "wwwrrr", p, [y, mean, invstd, x, gamma, beta],
                  grid_groups(K))
        return y, mean, invstd

    def batch_norm_grad(self, gy: GpuArray, x: GpuArray, gamma: GpuArray, mean: GpuArray,
                        invstd: GpuArray, axes: tuple[int, ...]
                        ) -> tuple[GpuArray, GpuArray, GpuArray]:
        gy, x, gamma = self._arr(gy), self._arr(x), self._arr(gamma)
        mean, invstd = self._arr(mean), self._arr(invstd)
        view = self._bn_view(x, axes)
        if view is None:
            perm, inv = self._bn_permuted(x, axes)
            n_kept = x.ndim - len(self._axes(axes, x.ndim))
            gx, gg, gb = self.batch_norm_grad(self.permute(gy, perm), self.permute(x, perm),
                                              gamma, mean, invstd,
                                              tuple(range(n_kept, x.ndim)))
            return self.permute(gx, inv), gg, gb
        A, K, B = view
        gx = self._new(x.shape, F32_DT)
        ggamma = self._new(gamma.shape, F32_DT)
        gbeta = self._new(gamma.shape, F32_DT)
        p = Params().u(A, K, B, 0).f(0, 0, 0, 0)
        self._run("batchnorm", "bn_grad", "wwwrrrrr", p,
                  [gx, ggamma, gbeta, gy, x, gamma, mean, invstd], grid_groups(K))
        return gx, ggamma, gbeta

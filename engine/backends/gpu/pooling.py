"""shaders/pooling.wgsl: max and average pooling and their gradients (fast kernels)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..window import conv_out_size
from .array import GpuArray
from .core import GpuCore
from .device import Params
from .layout import F32_DT, Pair, grid, pair


class PoolingKernels(GpuCore):
    """maxpool2d (+ argmax) and avgpool2d with their gradients."""

    def _pool_geom(self, x_shape: Sequence[int], kernel: Pair, stride: Pair, pad: Pair,
                   dilation: Pair) -> tuple[Params, dict[str, int], tuple[int, int]]:
        """Uniform parameters, specialisation constants and output size of a pooling."""
        n, c, h, w = (int(s) for s in x_shape)
        kernel, stride, pad, dilation = (pair(kernel), pair(stride), pair(pad),
                                         pair(dilation))
        ho = conv_out_size(h, kernel[0], stride[0], pad[0], dilation[0])
        wo = conv_out_size(w, kernel[1], stride[1], pad[1], dilation[1])
        if ho <= 0 or wo <= 0:
            raise ValueError(f"pool: window {kernel} does not fit input {(h, w)} with padding "
                             f"{pad}")
        consts = dict(H=h, W=w, HO=ho, WO=wo, KH=kernel[0], KW=kernel[1], SH=stride[0],
                      SW=stride[1], DH=dilation[0], DW=dilation[1], PH=pad[0], PW=pad[1])
        return Params().u(n * c, 0, 0, 0), consts, (ho, wo)

    def maxpool2d(self, x: GpuArray, kernel: Pair, stride: Pair, pad: Pair,
                  dilation: Pair) -> tuple[GpuArray, GpuArray]:
        x = self._arr(x)
        p, consts, (ho, wo) = self._pool_geom(x.shape, kernel, stride, pad, dilation)
        shape = (x.shape[0], x.shape[1], ho, wo)
        out = self._new(shape, F32_DT)
        geom = (pair(kernel), pair(stride), pair(pad), pair(dilation))
        arg = self._new(shape, np.int32, meta=geom)
        if out.size:
            self._run("pooling", "maxpool", "wrw", p, [out, x, arg], grid(out.size), **consts)
        return out, arg

    def maxpool2d_grad(self, gy: GpuArray, argmax: GpuArray,
                       x_shape: Sequence[int]) -> GpuArray:
        gy, argmax = self._arr(gy), self._arr(argmax)
        out = self._new(tuple(int(s) for s in x_shape), F32_DT)
        if out.size == 0:
            return out
        n, c, h, w = out.shape
        ho, wo = gy.shape[2], gy.shape[3]
        if isinstance(argmax.meta, tuple):  # windows known: gather over the covering taps
            kernel, stride, pad, dilation = argmax.meta
            p, consts, _ = self._pool_geom(x_shape, kernel, stride, pad, dilation)
            self._run("pooling", "maxpool_grad", "wrw", p, [out, gy, argmax], grid(out.size),
                      **consts)
        else:  # e.g. an argmax uploaded from the host: scan the whole output plane
            self._run("pooling", "maxpool_grad_scan", "wrw", Params().u(n * c, 0, 0, 0),
                      [out, gy, argmax], grid(out.size), H=h, W=w, HO=ho, WO=wo)
        return out

    def avgpool2d(self, x: GpuArray, kernel: Pair, stride: Pair, pad: Pair,
                  count_include_pad: bool) -> GpuArray:
        x = self._arr(x)
        p, consts, (ho, wo) = self._pool_geom(x.shape, kernel, stride, pad, (1, 1))
        out = self._new((x.shape[0], x.shape[1], ho, wo), F32_DT)
        if out.size:
            self._run("pooling", "avgpool", "wr", p, [out, x], grid(out.size),
                      INCLUDE_PAD=bool(count_include_pad), **consts)
        return out

    def avgpool2d_grad(self, gy: GpuArray, x_shape: Sequence[int], kernel: Pair,
                       stride: Pair, pad: Pair, count_include_pad: bool) -> GpuArray:
        gy = self._arr(gy)
        p, consts, _ = self._pool_geom(x_shape, kernel, stride, pad, (1, 1))
        out = self._new(tuple(int(s) for s in x_shape), F32_DT)
        if out.size:
            self._run("pooling", "avgpool_grad", "wr", p, [out, gy], grid(out.size),
                      INCLUDE_PAD=bool(count_include_pad), **consts)
        return out

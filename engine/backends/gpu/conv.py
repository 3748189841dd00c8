"""shaders/conv2d.wgsl: implicit-GEMM convolution and its two gradients (fast kernels)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..window import conv_out_size
from .array import GpuArray
from .core import GpuCore
from .device import Params
from .layout import F32_DT, Pair, pair, tiles


class ConvKernels(GpuCore):
    """conv2d, conv2d_grad_input, conv2d_grad_weight."""

    def _conv_gemm(self, mode: int, out: GpuArray, x_op: GpuArray, y_op: GpuArray,
                   geom: dict[str, int], M: int, N: int, K: int, groups: int,
                   splits: int = 1) -> None:
        g = geom
        p = Params().u(M, N, K, -(-K // splits))
        bm, bn, bk = tiles(M, N, groups * splits)
        self._run("conv2d", "main", "wrr", p, [out, x_op, y_op],
                  (-(-N // bn), -(-M // bm), groups * splits), MODE=mode, BM=bm, BN=bn, BK=bk,
                  GROUPS=groups, SPLITS=splits, C_IN=g["c"], H=g["h"], W=g["w"],
                  C_OUT=g["co"], HO=g["ho"], WO=g["wo"], KH=g["kh"], KW=g["kw"], SH=g["sh"],
                  SW=g["sw"], DH=g["dh"], DW=g["dw"], PH=g["ph"], PW=g["pw"])

    def _conv_geom(self, x_shape: Sequence[int], w_shape: Sequence[int], stride: Pair,
                   pad: Pair, dilation: Pair, groups: int) -> dict[str, int]:
        n, c, h, w = (int(s) for s in x_shape)
        co, cg, kh, kw = (int(s) for s in w_shape)
        stride, pad, dilation = pair(stride), pair(pad), pair(dilation)
        if c != cg * groups or co % groups:
            raise ValueError(f"conv2d: input has {c} channels and weight {tuple(w_shape)} "
                             f"with groups={groups}; need C_in == weight.shape[1] * groups and "
                             "C_out divisible by groups")
        ho = conv_out_size(h, kh, stride[0], pad[0], dilation[0])
        wo = conv_out_size(w, kw, stride[1], pad[1], dilation[1])
        if ho <= 0 or wo <= 0:
            raise ValueError(f"conv2d: kernel {(kh, kw)} (dilation {dilation}) does not fit "
                             f"input {(h, w)} with padding {pad}")
        return dict(n=n, c=c, h=h, w=w, co=co, cg=cg, kh=kh, kw=kw, ho=ho, wo=wo,
                    sh=stride[0], sw=stride[1], ph=pad[0], pw=pad[1], dh=dilation[0],
                    dw=dilation[1])

    def conv2d(self, x: GpuArray, w: GpuArray, stride: Pair, pad: Pair, dilation: Pair,
               groups: int) -> GpuArray:
        x, w = self._arr(x), self._arr(w)
        g = self._conv_geom(x.shape, w.shape, stride, pad, dilation, groups)
        out = self._new((g["n"], g["co"], g["ho"], g["wo"]), F32_DT)
        M, N, K = g["co"] // groups, g["n"] * g["ho"] * g["wo"], g["cg"] * g["kh"] * g["kw"]
        self._conv_gemm(0, out, x, w, g, M, N, K, groups)
        return out

    def conv2d_grad_input(self, gy: GpuArray, w: GpuArray, x_shape: Sequence[int],
                          stride: Pair, pad: Pair, dilation: Pair, groups: int) -> GpuArray:
        gy, w = self._arr(gy), self._arr(w)
        g = self._conv_geom(x_shape, w.shape, stride, pad, dilation, groups)
        g["ho"], g["wo"] = gy.shape[2], gy.shape[3]  # as given (transposed convolutions)
        out = self._new(tuple(int(s) for s in x_shape), F32_DT)
        M, N = g["cg"], g["n"] * g["h"] * g["w"]
        K = (g["co"] // groups) * g["kh"] * g["kw"]
        self._conv_gemm(1, out, gy, w, g, M, N, K, groups)
        return out

    def conv2d_grad_weight(self, gy: GpuArray, x: GpuArray, w_shape: Sequence[int],
                           stride: Pair, pad: Pair, dilation: Pair, groups: int) -> GpuArray:
        gy, x = self._arr(gy), self._arr(x)
        g = self._conv_geom(x.shape, w_shape, stride, pad, dilation, groups)
        M, N = g["co"] // groups, g["cg"] * g["kh"] * g["kw"]
        K = g["n"] * g["ho"] * g["wo"]
        bm, bn, _ = tiles(M, N, groups)
        n_tiles = -(-M // bm) * -(-N // bn) * groups
        # split-K: long reductions (batch * pixels) over few output tiles get more workgroups
        splits = max(1, min(K // 512, 64 // n_tiles if n_tiles < 64 else 1))
        wshape = tuple(int(s) for s in w_shape)
        if splits == 1:
            out = self._new(wshape, F32_DT)
            self._conv_gemm(2, out, gy, x, g, M, N, K, groups)
            return out
        part = self._new((splits, math.prod(wshape)), F32_DT)
        self._conv_gemm(2, part, gy, x, g, M, N, K, groups, splits)
        return self.reshape(self.reduce("sum", part, (0,), False), wshape)

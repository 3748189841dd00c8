"""2-D convolution (cross-correlation, NCHW) and its adjoint, the transposed convolution.

The references gather one strided slice per kernel tap and contract them with the weight
in one batched matmul (im2col in Tensor ops); the fast paths are the backends' im2col +
BLAS (NumPy) and implicit-GEMM (WGSL) kernels with their two gradient kernels.
"""

from __future__ import annotations

import numpy as np

from .. import functions as F
from .. import tensor as T
from ..autograd import is_grad_enabled
from ..backends.window import conv_out_size, conv_transpose_out_size
from .movement import pad
from .registry import Function, FusedKernel, Sample

Pair = tuple[int, int]


def taps(x: T.Tensor, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair,
         value: float = 0.0) -> tuple[T.Tensor, int, int]:
    """(N, C, kH*kW, Ho, Wo): every window tap of NCHW `x` padded with `value` (shared by
    the convolution and pooling references), plus the output size (Ho, Wo)."""
    n, c, h, w = x.shape
    ho = conv_out_size(h, kernel[0], stride[0], padding[0], dilation[0])
    wo = conv_out_size(w, kernel[1], stride[1], padding[1], dilation[1])
    if padding != (0, 0):
        x = pad(x, widths=[(0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2], value=value)
    cols = []
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            r, q = i * dilation[0], j * dilation[1]
            cols.append(x[:, :, r: r + stride[0] * (ho - 1) + 1: stride[0],
                          q: q + stride[1] * (wo - 1) + 1: stride[1]])
    return T.stack(cols, 2), ho, wo


def _conv2d_ref(x: T.Tensor, w: T.Tensor, bias: T.Tensor | None = None,
                stride: Pair = (1, 1), padding: Pair = (0, 0), dilation: Pair = (1, 1),
                groups: int = 1) -> T.Tensor:
    """y[n, o] = sum over the group's input channels and taps of w * x (+ bias[o])."""
    n = x.shape[0]
    co, cg, kh, kw = w.shape
    cols, ho, wo = taps(x, (kh, kw), stride, padding, dilation)
    cols = cols.reshape(n, groups, cg * kh * kw, ho * wo)
    y = (w.reshape(groups, co // groups, cg * kh * kw) @ cols).reshape(n, co, ho, wo)
    return y if bias is None else y + bias.reshape(1, co, 1, 1)


def _conv_samples(rng: np.random.Generator) -> list[Sample]:
    def r(*s: int) -> np.ndarray:
        return rng.standard_normal(s, dtype=np.float32)
    geo = lambda s, p, d, g: {"stride": s, "padding": p, "dilation": d, "groups": g}  # noqa: E731
    return [Sample((r(2, 3, 7, 7), r(4, 3, 3, 3), r(4)), geo((1, 1), (1, 1), (1, 1), 1),
                   atol=1e-4),
            Sample((r(1, 4, 8, 7), r(6, 2, 3, 2), None), geo((2, 1), (1, 0), (2, 1), 2),
                   atol=1e-4),
            Sample((r(2, 1, 9, 9), r(3, 1, 5, 5), None), geo((1, 1), (2, 2), (1, 1), 1),
                   atol=2e-4),
            # wide enough for the CPU's channels-last path (`_wide`), with stride, dilation
            # and uneven padding: its per-tap col2im ranges
            Sample((r(2, 8, 9, 8), r(16, 8, 3, 2), r(16)), geo((2, 1), (1, 2), (2, 3), 1),
                   atol=1e-4),
            Sample((r(1, 8, 6, 7), r(16, 8, 2, 3), None), geo((3, 2), (0, 1), (1, 1), 1),
                   atol=1e-4)]


conv2d = FusedKernel("conv2d", _conv2d_ref, samples=_conv_samples)


def _wide(x, w, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
          groups: int = 1) -> bool:
    """Channels-last pays when a pixel's channels make long contiguous runs: at least 16
    output channels, and 8 input channels unless no input gradient is scattered back
    (measured: LeNet-5's 1->6 and 6->16 layers are faster in NCHW, CIFAR's 3->32 and
    every wider layer channels-last) -- except on a single image, where a narrow input's
    im2col is small and NCHW wins even without an input gradient (measured, conv + bias +
    ReLU: LeNet-5's 6->16 0.093 -> 0.049 ms, CIFAR's 3->32 0.18 -> 0.09 ms)."""
    return groups == 1 and w.shape[0] >= 16 and (
        w.shape[1] >= 8 or (not x.requires_grad and x.shape[0] > 1))


@conv2d.fast("conv2d_nhwc", "conv2d_nhwc_grad", supports=_wide)
class _Conv2dChannelsLast(Function):
    """The NumPy backend's channels-last convolution (see backends/cpu_channels_last.py):
    the bias is added in place on the GEMM output, and the patch matrix is kept for the
    weight gradient only when one will be asked for."""

    def forward(self, x, w, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                groups: int = 1):
        self.w, self.shape, self.p = w, x.shape, (stride, padding, dilation)
        keep = self.needs[1] and is_grad_enabled()
        y, self.cols = self.b.conv2d_nhwc(x, w, bias, stride, padding, dilation, keep)
        return y

    def backward(self, g):
        needs = self.needs
        return self.b.conv2d_nhwc_grad(g, self.cols, self.w, self.shape, *self.p, needs[0],
                                       needs[1], len(needs) > 2 and needs[2])


class _Conv2dNchw(Function):
    """The NCHW im2col convolution (NumPy) or implicit GEMM (WGSL) with its bias."""

    def forward(self, x, w, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                groups: int = 1):
        self.x, self.w = x, w
        self.p = (stride, padding, dilation, groups)
        y = self.b.conv2d(x, w, *self.p)
        if bias is not None:
            y = self.b.binary("add", y, self.b.reshape(bias, (1, -1, 1, 1)))
        return y


@conv2d.fast("conv2d", "conv2d_grads")
class _Conv2dGrads(_Conv2dNchw):
    """The NumPy backend's: its gradients in one call, side by side on the threads."""

    def backward(self, g):
        needs = self.needs
        return self.b.conv2d_grads(g, self.x, self.w, *self.p, needs[0], needs[1],
                                   len(needs) > 2 and needs[2])


@conv2d.fast("conv2d", "conv2d_grad_input", "conv2d_grad_weight")
class _Conv2d(_Conv2dNchw):
    def backward(self, g):
        bk = self.b
        gx = bk.conv2d_grad_input(g, self.w, self.x.shape, *self.p) if self.needs[0] else None
        gw = bk.conv2d_grad_weight(g, self.x, self.w.shape, *self.p) if self.needs[1] else None
        gb = bk.reduce("sum", g, (0, 2, 3), False) if len(self.needs) > 2 else None
        return gx, gw, gb


def _conv_transpose2d_ref(x: T.Tensor, w: T.Tensor, out_hw: Pair = (0, 0),
                          stride: Pair = (1, 1), padding: Pair = (0, 0),
                          dilation: Pair = (1, 1), groups: int = 1) -> T.Tensor:
    """Each input pixel spreads w[c_in] over the output: out[oh] += x[ih] w[tap] where
    oh = ih * stride - padding + tap * dilation. w is (C_in, C_out / groups, kH, kW)."""
    n, ci, h, wd = x.shape
    _, cog, kh, kw = w.shape
    co = cog * groups
    # every tap's contribution at once: (N, G, C_out/G * kH * kW, H * W)
    wt = w.reshape(groups, ci // groups, cog * kh * kw).transpose(1, 2)
    contrib = (wt @ x.reshape(n, groups, ci // groups, h * wd)).reshape(n, co, kh * kw, h, wd)
    size = [max(out_hw[a] + 2 * padding[a],
                conv_transpose_out_size(x.shape[2 + a], (kh, kw)[a], stride[a], 0, dilation[a]))
            for a in range(2)]
    total = None
    for i in range(kh):
        for j in range(kw):
            r, q = i * dilation[0], j * dilation[1]
            index = (slice(None), slice(None), slice(r, r + stride[0] * (h - 1) + 1, stride[0]),
                     slice(q, q + stride[1] * (wd - 1) + 1, stride[1]))
            part = F.IndexAdd.apply(contrib[:, :, i * kw + j], shape=(n, co, *size),
                                    index=index)
            total = part if total is None else total + part
    return total[:, :, padding[0]: padding[0] + out_hw[0], padding[1]: padding[1] + out_hw[1]]


def _conv_transpose_samples(rng: np.random.Generator) -> list[Sample]:
    def r(*s: int) -> np.ndarray:
        return rng.standard_normal(s, dtype=np.float32)
    return [Sample((r(2, 3, 4, 5), r(3, 2, 3, 3)), {"out_hw": (8, 10), "stride": (2, 2),
                                                     "padding": (1, 1)}, atol=1e-4),
            Sample((r(1, 4, 5, 5), r(4, 1, 2, 3)), {"out_hw": (7, 7), "stride": (1, 1),
                                                     "padding": (0, 1), "dilation": (2, 2),
                                                     "groups": 2}, atol=1e-4)]


conv_transpose2d = FusedKernel("conv_transpose2d", _conv_transpose2d_ref,
                               samples=_conv_transpose_samples)


@conv_transpose2d.fast("conv2d", "conv2d_grad_input", "conv2d_grad_weight")
class _ConvTranspose2d(Function):
    """Conv2d's input gradient run forwards; its gradients are a Conv2d and a weight
    gradient, so it needs no kernel of its own."""

    def forward(self, x, w, out_hw=(0, 0), stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                groups: int = 1):
        self.x, self.w = x, w
        self.p = (stride, padding, dilation, groups)
        shape = (x.shape[0], w.shape[1] * groups, *out_hw)
        return self.b.conv2d_grad_input(x, w, shape, *self.p)

    def backward(self, g):
        bk = self.b
        gx = bk.conv2d(g, self.w, *self.p) if self.needs[0] else None
        gw = bk.conv2d_grad_weight(self.x, g, self.w.shape, *self.p) if self.needs[1] else None
        return gx, gw

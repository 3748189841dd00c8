"""Max and average pooling over 2-D windows of NCHW input.

The references reduce the stacked window taps (`conv.taps`); the fast paths are the
backends' pooling kernels, max pooling keeping the argmax of each window for its
gradient (the first maximum wins, as in PyTorch; the reference shares ties equally).
"""

from __future__ import annotations

import math

import numpy as np

from .. import tensor as T
from ..autograd import is_grad_enabled
from ..backends.window import conv_out_size
from .conv import taps
from .registry import Function, FusedKernel, Sample

Pair = tuple[int, int]


def _max_pool2d_ref(x: T.Tensor, kernel: Pair = (2, 2), stride: Pair = (2, 2),
                    padding: Pair = (0, 0), dilation: Pair = (1, 1)) -> T.Tensor:
    """The maximum of each window; padding counts as -inf."""
    cols, _, _ = taps(x, kernel, stride, padding, dilation, value=-math.inf)
    return cols.max(2)


def _pool_samples(rng: np.random.Generator, dilated: bool) -> list[Sample]:
    x = rng.standard_normal((2, 3, 7, 8), dtype=np.float32)
    out = [Sample((x,), {"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0)}),
           Sample((x,), {"kernel": (3, 2), "stride": (2, 1), "padding": (1, 0)}),
           Sample((x,), {"kernel": (3, 3), "stride": (1, 1), "padding": (1, 1)})]
    if dilated:  # (max pooling) and windows that tile the input exactly, 2x4 stride 2x4
        out.append(Sample((rng.standard_normal((2, 3, 6, 8), dtype=np.float32),),
                          {"kernel": (2, 4), "stride": (2, 4), "padding": (0, 0)}))
        out.append(Sample((x,), {"kernel": (2, 2), "stride": (1, 2), "padding": (0, 1),
                                 "dilation": (2, 1)}))
    return out


max_pool2d = FusedKernel("max_pool2d", _max_pool2d_ref,
                         samples=lambda rng: _pool_samples(rng, True))


def _no_grad(x, *args, **params) -> bool:
    return not (x.requires_grad and is_grad_enabled())


@max_pool2d.fast("maxpool2d_values", supports=_no_grad)
class _MaxPool2dInference(Function):
    """Max pooling when no gradient will be asked for: no argmax is computed or kept."""

    def forward(self, x, kernel=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1)):
        return self.b.maxpool2d_values(x, kernel, stride, padding, dilation)

    def backward(self, g):
        raise RuntimeError("internal: the inference max pooling has no backward")


@max_pool2d.fast("maxpool2d", "maxpool2d_grad")
class _MaxPool2d(Function):
    def forward(self, x, kernel=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1)):
        self.shape = tuple(x.shape)
        out, self.argmax = self.b.maxpool2d(x, kernel, stride, padding, dilation)
        return out

    def backward(self, g):
        return self.b.maxpool2d_grad(g, self.argmax, self.shape)


def window_counts(size: int, k: int, s: int, p: int) -> np.ndarray:
    """How many of each window's k taps fall inside `size` unpadded samples."""
    starts = np.arange(conv_out_size(size, k, s, p, 1)) * s - p
    return np.clip(np.minimum(starts + k, size) - np.maximum(starts, 0), 0, None)


def _avg_pool2d_ref(x: T.Tensor, kernel: Pair = (2, 2), stride: Pair = (2, 2),
                    padding: Pair = (0, 0), count_include_pad: bool = True) -> T.Tensor:
    """The mean of each window: padded zeros count unless count_include_pad is False."""
    cols, _, _ = taps(x, kernel, stride, padding, (1, 1))
    total = cols.sum(2)
    if count_include_pad or padding == (0, 0):
        return total * (1.0 / (kernel[0] * kernel[1]))
    counts = np.outer(*(window_counts(x.shape[2 + a], kernel[a], stride[a], padding[a])
                        for a in range(2)))
    return total / T.Tensor(counts.astype(x.dtype), device=x.device, dtype=x.dtype)


def _avg_samples(rng: np.random.Generator) -> list[Sample]:
    out = []
    for s in _pool_samples(rng, False):
        for include in (True, False):
            out.append(Sample(s.args, {**s.params, "count_include_pad": include}))
    return out


avg_pool2d = FusedKernel("avg_pool2d", _avg_pool2d_ref, samples=_avg_samples)


@avg_pool2d.fast("avgpool2d", "avgpool2d_grad")
class _AvgPool2d(Function):
    def forward(self, x, kernel=(2, 2), stride=(2, 2), padding=(0, 0),
                count_include_pad: bool = True):
        self.shape, self.p = tuple(x.shape), (kernel, stride, padding, count_include_pad)
        return self.b.avgpool2d(x, *self.p)

    def backward(self, g):
        return self.b.avgpool2d_grad(g, self.shape, *self.p)

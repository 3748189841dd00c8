"""Batch normalisation with batch statistics (the training-mode forward).

Returns (y, mean, invstd): the normalised output and, without gradient, the batch mean
and inverse standard deviation shaped like gamma (the caller updates running statistics
from them). Fused because the composed version keeps several full-size temporaries for
its backward; the fast paths keep only x.
"""

from __future__ import annotations

import numpy as np

from .. import tensor as T
from .registry import Function, FusedKernel, Sample


def _batch_norm_ref(x: T.Tensor, gamma: T.Tensor, beta: T.Tensor,
                    axes: tuple[int, ...] = (0,), eps: float = 1e-5
                    ) -> tuple[T.Tensor, T.Tensor, T.Tensor]:
    """y = (x - mean) / sqrt(var + eps) * gamma + beta, statistics over `axes` (biased)."""
    keep = tuple(1 if i in axes else s for i, s in enumerate(x.shape))
    mean = x.mean(axes, keepdims=True)
    xc = x - mean
    invstd = ((xc * xc).mean(axes, keepdims=True) + eps) ** -0.5
    y = xc * (invstd * gamma.reshape(keep)) + beta.reshape(keep)
    return y, mean.reshape(gamma.shape), invstd.reshape(gamma.shape)


def _bn_samples(rng: np.random.Generator) -> list[Sample]:
    def r(*s: int) -> np.ndarray:
        return rng.standard_normal(s, dtype=np.float32)
    return [Sample((r(4, 3, 5, 5) * 2 + 1, r(3), r(3)), {"axes": (0, 2, 3), "eps": 1e-5},
                   atol=1e-4),
            Sample((r(16, 6), r(6), r(6)), {"axes": (0,), "eps": 1e-3}, atol=1e-4),
            Sample((r(4, 3, 7), r(4, 7), r(4, 7)), {"axes": (1,), "eps": 1e-5}, atol=1e-4)]


batch_norm = FusedKernel("batch_norm", _batch_norm_ref, samples=_bn_samples, stats=2)


@batch_norm.fast("batch_norm_train", "batch_norm_grad")
class _BatchNorm(Function):
    grad_outputs = 1  # mean and invstd carry no gradient

    def forward(self, x, gamma, beta, axes: tuple[int, ...] = (0,), eps: float = 1e-5):
        self.x, self.gamma, self.axes = x, gamma, axes
        y, self.mean, self.invstd = self.b.batch_norm_train(x, gamma, beta, axes, eps)
        return y, self.mean, self.invstd

    def backward(self, g):
        return self.b.batch_norm_grad(g, self.x, self.gamma, self.mean, self.invstd, self.axes)

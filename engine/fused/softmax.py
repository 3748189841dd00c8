"""Softmax, log-softmax and softmax cross-entropy, all shifted by the maximum so that no
large logit is ever exponentiated."""

from __future__ import annotations

import numpy as np

from .. import functions as F
from .. import tensor as T
from .registry import Function, FusedKernel, Sample


def _softmax_ref(x: T.Tensor, axis: int = -1) -> T.Tensor:
    """exp(x - max) / sum exp(x - max) along `axis`."""
    e = (x - x.max(axis, keepdims=True).detach()).exp()
    return e / e.sum(axis, keepdims=True)


def _log_softmax_ref(x: T.Tensor, axis: int = -1) -> T.Tensor:
    """(x - max) - log sum exp(x - max) along `axis`."""
    s = x - x.max(axis, keepdims=True).detach()
    return s - s.exp().sum(axis, keepdims=True).log()


def _softmax_samples(rng: np.random.Generator) -> list[Sample]:
    out = []
    for shape, axis in (((4, 10), 1), ((4, 10), 0), ((2, 5, 3), 1), ((3, 200), 1)):
        a = rng.standard_normal(shape, dtype=np.float32) * 5
        a.flat[0] = 80.0  # exp would overflow without the shift
        out.append(Sample((a,), {"axis": axis}))
    return out


softmax = FusedKernel("softmax", _softmax_ref, samples=_softmax_samples)
log_softmax = FusedKernel("log_softmax", _log_softmax_ref, samples=_softmax_samples)


@softmax.fast("softmax")
class _Softmax(Function):
    def forward(self, a, axis: int = -1):
        self.axis = axis
        self.out = self.b.softmax(a, axis)
        return self.out

    def backward(self, g):
        bk = self.b
        dot = bk.reduce("sum", bk.binary("mul", g, self.out), (self.axis,), True)
        return bk.binary("mul", self.out, bk.binary("sub", g, dot))


@log_softmax.fast("log_softmax")
class _LogSoftmax(Function):
    def forward(self, a, axis: int = -1):
        self.axis = axis
        self.out = self.b.log_softmax(a, axis)
        return self.out

    def backward(self, g):
        bk = self.b
        total = bk.reduce("sum", g, (self.axis,), True)
        return bk.binary("sub", g, bk.binary("mul", bk.unary("exp", self.out), total))


def _cross_entropy_ref(logits: T.Tensor, labels: T.Tensor) -> T.Tensor:
    """-log softmax(logits)[n, labels[n]] for logits (N, C) and integer labels (N,)."""
    picked = F.TakeAlong.apply(log_softmax(logits, axis=1), labels.reshape(-1, 1), axis=1)
    return -picked.reshape(-1)


def _xent_samples(rng: np.random.Generator) -> list[Sample]:
    x = rng.standard_normal((16, 10), dtype=np.float32) * 3
    x[0, 3] = 90.0
    return [Sample((x, rng.integers(0, 10, 16))),
            Sample((x[:5, :3], np.array([2, 0, 1, 1, 2])))]


cross_entropy = FusedKernel("cross_entropy", _cross_entropy_ref, samples=_xent_samples)


@cross_entropy.fast("softmax_cross_entropy", "softmax_cross_entropy_grad")
class _CrossEntropy(Function):
    def forward(self, logits, labels):
        loss, self.probs = self.b.softmax_cross_entropy(logits, labels)
        self.labels = labels
        return loss

    def backward(self, g):
        return self.b.softmax_cross_entropy_grad(g, self.probs, self.labels), None

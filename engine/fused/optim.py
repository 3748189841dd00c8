"""Optimizer updates, in place: the references are PyTorch's update rules in Tensor ops
(as in tinygrad), the fast paths one fused kernel per parameter (NumPy in place, WGSL)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .. import tensor as T
from .registry import FusedUpdate, Sample


def _decayed(p: T.Tensor, g: T.Tensor, weight_decay: float) -> T.Tensor:
    return g + p * weight_decay if weight_decay else g


def _sgd_ref(p: T.Tensor, g: T.Tensor, buf: T.Tensor | None, lr: float = 1e-3,
             momentum: float = 0.0, dampening: float = 0.0, nesterov: bool = False,
             weight_decay: float = 0.0, first: bool = False) -> None:
    """b = momentum b + (1 - dampening) g (b = g at first); p -= lr (g + momentum b if
    nesterov else b); g += weight_decay p."""
    g = _decayed(p, g, weight_decay)
    if momentum:
        buf.assign_(g if first else buf * momentum + g * (1.0 - dampening))
        g = g + buf * momentum if nesterov else buf
    p.assign_(p - g * lr)


def _adagrad_ref(p: T.Tensor, g: T.Tensor, acc: T.Tensor, lr: float = 1e-2,
                 eps: float = 1e-10, weight_decay: float = 0.0) -> None:
    """acc += g^2; p -= lr g / (sqrt(acc) + eps)."""
    g = _decayed(p, g, weight_decay)
    acc.assign_(acc + g * g)
    p.assign_(p - g * lr / (acc.sqrt() + eps))


def _rmsprop_ref(p: T.Tensor, g: T.Tensor, sq: T.Tensor, buf: T.Tensor | None,
                 lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 momentum: float = 0.0, weight_decay: float = 0.0) -> None:
    """sq = alpha sq + (1 - alpha) g^2; step = g / (sqrt(sq) + eps), through a momentum
    buffer b = momentum b + step when momentum; p -= lr step."""
    g = _decayed(p, g, weight_decay)
    sq.assign_(sq * alpha + g * g * (1.0 - alpha))
    step = g / (sq.sqrt() + eps)
    if momentum:
        buf.assign_(buf * momentum + step)
        step = buf
    p.assign_(p - step * lr)


def _adam_ref(p: T.Tensor, g: T.Tensor, m: T.Tensor, v: T.Tensor, lr: float = 1e-3,
              beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
              weight_decay: float = 0.0, decoupled: bool = False, step: int = 1) -> None:
    """m, v: moving averages of g and g^2; p -= lr / (1 - b1^t) m / (sqrt(v) /
    sqrt(1 - b2^t) + eps). Weight decay joins g (Adam) or shrinks p (AdamW)."""
    if weight_decay and decoupled:
        p.assign_(p * (1.0 - lr * weight_decay))
    elif weight_decay:
        g = g + p * weight_decay
    m.assign_(m * beta1 + g * (1.0 - beta1))
    v.assign_(v * beta2 + g * g * (1.0 - beta2))
    denom = v.sqrt() * (1.0 / math.sqrt(1.0 - beta2 ** step)) + eps
    p.assign_(p - m * (lr / (1.0 - beta1 ** step)) / denom)


def _samples(n_state: int, configs: list[dict]) -> Callable[[np.random.Generator], list]:
    def make(rng: np.random.Generator) -> list[Sample]:
        p = rng.standard_normal((5, 7), dtype=np.float32)
        g = rng.standard_normal((5, 7), dtype=np.float32)
        state = [np.abs(rng.standard_normal((5, 7), dtype=np.float32)) for _ in range(n_state)]
        return [Sample((p, g, *state), cfg, rtol=2e-5, atol=2e-6) for cfg in configs]
    return make


sgd_step = FusedUpdate("sgd_step", _sgd_ref, samples=_samples(1, [
    dict(lr=0.1, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0, first=False),
    dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=False, weight_decay=0.01, first=False),
    dict(lr=0.1, momentum=0.9, dampening=0.0, nesterov=True, weight_decay=0.0, first=True)]))
adagrad_step = FusedUpdate("adagrad_step", _adagrad_ref, samples=_samples(1, [
    dict(lr=0.1, eps=1e-10, weight_decay=0.01)]))
rmsprop_step = FusedUpdate("rmsprop_step", _rmsprop_ref, samples=_samples(2, [
    dict(lr=0.01, alpha=0.99, eps=1e-8, momentum=0.0, weight_decay=0.0),
    dict(lr=0.01, alpha=0.9, eps=1e-8, momentum=0.9, weight_decay=0.01)]))
adam_step = FusedUpdate("adam_step", _adam_ref, samples=_samples(2, [
    dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False, step=1),
    dict(lr=1e-2, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0.1, decoupled=False, step=3),
    dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1, decoupled=True, step=2)]))


@sgd_step.fast("sgd_step_")
def _sgd(b, arrays, hp) -> None:
    b.sgd_step_(*arrays, **hp)


@adagrad_step.fast("adagrad_step_")
def _adagrad(b, arrays, hp) -> None:
    b.adagrad_step_(*arrays, **hp)


@rmsprop_step.fast("rmsprop_step_")
def _rmsprop(b, arrays, hp) -> None:
    b.rmsprop_step_(*arrays, **hp)


@adam_step.fast("adam_step_")
def _adam(b, arrays, hp) -> None:
    b.adam_step_(*arrays, **hp)

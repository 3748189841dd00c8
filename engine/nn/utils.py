"""Gradient clipping (the standard fix for exploding gradients), and `model_device`.

Both clipping functions rebind each parameter's `.grad` to a new Tensor (they never write
into gradient arrays), and `clip_grad_norm_` stays on the device: the total norm is a
Tensor and the scale factor is applied without reading it back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ..autograd import no_grad
from ..tensor import Tensor, maximum, minimum


def model_device(model: Any) -> str:
    """The device a model computes on: its first parameter's, else its `device`
    attribute (models without parameters), else "cpu"."""
    for p in model.parameters():
        return p.device
    return getattr(model, "device", None) or "cpu"


def _with_grads(parameters: Iterable[Tensor] | Tensor) -> list[Tensor]:
    ps = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p for p in ps if p.grad is not None]


def clip_grad_norm_(parameters: Iterable[Tensor] | Tensor, max_norm: float,
                    norm_type: float = 2.0) -> Tensor:
    """Scale all gradients together so their joint norm is at most `max_norm`.

    The norm is taken over all gradients as if concatenated into one vector (inf for the
    max-abs norm). Returns the norm before clipping, as a 0-d Tensor (as PyTorch does).
    """
    ps = _with_grads(parameters)
    norm_type = float(norm_type)
    if not ps:
        return Tensor(0.0)
    with no_grad():
        grads = [p.grad for p in ps]
        if math.isinf(norm_type):
            total = grads[0].abs().max()
            for g in grads[1:]:
                total = maximum(total, g.abs().max())
        else:
            acc = (grads[0].abs() ** norm_type).sum()
            for g in grads[1:]:
                acc = acc + (g.abs() ** norm_type).sum()
            total = acc ** (1.0 / norm_type)
        coef = minimum(float(max_norm) / (total + 1e-6), 1.0)
        for p in ps:
            p.grad = p.grad * coef.astype(p.grad.dtype)
    return total


def clip_grad_value_(parameters: Iterable[Tensor] | Tensor, clip_value: float) -> None:
    """Clamp every gradient element into [-clip_value, clip_value]."""
    v = float(clip_value)
    with no_grad():
        for p in _with_grads(parameters):
            p.grad = p.grad.clip(-v, v)

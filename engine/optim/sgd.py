"""Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay."""

from __future__ import annotations

from typing import Any

from .. import fused
from ..tensor import Tensor
from .optimizer import Optimizer, ParamsT, check_nonnegative


class SGD(Optimizer):
    """torch.optim.SGD: ``b = momentum*b + (1-dampening)*g`` (b = g on the first step),
    then ``p -= lr * (g + momentum*b if nesterov else b)``, with ``g += weight_decay*p``."""

    def __init__(self, params: ParamsT, lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False) -> None:
        check_nonnegative("SGD", lr=lr, momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _update(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        momentum = group["momentum"]
        buf = state.get("momentum_buffer")
        first = False
        if momentum and buf is None:  # momentum may be switched on later (OneCycleLR)
            buf = state["momentum_buffer"] = self._zeros(p)
            first = True
        fused.sgd_step(p, p.grad, buf, lr=group["lr"], momentum=momentum,
                       dampening=group["dampening"], nesterov=group["nesterov"],
                       weight_decay=group["weight_decay"], first=first)
        state["step"] += 1

"""RMSprop: divide the gradient by a running root-mean-square of recent gradients."""

from __future__ import annotations

from typing import Any

from .. import fused
from ..tensor import Tensor
from .optimizer import Optimizer, ParamsT, check_nonnegative


class RMSprop(Optimizer):
    """torch.optim.RMSprop (uncentered): ``sq = alpha*sq + (1-alpha)*g*g``,
    ``step = g / (sqrt(sq) + eps)``, with momentum ``b = momentum*b + step``,
    ``p -= lr * (b or step)`` and ``g += weight_decay*p``."""

    def __init__(self, params: ParamsT, lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False) -> None:
        check_nonnegative("RMSprop", lr=lr)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"RMSprop: invalid alpha {alpha} (must be in [0, 1])")
        check_nonnegative("RMSprop", eps=eps, weight_decay=weight_decay, momentum=momentum)
        if centered:
            raise NotImplementedError("RMSprop(centered=True) is not supported; use the "
                                      "default centered=False or Adam")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=False))

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": 0, "square_avg": self._zeros(p)}

    def _update(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        momentum = group["momentum"]
        buf = state.get("momentum_buffer")
        if momentum and buf is None:
            buf = state["momentum_buffer"] = self._zeros(p)
        fused.rmsprop_step(p, p.grad, state["square_avg"], buf, lr=group["lr"],
                           alpha=group["alpha"], eps=group["eps"], momentum=momentum,
                           weight_decay=group["weight_decay"])
        state["step"] += 1

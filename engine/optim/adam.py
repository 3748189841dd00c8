"""Adam and AdamW (decoupled weight decay, Loshchilov & Hutter)."""

from __future__ import annotations

from typing import Any

from .. import fused
from ..tensor import Tensor
from .optimizer import Optimizer, ParamsT, check_nonnegative


class Adam(Optimizer):
    """torch.optim.Adam: ``m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g``,
    ``p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``; weight decay is added to the
    gradient (L2) unless `decoupled_weight_decay` (then it is AdamW)."""

    def __init__(self, params: ParamsT, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *,
                 decoupled_weight_decay: bool = False) -> None:
        name = type(self).__name__
        check_nonnegative(name, lr=lr, eps=eps)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"{name}: invalid betas {betas} (two numbers in [0, 1))")
        check_nonnegative(name, weight_decay=weight_decay)
        if amsgrad:
            raise NotImplementedError(f"{name}(amsgrad=True) is not supported")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=False,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": 0, "exp_avg": self._zeros(p), "exp_avg_sq": self._zeros(p)}

    def _update(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        state["step"] += 1
        beta1, beta2 = group["betas"]
        fused.adam_step(p, p.grad, state["exp_avg"], state["exp_avg_sq"], lr=group["lr"],
                        beta1=beta1, beta2=beta2, eps=group["eps"],
                        weight_decay=group["weight_decay"],
                        decoupled=group["decoupled_weight_decay"], step=state["step"])


class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled weight decay ``p *= 1 - lr*weight_decay``."""

    def __init__(self, params: ParamsT, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad,
                         decoupled_weight_decay=True)

"""Adagrad: per-coordinate learning rates from the running sum of squared gradients."""

from __future__ import annotations

from typing import Any

from .. import fused
from ..tensor import Tensor
from .optimizer import Optimizer, ParamsT, check_nonnegative


class Adagrad(Optimizer):
    """torch.optim.Adagrad: ``acc += g*g; p -= clr * g / (sqrt(acc) + eps)`` with
    ``clr = lr / (1 + (step-1)*lr_decay)`` and ``g += weight_decay*p``."""

    def __init__(self, params: ParamsT, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10) -> None:
        check_nonnegative("Adagrad", lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                          initial_accumulator_value=initial_accumulator_value, eps=eps)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps))

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": 0, "sum": self._zeros(p, group["initial_accumulator_value"])}

    def _update(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        state["step"] += 1
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        fused.adagrad_step(p, p.grad, state["sum"], lr=clr, eps=group["eps"],
                           weight_decay=group["weight_decay"])

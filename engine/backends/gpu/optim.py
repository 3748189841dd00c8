"""shaders/optim.wgsl: in-place SGD, Adagrad, RMSprop and Adam(W) updates (fast kernels)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .array import F32, GpuArray
from .core import GpuCore
from .device import Params
from .layout import grid


class OptimKernels(GpuCore):
    """One dispatch per parameter update."""

    def _optim(self, entry: str, p: GpuArray, g: GpuArray, s1: GpuArray | None,
               s2: GpuArray | None, scalars: Sequence[float], **flags: bool) -> None:
        for name, t in (("param", p), ("grad", g), ("state", s1), ("state", s2)):
            if t is not None and (not isinstance(t, GpuArray) or t.kind != F32):
                raise TypeError(f"{entry}: {name} must be a float32 GPU array")
        if g.size != p.size:
            raise ValueError(f"{entry}: gradient shape {g.shape} != parameter shape {p.shape}")
        if p.size == 0:
            return
        vals = list(scalars) + [0.0] * (12 - len(scalars))
        prm = Params().u(p.size, 0, 0, 0).f(*vals)
        self._run("optim", entry, "wrww", prm, [p, g, s1, s2], grid(p.size), **flags)

    def sgd_step_(self, p: GpuArray, g: GpuArray, buf: GpuArray | None, lr: float,
                  momentum: float, dampening: float, nesterov: bool, weight_decay: float,
                  first: bool) -> None:
        if momentum and buf is None:
            raise ValueError("sgd_step_: momentum needs a buffer")
        self._optim("sgd", p, g, buf if momentum else None, None,
                    [lr, momentum, 1.0 - dampening, weight_decay],
                    MOMENTUM=bool(momentum), NESTEROV=bool(nesterov), FIRST=bool(first),
                    DECAY=bool(weight_decay))

    def adagrad_step_(self, p: GpuArray, g: GpuArray, acc: GpuArray, lr: float, eps: float,
                      weight_decay: float) -> None:
        self._optim("adagrad", p, g, acc, None, [lr, eps, weight_decay],
                    DECAY=bool(weight_decay))

    def rmsprop_step_(self, p: GpuArray, g: GpuArray, sq: GpuArray, buf: GpuArray | None,
                      lr: float, alpha: float, eps: float, momentum: float,
                      weight_decay: float) -> None:
        if momentum and buf is None:
            raise ValueError("rmsprop_step_: momentum needs a buffer")
        self._optim("rmsprop", p, g, sq, buf if momentum else None,
                    [lr, alpha, 1.0 - alpha, eps, momentum, weight_decay], MOMENTUM=bool(momentum),
                    DECAY=bool(weight_decay))

    def adam_step_(self, p: GpuArray, g: GpuArray, m: GpuArray, v: GpuArray, lr: float,
                   beta1: float, beta2: float, eps: float, weight_decay: float,
                   decoupled: bool, step: int) -> None:
        bc1 = 1.0 - beta1 ** step
        bc2 = 1.0 - beta2 ** step
        self._optim("adam", p, g, m, v,
                    [lr, beta1, 1.0 - beta1, beta2, 1.0 - beta2, eps, weight_decay, lr / bc1,
                     math.sqrt(bc2), 1.0 - lr * weight_decay],
                    DECAY=bool(weight_decay), DECOUPLED=bool(decoupled))

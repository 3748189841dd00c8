"""Batch normalisation with PyTorch's running statistics and state dict names."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...autograd import no_grad
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..module import Module
from ._util import empty_parameter


class _BatchNorm(Module):
    """Shared by BatchNorm1d/2d; subclasses only say which input ranks they accept.

    Training: normalise by the batch's mean and (biased) variance and update
    running_mean/running_var by an exponential moving average with `momentum` (the
    unbiased variance goes into running_var), or a cumulative average if momentum is None.
    Eval: normalise by the running statistics. Without track_running_stats there are no
    running statistics and batch statistics are used in both modes.
    """

    _ranks: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 device: str | None = None, dtype: Any = None) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        c = self.num_features
        if affine:
            self.weight = init.ones_(empty_parameter((c,), device, dtype))
            self.bias = init.zeros_(empty_parameter((c,), device, dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            dt = dtype or np.float32
            self.register_buffer("running_mean", Tensor(np.zeros(c), device=device, dtype=dt))
            self.register_buffer("running_var", Tensor(np.ones(c), device=device, dtype=dt))
            self.register_buffer("num_batches_tracked",
                                 Tensor(np.array(0, dtype=np.int64), device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            init.zeros_(self.num_batches_tracked)

    def forward(self, x: Tensor) -> Tensor:
        name = type(self).__name__
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: input must be a Tensor, got {type(x).__name__}")
        if x.ndim not in self._ranks:
            raise ValueError(f"{name}: expected a {' or '.join(f'{r}-D' for r in self._ranks)} "
                             f"input, got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{name}: input has {x.shape[1]} channels but the layer expects "
                             f"{self.num_features} (input shape {x.shape})")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            with no_grad():
                self.num_batches_tracked.assign_(self.num_batches_tracked + 1)
            if self.momentum is None:  # cumulative average: reads the count back
                factor = 1.0 / float(self.num_batches_tracked.item())
        use_batch = self.training or not self.track_running_stats
        track = not self.training or self.track_running_stats
        return F.batch_norm(x, self.running_mean if track else None,
                            self.running_var if track else None, self.weight, self.bias,
                            use_batch, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm of (N, C) features or (N, C, L) sequences, per channel C."""

    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm of (N, C, H, W) images, per channel C (statistics over N, H, W)."""

    _ranks = (4,)

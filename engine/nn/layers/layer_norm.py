"""Layer normalisation (Ba et al. 2016) with PyTorch's names: per-sample statistics over
the last dims, so it works for any batch size and sequence length (what transformers use
instead of batch norm)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...tensor import Tensor
from .. import init
from .. import sequence_functional as SF
from ..module import Module
from ._util import empty_parameter


class LayerNorm(Module):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last len(shape) dims."""

    def __init__(self, normalized_shape: Any, eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True,
                 device: str | None = None, dtype: Any = None) -> None:
        super().__init__()
        shape = (int(normalized_shape),) if isinstance(normalized_shape, (int, np.integer)) \
            else tuple(int(s) for s in normalized_shape)
        self.normalized_shape, self.eps = shape, float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        if elementwise_affine:
            self.weight = init.ones_(empty_parameter(shape, device, dtype))
            if bias:
                self.bias = init.zeros_(empty_parameter(shape, device, dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        return SF.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")

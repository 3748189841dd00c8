"""Fully connected layers: Identity, Linear, and Goodfellow et al.'s Maxout."""

from __future__ import annotations

import math
from typing import Any

from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..module import Module
from ._util import empty_parameter


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. to remove a layer)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return x


def _init_affine(weight: Tensor, bias: Tensor | None) -> None:
    """PyTorch's default: kaiming_uniform_(a=sqrt(5)), i.e. U(+-1/sqrt(fan_in)) for both."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        init.uniform_(bias, -bound, bound)


class Linear(Module):
    """y = x @ weight.T + bias, with weight of shape (out_features, in_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: str | None = None, dtype: Any = None) -> None:
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = empty_parameter((self.out_features, self.in_features), device, dtype)
        if bias:
            self.bias = empty_parameter((self.out_features,), device, dtype)
        else:
            self.register_parameter("bias", None)
        _init_affine(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Maxout(Module):
    """Maxout units (Goodfellow et al., 2013): each of `out_features` outputs is the max of
    `pieces` affine functions of the input, a learned piecewise-linear convex activation.

    Implemented as one Linear to out_features * pieces, reshaped to (..., out, pieces)
    (so output j uses weight rows j*pieces ... j*pieces + pieces - 1), then max over
    pieces. `weight` is (out_features * pieces, in_features), initialised like Linear.
    """

    def __init__(self, in_features: int, out_features: int, pieces: int = 2,
                 bias: bool = True, device: str | None = None, dtype: Any = None) -> None:
        super().__init__()
        if pieces < 1:
            raise ValueError(f"Maxout: pieces must be >= 1, got {pieces}")
        self.in_features, self.out_features, self.pieces = (int(in_features),
                                                            int(out_features), int(pieces))
        rows = self.out_features * self.pieces
        self.weight = empty_parameter((rows, self.in_features), device, dtype)
        if bias:
            self.bias = empty_parameter((rows,), device, dtype)
        else:
            self.register_parameter("bias", None)
        _init_affine(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        z = F.linear(x, self.weight, self.bias)
        return z.reshape(*z.shape[:-1], self.out_features, self.pieces).max(-1)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"pieces={self.pieces}, bias={self.bias is not None}")

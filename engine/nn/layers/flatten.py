"""Reshaping layers."""

from __future__ import annotations

from collections.abc import Sequence

from ...tensor import Tensor
from ..module import Module


class Flatten(Module):
    """Merge dims start_dim..end_dim (default: everything but the batch dim)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dim `dim` into `sizes` (the inverse of Flatten)."""

    def __init__(self, dim: int, sizes: Sequence[int]) -> None:
        super().__init__()
        self.dim, self.sizes = dim, tuple(sizes)

    def forward(self, x: Tensor) -> Tensor:
        d = self.dim % x.ndim
        return x.reshape(*x.shape[:d], *self.sizes, *x.shape[d + 1:])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.sizes}"

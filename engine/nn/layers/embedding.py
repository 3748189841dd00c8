"""Embedding: a trainable lookup table of vectors indexed by integers."""

from __future__ import annotations

from typing import Any

from ...autograd import no_grad
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..module import Module
from ._util import empty_parameter


class Embedding(Module):
    """weight[idx] for integer idx of any shape; weight (num_embeddings, embedding_dim)
    starts as N(0, 1) like PyTorch. The row at `padding_idx` starts at zero and gets no
    gradient."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 device: str | None = None, dtype: Any = None) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} is out of range for "
                                 f"{num_embeddings} embeddings")
            padding_idx %= num_embeddings
        self.padding_idx = padding_idx
        self.weight = init.normal_(empty_parameter((num_embeddings, embedding_dim), device,
                                                   dtype))
        if padding_idx is not None:
            w = self.weight.numpy().copy()
            w[padding_idx] = 0.0
            with no_grad():
                self.weight.copy_(w)

    def forward(self, idx: Any) -> Tensor:
        return F.embedding(idx, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s if self.padding_idx is None else s + f", padding_idx={self.padding_idx}"

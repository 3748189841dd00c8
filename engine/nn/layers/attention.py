"""Multi-head attention with PyTorch's names, arguments, masks and parameter layout.

Attention is a generalised gate: a softmax turns query-key similarities into weights over
the inputs, and the output is the weighted sum of their values. Parameters as in PyTorch:
`in_proj_weight` (3E, E) and `in_proj_bias` (3E,) (or `q_proj_weight`, `k_proj_weight`,
`v_proj_weight` when kdim/vdim differ from embed_dim), `out_proj.weight` / `.bias`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...tensor import Tensor
from .. import init
from .. import sequence_functional as SF
from ..module import Module
from ._util import empty_parameter
from .linear import Linear


class MultiheadAttention(Module):
    """forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False) -> (output, weights or None).

    Shapes (batch_first=False): query (L, N, E), key/value (S, N, E_k/E_v); unbatched
    (L, E) also works. `add_bias_kv` adds the parameters bias_k and bias_v (1, 1, E), a key
    and value appended to every sequence; `add_zero_attn` appends a zero key and value.
    Masks follow PyTorch: in a bool mask True means "may NOT attend"; a float mask is added
    to the scores. attn_mask is (L, S) or (N * num_heads, L, S),
    key_padding_mask (N, S). Weights are averaged over heads unless asked otherwise.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device: str | None = None,
                 dtype: Any = None) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be a positive "
                             f"multiple of num_heads ({num_heads})")
        self.embed_dim, self.num_heads = int(embed_dim), int(num_heads)
        self.kdim = int(kdim) if kdim is not None else self.embed_dim
        self.vdim = int(vdim) if vdim is not None else self.embed_dim
        self._qkv_same_embed_dim = self.kdim == self.embed_dim and self.vdim == self.embed_dim
        self.dropout, self.batch_first = float(dropout), bool(batch_first)
        self.head_dim = self.embed_dim // self.num_heads
        E = self.embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = empty_parameter((3 * E, E), device, dtype)
            for n in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(n, None)
        else:
            self.q_proj_weight = empty_parameter((E, E), device, dtype)
            self.k_proj_weight = empty_parameter((E, self.kdim), device, dtype)
            self.v_proj_weight = empty_parameter((E, self.vdim), device, dtype)
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = empty_parameter((3 * E,), device, dtype)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(E, E, bias=bias, device=device, dtype=dtype)
        if add_bias_kv:  # a learned key and value appended to every sequence
            self.bias_k = empty_parameter((1, 1, E), device, dtype)
            self.bias_v = empty_parameter((1, 1, E), device, dtype)
        else:
            self.register_parameter("bias_k", None)
            self.register_parameter("bias_v", None)
        self.add_zero_attn = bool(add_zero_attn)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """PyTorch's: Xavier-uniform projections, zero biases (out_proj keeps Linear's
        default weight)."""
        for w in (self.in_proj_weight, self.q_proj_weight, self.k_proj_weight,
                  self.v_proj_weight):
            if w is not None:
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        for b in (self.bias_k, self.bias_v):
            if b is not None:
                init.xavier_normal_(b)

    def _projections(self) -> tuple[Tensor | None, ...]:
        E = self.embed_dim
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            ws = (w[:E], w[E:2 * E], w[2 * E:])
        else:
            ws = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        b = self.in_proj_bias
        bs = (None, None, None) if b is None else (b[:E], b[E:2 * E], b[2 * E:])
        return ws + bs

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Any = None,
                need_weights: bool = True, attn_mask: Any = None,
                average_attn_weights: bool = True, is_causal: bool = False
                ) -> tuple[Tensor, Tensor | None]:
        name = "MultiheadAttention"
        for what, t, dim in (("query", query, self.embed_dim), ("key", key, self.kdim),
                             ("value", value, self.vdim)):
            if not isinstance(t, Tensor):
                raise TypeError(f"{name}: {what} must be a Tensor, got {type(t).__name__}")
            if t.ndim not in (2, 3):
                order = "(N, L, E)" if self.batch_first else "(L, N, E)"
                raise ValueError(f"{name}: {what} must be 3-D {order} or 2-D (L, E) "
                                 f"unbatched, got shape {t.shape}")
            if t.shape[-1] != dim:
                raise ValueError(f"{name}: {what} has {t.shape[-1]} features (shape "
                                 f"{t.shape}), expected {dim}")
        if not query.ndim == key.ndim == value.ndim:
            raise ValueError(f"{name}: query, key and value must all be batched or all "
                             f"unbatched, got shapes {query.shape}, {key.shape}, {value.shape}")
        if key.shape[:-1] != value.shape[:-1]:
            raise ValueError(f"{name}: key {key.shape} and value {value.shape} must have the "
                             "same batch and sequence sizes")
        unbatched = query.ndim == 2
        if unbatched:
            q, k, v = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            if key_padding_mask is not None:
                key_padding_mask = _unsqueeze_mask(key_padding_mask)
        elif self.batch_first:
            q, k, v = query, key, value
        else:
            q, k, v = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        if q.shape[0] != k.shape[0]:
            raise ValueError(f"{name}: query and key have different batch sizes "
                             f"({q.shape[0]} and {k.shape[0]})")
        out, w = SF.multi_head_attention_forward(
            q, k, v, self.num_heads, self._projections(), self.out_proj.weight,
            self.out_proj.bias, key_padding_mask=key_padding_mask, need_weights=need_weights,
            attn_mask=attn_mask, average_attn_weights=average_attn_weights,
            dropout_p=self.dropout, training=self.training, is_causal=is_causal,
            bias_k=self.bias_k, bias_v=self.bias_v, add_zero_attn=self.add_zero_attn)
        if unbatched:
            return out.squeeze(0), (w.squeeze(0) if w is not None else None)
        if not self.batch_first:
            out = out.transpose(0, 1)
        return out, w

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
                f"batch_first={self.batch_first}")


def _unsqueeze_mask(m: Any) -> Any:
    return m.unsqueeze(0) if isinstance(m, Tensor) else np.asarray(m)[None]

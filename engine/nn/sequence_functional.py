"""Sequence layers as functions of Tensors: recurrent cells and layers, layer norm, and
attention (PyTorch's `torch.nn.functional` names where PyTorch has them).

The cells here are the *reference* math of the recurrent layers: a step written with
Tensor ops, so autograd differentiates it. `recurrent_layer` runs a whole (multi-layer,
bidirectional) RNN/LSTM/GRU; each layer and direction is one fused scan
(`engine.fused.recurrent`) whose fast paths are checked against these cells.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import fused
from ..fused.recurrent import (
    GATES,
    gru_gates,
    lstm_gates,
    recurrent_projection,
    rnn_gates,
)
from ..tensor import Tensor, cat, stack, where
from . import functional as F

MODES = GATES  # {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


# -- cells: one step (the reference math lives with the fused scan) ----------------------------

def rnn_tanh_cell(x: Tensor, h: Tensor | None, w_ih: Tensor, w_hh: Tensor,
                  b_ih: Tensor | None = None, b_hh: Tensor | None = None) -> Tensor:
    return rnn_gates(F.linear(x, w_ih, b_ih), recurrent_projection(h, w_hh, b_hh), "tanh")


def rnn_relu_cell(x: Tensor, h: Tensor | None, w_ih: Tensor, w_hh: Tensor,
                  b_ih: Tensor | None = None, b_hh: Tensor | None = None) -> Tensor:
    return rnn_gates(F.linear(x, w_ih, b_ih), recurrent_projection(h, w_hh, b_hh), "relu")


def lstm_cell(x: Tensor, hx: tuple[Tensor | None, Tensor | None], w_ih: Tensor,
              w_hh: Tensor, b_ih: Tensor | None = None, b_hh: Tensor | None = None
              ) -> tuple[Tensor, Tensor]:
    h, c = hx
    return lstm_gates(F.linear(x, w_ih, b_ih), recurrent_projection(h, w_hh, b_hh), c)


def gru_cell(x: Tensor, h: Tensor | None, w_ih: Tensor, w_hh: Tensor,
             b_ih: Tensor | None = None, b_hh: Tensor | None = None) -> Tensor:
    return gru_gates(F.linear(x, w_ih, b_ih), recurrent_projection(h, w_hh, b_hh), h)


def scan_reference(mode: str, x: Tensor, h0: Tensor | None, c0: Tensor | None,
                   w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
                   reverse: bool = False) -> Tensor:
    """One layer and direction step by step with the cells (the fused scan's reference):
    x (T, B, I) -> (T, B, H) hidden states in time order, plus c_T as row T for LSTM."""
    return fused.recurrent_scan.reference(x, h0, c0, w_ih, w_hh, b_ih, b_hh, mode=mode,
                                          reverse=reverse)


def recurrent_scan(mode: str, x: Tensor, h0: Tensor | None, c0: Tensor | None,
                   w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
                   reverse: bool = False) -> Tensor:
    """The fused scan (engine.fused.recurrent): its fast path where the device has one."""
    return fused.recurrent_scan(x, h0, c0 if mode == "LSTM" else None, w_ih, w_hh, b_ih,
                                b_hh, mode=mode, reverse=bool(reverse))


# -- whole layers ---------------------------------------------------------------------------

def recurrent_layer(mode: str, x: Tensor, hx: Tensor | None, cx: Tensor | None,
                    weights: Sequence[Sequence[Tensor | None]], num_layers: int,
                    bidirectional: bool, dropout: float = 0.0, training: bool = False,
                    fused_scan: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
    """A stacked, optionally bidirectional RNN/LSTM/GRU over time-major x (T, B, I).

    `weights[layer * D + d]` is (w_ih, w_hh, b_ih, b_hh) for direction d (0 forward,
    1 reverse); hx/cx are (num_layers * D, B, H) or None (zeros). Returns (output
    (T, B, D*H), h_n, c_n); c_n is None except for LSTM. Dropout is applied to every
    layer's output but the last, in training, as in PyTorch. `fused_scan=False` runs the
    step-by-step reference instead.
    """
    D = 2 if bidirectional else 1
    T = x.shape[0]
    scan = recurrent_scan if fused_scan else scan_reference
    inp = x
    h_n, c_n = [], []
    for layer in range(num_layers):
        ys = []
        for d in range(D):
            k = layer * D + d
            w_ih, w_hh, b_ih, b_hh = weights[k]
            packed = scan(mode, inp, None if hx is None else hx[k],
                          None if cx is None else cx[k], w_ih, w_hh, b_ih, b_hh,
                          reverse=d == 1)
            ys.append(packed if mode != "LSTM" else packed[:T])
            h_n.append(packed[0] if d == 1 else packed[T - 1])
            if mode == "LSTM":
                c_n.append(packed[T])
        inp = ys[0] if D == 1 else cat(ys, -1)
        if dropout > 0.0 and training and layer < num_layers - 1:
            inp = F.dropout(inp, dropout, True)
    return inp, stack(h_n), (stack(c_n) if mode == "LSTM" else None)


# -- normalisation ---------------------------------------------------------------------------

def layer_norm(x: Tensor, normalized_shape: Sequence[int] | int, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalise over the last len(normalized_shape) dims (biased variance, as PyTorch)."""
    shape = (int(normalized_shape),) if isinstance(normalized_shape, (int, np.integer)) \
        else tuple(int(s) for s in normalized_shape)
    F._need_float(x, "layer_norm")
    if tuple(x.shape[x.ndim - len(shape):]) != shape:
        raise ValueError(f"layer_norm: the last dims of the input {x.shape} must be "
                         f"normalized_shape {shape}")
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    mu = x.mean(axes, keepdims=True)
    d = x - mu
    var = (d * d).mean(axes, keepdims=True)
    y = d / (var + eps).sqrt()
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias


# -- attention -------------------------------------------------------------------------------

def _additive(m: Tensor, like: Tensor) -> Tensor:
    """A bool "not allowed" mask as PyTorch's additive float mask: -inf where True."""
    def const(v: float) -> Tensor:
        return Tensor(np.array(v, like.dtype), device=like.device, dtype=like.dtype)
    return where(m, const(-math.inf), const(0.0))


def _mask_tensor(mask: Any, like: Tensor, what: str) -> Tensor:
    m = mask if isinstance(mask, Tensor) else Tensor(np.asarray(mask), device=like.device)
    if m.device != like.device:
        m = m.to(like.device)
    if m.dtype.kind not in "fb":
        raise TypeError(f"{what} must be bool or floating, got {m.dtype}")
    if m.dtype.kind == "f" and m.dtype != like.dtype:
        m = m.astype(like.dtype)
    return m


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor,
                                 attn_mask: Any = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None,
                                 return_weights: bool = False) -> Any:
    """softmax(Q K^T * scale + mask) V over (..., L, E) queries and (..., S, E) keys.

    As in PyTorch: a bool `attn_mask` marks positions that MAY be attended (True = keep),
    a float mask is added to the scores; `is_causal` masks the upper triangle (it cannot be
    combined with attn_mask). `return_weights=True` also returns the attention weights
    (an engine extra, for showing them)."""
    op = "scaled_dot_product_attention"
    for name, t in (("query", query), ("key", key), ("value", value)):
        F._need_float(t, op, name)
    if query.ndim < 2 or key.ndim != query.ndim or value.ndim != query.ndim:
        raise ValueError(f"{op}: query, key and value need the same rank (>= 2), got "
                         f"{query.shape}, {key.shape}, {value.shape}")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ValueError(f"{op}: query (..., L, E) {query.shape}, key (..., S, E) "
                         f"{key.shape} and value (..., S, Ev) {value.shape} do not fit")
    if is_causal and attn_mask is not None:
        raise ValueError(f"{op}: give either attn_mask or is_causal, not both")
    L, S = query.shape[-2], key.shape[-2]
    s = (1.0 / math.sqrt(query.shape[-1])) if scale is None else float(scale)
    scores = (query * s) @ key.transpose(-2, -1)
    if is_causal:
        attn_mask = np.tril(np.ones((L, S), dtype=bool))
    if attn_mask is not None:
        m = _mask_tensor(attn_mask, scores, f"{op}: attn_mask")
        try:
            np.broadcast_shapes(m.shape, scores.shape)
        except ValueError:
            raise ValueError(f"{op}: attn_mask of shape {m.shape} does not broadcast to the "
                             f"attention scores {scores.shape}") from None
        scores = where(m, scores, -math.inf) if m.dtype == bool else scores + m
    weights = F.softmax(scores, -1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, dropout_p, True)
    out = weights @ value
    return (out, weights) if return_weights else out


def _merge_masks(attn_mask: Any, key_padding_mask: Any, like: Tensor, B: int, heads: int,
                 L: int, S: int, extra: int = 0) -> Tensor | None:
    """MultiheadAttention's masks (True = NOT allowed, or additive floats) as one additive
    (B, heads, L, S + extra)-broadcastable float mask, or None; `extra` key columns (the
    learned bias_k and the zero key of add_zero_attn) are never masked."""
    out = None
    op = "MultiheadAttention"
    if attn_mask is not None:
        m = _mask_tensor(attn_mask, like, f"{op}: attn_mask")
        if m.shape == (L, S):
            m = m.reshape(1, 1, L, S)
        elif m.shape == (B * heads, L, S):
            m = m.reshape(B, heads, L, S)
        else:
            raise ValueError(f"{op}: attn_mask must have shape ({L}, {S}) or "
                             f"({B * heads}, {L}, {S}) (batch * num_heads, L, S), got "
                             f"{m.shape}")
        out = _pad_keys(_additive(m, like) if m.dtype == bool else m, extra)
    if key_padding_mask is not None:
        m = _mask_tensor(key_padding_mask, like, f"{op}: key_padding_mask")
        if m.shape != (B, S):
            raise ValueError(f"{op}: key_padding_mask must have shape (batch, S) = "
                             f"({B}, {S}), got {m.shape}")
        m = m.reshape(B, 1, 1, S)
        add = _pad_keys(_additive(m, like) if m.dtype == bool else m, extra)
        out = add if out is None else out + add
    return out


def _pad_keys(mask: Tensor, extra: int) -> Tensor:
    """An additive mask with `extra` zero (allowed) columns appended."""
    if not extra:
        return mask
    zeros = Tensor(np.zeros((*mask.shape[:-1], extra), mask.dtype), device=mask.device,
                   dtype=mask.dtype)
    return cat([mask, zeros], -1)


def multi_head_attention_forward(query: Tensor, key: Tensor, value: Tensor, num_heads: int,
                                 in_proj: tuple[Tensor | None, ...],
                                 out_weight: Tensor, out_bias: Tensor | None,
                                 key_padding_mask: Any = None, need_weights: bool = True,
                                 attn_mask: Any = None, average_attn_weights: bool = True,
                                 dropout_p: float = 0.0, training: bool = False,
                                 is_causal: bool = False, bias_k: Tensor | None = None,
                                 bias_v: Tensor | None = None, add_zero_attn: bool = False
                                 ) -> tuple[Tensor, Tensor | None]:
    """Batch-first multi-head attention: query (B, L, E), key/value (B, S, Ek/Ev).

    `in_proj` is (w_q, w_k, w_v, b_q, b_k, b_v). Returns (output (B, L, E), weights):
    weights are (B, L, S') averaged over heads, (B, heads, L, S') if not averaged, or None
    when need_weights is False; S' = S plus one key for bias_k/bias_v (a learned key and
    value appended to every sequence) and one for add_zero_attn (a zero key and value)."""
    B, L, E = query.shape
    S = key.shape[1]
    hd = E // num_heads
    w_q, w_k, w_v, b_q, b_k, b_v = in_proj

    def heads(t: Tensor, n: int) -> Tensor:  # (B, n, E) -> (B, heads, n, hd)
        return t.reshape(B, n, num_heads, hd).permute(0, 2, 1, 3)

    q = heads(F.linear(query, w_q, b_q), L)
    kp, vp = F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)
    extra = 0
    if bias_k is not None and bias_v is not None:
        kp = cat([kp, bias_k.reshape(1, 1, E).expand(B, 1, E)], 1)
        vp = cat([vp, bias_v.reshape(1, 1, E).expand(B, 1, E)], 1)
        extra += 1
    k, v = heads(kp, S + extra), heads(vp, S + extra)
    if add_zero_attn:
        zeros = Tensor(np.zeros((B, num_heads, 1, hd), q.dtype), device=q.device,
                       dtype=q.dtype)
        k, v = cat([k, zeros], 2), cat([v, zeros], 2)
        extra += 1
    if is_causal and attn_mask is None:  # PyTorch: is_causal is only a hint about attn_mask
        raise ValueError("MultiheadAttention: is_causal=True needs the causal attn_mask too "
                         "(it is a hint, as in PyTorch); pass attn_mask")
    mask = _merge_masks(attn_mask, key_padding_mask, q, B, num_heads, L, S, extra)
    out, w = scaled_dot_product_attention(q, k, v, mask, dropout_p if training else 0.0,
                                          return_weights=True)
    out = out.permute(0, 2, 1, 3).reshape(B, L, E)
    out = F.linear(out, out_weight, out_bias)
    if not need_weights:
        return out, None
    return out, (w.mean(1) if average_attn_weights else w)


def sinusoidal_positions(length: int, d_model: int) -> np.ndarray:
    """Vaswani et al.'s encoding: PE[t, 2i] = sin(t / 10000^(2i/d)), PE[t, 2i+1] = cos(...)."""
    pos = np.arange(length, dtype=np.float64)[:, None]
    div = np.exp(np.arange(0, d_model, 2, dtype=np.float64) * (-math.log(10000.0) / d_model))
    pe = np.zeros((length, d_model))
    pe[:, 0::2] = np.sin(pos * div)
    pe[:, 1::2] = np.cos(pos * div)[:, : d_model // 2]
    return pe.astype(np.float32)


__all__ = [
    "rnn_tanh_cell", "rnn_relu_cell", "lstm_cell", "gru_cell", "rnn_gates", "lstm_gates",
    "gru_gates", "scan_reference", "recurrent_layer", "layer_norm",
    "scaled_dot_product_attention", "multi_head_attention_forward", "sinusoidal_positions",
]

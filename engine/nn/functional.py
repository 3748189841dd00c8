"""Layers and losses as plain functions of Tensors (PyTorch's `torch.nn.functional`).

Everything here is composed from Tensor operations, the core differentiable ops in
`engine.functions` and the fused kernels in `engine.fused`, so it runs unchanged on every
device and never touches a backend's arrays. Host NumPy appears only for random draws
(dropout masks) and for checking integer labels that are already on the host.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .. import functions as ops
from .. import fused
from ..autograd import no_grad
from ..backends.window import same_padding
from ..creation import full
from ..random import generator
from ..tensor import Tensor, minimum, where
from ._checks import _FLOATS, _need_float, _pair, _same_dtype  # noqa: F401  (F._pair)
from .functional_pooling import (  # noqa: F401  (nn.functional's public API)
    adaptive_avg_pool2d,
    avg_pool2d,
    avg_pool2d_padded,
    max_pool2d,
    max_pool2d_padded,
)

_REDUCTIONS = ("mean", "sum", "none")


# -- argument helpers (checks shared with functional_pooling: _checks.py) ----------

def _as_tensor(x: Any, like: Tensor) -> Tensor:
    """x as a Tensor on like's device with like's float dtype (targets given as arrays)."""
    if isinstance(x, Tensor):
        return x
    return Tensor(np.asarray(x), device=like.device, dtype=like.dtype)


def _reduce(loss: Tensor, reduction: str, op: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _channel_shape(x: Tensor) -> tuple[int, ...]:
    """Shape that broadcasts a per-channel (C,) vector against x (channels on axis 1)."""
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


# -- linear ----------------------------------------------------------------------------

def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x @ weight.T + bias, weight shaped (out_features, in_features) as in PyTorch."""
    _need_float(x, "linear")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        got = x.shape[-1] if x.ndim else 0
        raise ValueError(f"linear: input has {got} features but the layer expects "
                         f"{weight.shape[1]} (input shape {x.shape}, weight shape "
                         f"{weight.shape})")
    _same_dtype("linear", x, weight)
    if x.ndim == 2:  # the common case: one GEMM, no reshapes on the tape
        return fused.linear(x, weight, bias)
    # a vector becomes one row, and leading dims fold into rows, so one GEMM serves all
    y = fused.linear(x.reshape(-1, x.shape[-1]), weight, bias)
    return y.reshape(*x.shape[:-1], weight.shape[0])


# -- convolution -----------------------------------------------------------------------

def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
           padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Tensor:
    """2-D convolution (really cross-correlation, as in every framework) of NCHW input.

    `padding` is an int, an (h, w) pair, or "valid"/"same" ("same" needs stride 1; an odd
    total padding puts the extra row/column at the bottom/right, like PyTorch).
    """
    op = "conv2d"
    _need_float(x, op)
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D weight (C_out, C_in/groups, kH, kW), got "
                         f"shape {weight.shape}")
    _same_dtype(op, x, weight)
    if x.shape[1] != weight.shape[1] * groups:
        raise ValueError(f"{op}: input has {x.shape[1]} channels but the weight expects "
                         f"{weight.shape[1] * groups} (groups={groups}, input shape "
                         f"{x.shape}, weight shape {weight.shape})")
    if weight.shape[0] % groups:
        raise ValueError(f"{op}: {weight.shape[0]} output channels are not divisible by "
                         f"groups={groups}")
    s, d = _pair(stride, "stride", op), _pair(dilation, "dilation", op)
    k = weight.shape[2:]
    if isinstance(padding, str):
        if padding == "valid":
            p = (0, 0)
        elif padding == "same":
            if s != (1, 1):
                raise ValueError(f"{op}: padding='same' needs stride 1, got stride {s}")
            (ph, eh), (pw, ew) = (same_padding(x.shape[2 + i], k[i], 1, d[i])
                                  for i in range(2))
            p = (ph, pw)
            if (eh, ew) != p:  # asymmetric: one more row/column at the far side
                x = pad(x, (0, ew - pw, 0, eh - ph))
        else:
            raise ValueError(f"{op}: padding must be an int, a pair, 'same' or 'valid', "
                             f"got {padding!r}")
    else:
        p = _pair(padding, "padding", op)
    if min(s) < 1 or min(d) < 1 or min(p) < 0:
        raise ValueError(f"{op}: stride and dilation must be >= 1 and padding >= 0, got "
                         f"stride={s}, padding={p}, dilation={d}")
    for i, dim in enumerate("HW"):
        if x.shape[2 + i] + 2 * p[i] < d[i] * (k[i] - 1) + 1:
            raise ValueError(f"{op}: input {dim}={x.shape[2 + i]} (padding {p[i]}) is smaller "
                             f"than the dilated kernel ({d[i] * (k[i] - 1) + 1}); input shape "
                             f"{x.shape}, weight shape {weight.shape}")
    return fused.conv2d(x, weight, bias, stride=s, padding=p, dilation=d, groups=groups)


# -- pooling: functional_pooling.py (re-exported here) -------------------------------

# -- normalisation ---------------------------------------------------------------------

def batch_norm(x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalisation over every axis but the channel axis 1.

    In training (or without running statistics) it normalises by the batch statistics and,
    when running_mean/running_var are given, updates them in place (`Tensor.assign_`):
    new = (1 - momentum) * old + momentum * batch, with the *unbiased* batch variance, as
    PyTorch does. In eval it normalises by the running statistics.
    """
    op = "batch_norm"
    _need_float(x, op)
    if x.ndim < 2:
        raise ValueError(f"{op}: expected input of shape (N, C, ...), got {x.shape}")
    c = x.shape[1]
    for name, t in (("weight", weight), ("bias", bias), ("running_mean", running_mean),
                    ("running_var", running_var)):
        if t is not None and t.shape != (c,):
            raise ValueError(f"{op}: input has {c} channels (shape {x.shape}) but {name} has "
                             f"shape {t.shape}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None:
            _same_dtype(op, x, t, name)
    use_batch = training or running_mean is None or running_var is None
    if use_batch:
        axes = (0,) + tuple(range(2, x.ndim))
        m = x.size // c
        if training and m <= 1:
            raise ValueError(f"{op}: expected more than 1 value per channel when training, "
                             f"got input of shape {x.shape}")
        gamma = weight if weight is not None else full((c,), 1.0, dtype=x.dtype, device=x.device)
        beta = bias if bias is not None else full((c,), 0.0, dtype=x.dtype, device=x.device)
        y, mean, invstd = fused.batch_norm(x, gamma, beta, axes=axes, eps=float(eps))
        if training and running_mean is not None and running_var is not None:
            with no_grad():
                var = (1.0 / (invstd * invstd) - eps) * (m / (m - 1))
                _update_running(running_mean, mean, momentum)
                _update_running(running_var, var, momentum)
        return y
    _same_dtype(op, x, running_mean, "running_mean")
    shape = _channel_shape(x)
    scale = (running_var + eps) ** -0.5
    if weight is not None:
        scale = scale * weight
    shift = -running_mean * scale
    if bias is not None:
        shift = shift + bias
    return x * scale.reshape(shape) + shift.reshape(shape)


def _update_running(stat: Tensor, batch: Tensor, momentum: float) -> None:
    stat.assign_(stat * (1.0 - momentum) + batch.astype(stat.dtype) * momentum)


# -- dropout ---------------------------------------------------------------------------

def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p) ("inverted"
    dropout, so eval needs no rescaling). The mask is drawn on the host from
    `engine.random.generator()` and uploaded, so a seed fixes it on every device."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability p must be in [0, 1], got {p}")
    _need_float(x, "dropout")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    keep = generator().random(x.shape) >= p
    mask = Tensor(keep.astype(x.dtype) * (1.0 / (1.0 - p)), device=x.device, dtype=x.dtype)
    return x * mask


# -- activations -----------------------------------------------------------------------

def relu(x: Tensor) -> Tensor:
    return ops.Relu.apply(x)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    _need_float(x, "leaky_relu")
    return ops.LeakyRelu.apply(x, slope=float(negative_slope))


def tanh(x: Tensor) -> Tensor:
    return x.tanh()


def sigmoid(x: Tensor) -> Tensor:
    return x.sigmoid()


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    # exp of min(x, 0): the unused branch of `where` must not overflow to inf (0*inf = nan)
    _need_float(x, "elu")
    return where(x > 0, x, (minimum(x, 0.0).exp() - 1.0) * alpha)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x) with the exact normal CDF, or PyTorch's tanh approximation."""
    _need_float(x, "gelu")
    if approximate == "tanh":
        inner = (x + x * x * x * 0.044715) * math.sqrt(2.0 / math.pi)
        return x * 0.5 * (inner.tanh() + 1.0)
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return x * 0.5 * (ops.Erf.apply(x * (1.0 / math.sqrt(2.0))) + 1.0)


def silu(x: Tensor) -> Tensor:
    return x * x.sigmoid()


def hardsigmoid(x: Tensor, alpha: float = 1 / 6, beta: float = 0.5) -> Tensor:
    """clip(alpha x + beta, 0, 1): PyTorch's defaults (1/6, 1/2); ONNX's are (0.2, 0.5)."""
    return (x * alpha + beta).clip(0.0, 1.0)


def hardswish(x: Tensor) -> Tensor:
    """x * hardsigmoid(x), MobileNetV3's cheap swish."""
    return x * hardsigmoid(x)


def prelu(x: Tensor, weight: Tensor) -> Tensor:
    """x where positive, else weight * x. A 1-D weight of C values is a slope per channel
    (axis 1), as in PyTorch; any other shape broadcasts as NumPy does (ONNX's PRelu)."""
    if weight.ndim == 1 and weight.shape[0] > 1 and x.ndim > 2:
        weight = weight.reshape(weight.shape[0], *(1,) * (x.ndim - 2))
    return where(x > 0, x, x * weight)


def softplus(x: Tensor) -> Tensor:
    """log(1 + e^x) = max(x, 0) + log(1 + e^-|x|): never overflows.

    -|x| is written min(x, -x), whose gradient at a tie goes to x, so the derivative at
    exactly 0 is relu'(0) + sigmoid(0) * 1 = 0.5, the true value.
    """
    _need_float(x, "softplus")
    return x.relu() + (minimum(x, -x).exp() + 1.0).log()


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    _need_float(x, "softmax")
    return fused.softmax(x, axis=dim % x.ndim)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    _need_float(x, "log_softmax")
    return fused.log_softmax(x, axis=dim % x.ndim)


# -- shape -----------------------------------------------------------------------------

def flatten(x: Tensor, start_dim: int = 1, end_dim: int = -1) -> Tensor:
    return x.flatten(start_dim, end_dim)


def pad(x: Tensor, pad: Sequence[int], mode: str = "constant", value: float = 0.0) -> Tensor:
    """Constant padding; `pad` lists (before, after) pairs from the LAST dim backwards,
    as in PyTorch: (left, right, top, bottom) pads W then H."""
    if mode != "constant":
        raise NotImplementedError(f"pad: only mode='constant' is supported, got {mode!r}")
    pad = [int(v) for v in pad]
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: needs an even number of values, at most 2 per dim, got "
                         f"{len(pad)} for a tensor of shape {x.shape}")
    if min(pad, default=0) < 0:
        raise ValueError(f"pad: negative padding {tuple(pad)} is not supported")
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    if all(w == (0, 0) for w in widths):
        return x
    return fused.pad(x, widths=widths, value=float(value))


# -- embedding -------------------------------------------------------------------------

def _index_tensor(idx: Any, like: Tensor, op: str, what: str, bound: int) -> Tensor:
    """Integer indices as a Tensor on like's device, range-checked when on the host."""
    host = None
    if isinstance(idx, Tensor):
        if idx.dtype.kind not in "iu":
            raise TypeError(f"{op}: {what} must be integers, got a {idx.dtype} tensor; "
                            "convert with .long()")
        if idx.device == "cpu":
            host = idx.numpy()
        t = idx if idx.device == like.device else idx.to(like.device)
    else:
        host = np.asarray(idx)
        if host.dtype.kind not in "iu":
            raise TypeError(f"{op}: {what} must be integers, got dtype {host.dtype}; "
                            "convert with .astype(int)")
        t = Tensor(host.astype(np.int64), device=like.device)
    if host is not None and host.size:
        bad = (host < 0) | (host >= bound)
        if bad.any():
            pos = tuple(int(i) for i in np.argwhere(bad)[0])
            where_ = pos[0] if len(pos) == 1 else pos
            one, of = ("label", "classes") if what == "labels" else ("index", "rows")
            raise ValueError(f"{op}: {one} {int(host[pos])} at position {where_} is out of "
                             f"range for {bound} {of} (valid: 0..{bound - 1})")
    return t


def embedding(idx: Any, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of `weight` (num_embeddings, dim) picked by integer `idx` of any shape.
    Rows looked up at `padding_idx` get no gradient (their values are still returned)."""
    ids = _index_tensor(idx, weight, "embedding", "indices", weight.shape[0])
    out = ops.GatherRows.apply(weight, ids)
    if padding_idx is not None:
        keep = (ids != padding_idx % weight.shape[0]).reshape(*ids.shape, 1)
        out = where(keep, out, out.detach())
    return out


# -- losses ----------------------------------------------------------------------------

def _class_last(x: Tensor) -> Tensor:
    """(N, C, d1, ...) -> (N*d1*..., C); (N, C) unchanged."""
    if x.ndim == 2:
        return x
    return x.permute(0, *range(2, x.ndim), 1).reshape(-1, x.shape[1])


def _labels(x: Tensor, labels: Any, op: str) -> tuple[Tensor, tuple[int, ...]]:
    if x.ndim < 2:
        raise ValueError(f"{op}: expected input of shape (N, C) (or (N, C, d1, ...)), got "
                         f"{x.shape}")
    lshape = tuple(labels.shape) if hasattr(labels, "shape") else np.shape(labels)
    want = (x.shape[0],) + x.shape[2:]
    if tuple(lshape) != want:
        raise ValueError(f"{op}: labels of shape {tuple(lshape)} do not match input of shape "
                         f"{x.shape} (expected labels of shape {want}, one class index per "
                         "sample)")
    t = _index_tensor(labels, x, op, "labels", x.shape[1])
    return t.reshape(-1, 1), want


def _nll(logp: Tensor, labels: Any, weight: Tensor | None, reduction: str, op: str,
         label_smoothing: float = 0.0) -> Tensor:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    idx, out_shape = _labels(logp, labels, op)
    c = logp.shape[1]
    lp = _class_last(logp)
    picked = -ops.TakeAlong.apply(lp, idx, axis=1).reshape(-1)
    if weight is not None:
        weight = _as_tensor(weight, logp)
        if weight.shape != (c,):
            raise ValueError(f"{op}: weight must have one entry per class, shape ({c},), got "
                             f"{weight.shape}")
        w_y = ops.GatherRows.apply(weight.reshape(c, 1), idx.reshape(-1)).reshape(-1)
        picked = picked * w_y
    loss = picked
    if label_smoothing > 0.0:
        smooth = -(lp * weight).sum(1) if weight is not None else -lp.sum(1)
        loss = picked * (1.0 - label_smoothing) + smooth * (label_smoothing / c)
    if reduction == "none":
        return loss.reshape(*out_shape)
    if reduction == "sum":
        return loss.sum()
    if weight is not None:  # PyTorch: weighted mean, normalised by the picked weights
        return loss.sum() / w_y.sum()
    return loss.mean()


def cross_entropy(logits: Tensor, labels: Any, weight: Any = None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy of raw scores (N, C) against integer class labels (N,).

    Computed as log_softmax then a gather of the labelled entry (fused into one kernel
    without class weights or smoothing), which never exponentiates a large logit. With
    label smoothing e the target puts 1 - e on the label and e/C on every class, as in
    PyTorch. Also accepts (N, C, d1, ...) with labels (N, d1, ...).
    """
    _need_float(logits, "cross_entropy", "logits")
    if logits.ndim < 2:
        raise ValueError(f"cross_entropy: expected logits of shape (N, C), got {logits.shape}")
    if weight is not None or label_smoothing or reduction not in _REDUCTIONS:
        return _nll(log_softmax(logits, 1), labels, weight, reduction, "cross_entropy",
                    float(label_smoothing))
    idx, out_shape = _labels(logits, labels, "cross_entropy")
    loss = fused.cross_entropy(_class_last(logits), idx.reshape(-1))
    return _reduce(loss.reshape(*out_shape) if reduction == "none" else loss, reduction,
                   "cross_entropy")


def nll_loss(log_probs: Tensor, labels: Any, weight: Any = None,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities (N, C) at integer labels (N,)."""
    _need_float(log_probs, "nll_loss")
    return _nll(log_probs, labels, weight, reduction, "nll_loss")


def _target(x: Tensor, target: Any, op: str) -> Tensor:
    _need_float(x, op)
    t = _as_tensor(target, x)
    if t.shape != x.shape:
        raise ValueError(f"{op}: input shape {x.shape} and target shape {t.shape} differ; "
                         "reshape one so they match")
    if t.dtype != x.dtype:
        raise TypeError(f"{op}: input dtype {x.dtype} and target dtype {t.dtype} differ")
    return t


def mse_loss(x: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error, the "Euclidean loss" (no 1/2 factor, as in PyTorch)."""
    d = x - _target(x, target, "mse_loss")
    return _reduce(d * d, reduction, "mse_loss")


def l1_loss(x: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    return _reduce((x - _target(x, target, "l1_loss")).abs(), reduction, "l1_loss")


def binary_cross_entropy_with_logits(logits: Tensor, target: Any, weight: Any = None,
                                     reduction: str = "mean", pos_weight: Any = None
                                     ) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable formula:
    max(x, 0) - x*y + log(1 + exp(-|x|)) (= softplus(x) - x*y), never exp of a large x.
    With pos_weight: (1 - y)*x + (1 + (pos_weight - 1)*y) * softplus(-x), as PyTorch."""
    op = "binary_cross_entropy_with_logits"
    y = _target(logits, target, op)
    if pos_weight is None:
        loss = softplus(logits) - logits * y
    else:
        pw = _as_tensor(pos_weight, logits)
        loss = (1.0 - y) * logits + ((pw - 1.0) * y + 1.0) * softplus(-logits)
    if weight is not None:
        loss = loss * _as_tensor(weight, logits)
    return _reduce(loss, reduction, op)


def _tensors(params: Any) -> list[Tensor]:
    return [params] if isinstance(params, Tensor) else list(params)


def l1_penalty(params: Iterable[Tensor] | Tensor) -> Tensor:
    """sum over all parameters of sum |w| (the lasso penalty; multiply by your lambda)."""
    ps = _tensors(params)
    if not ps:
        raise ValueError("l1_penalty: got no parameters")
    total = ps[0].abs().sum()
    for p in ps[1:]:
        total = total + p.abs().sum()
    return total


def l2_penalty(params: Iterable[Tensor] | Tensor) -> Tensor:
    """sum over all parameters of sum w^2, WITHOUT a 1/2 factor (so its gradient is 2w;
    SGD's weight_decay=wd corresponds to adding (wd / 2) * l2_penalty to the loss)."""
    ps = _tensors(params)
    if not ps:
        raise ValueError("l2_penalty: got no parameters")
    total = (ps[0] * ps[0]).sum()
    for p in ps[1:]:
        total = total + (p * p).sum()
    return total


# sequence models (issue 15): attention and layer norm live in sequence_functional
from .sequence_functional import layer_norm, scaled_dot_product_attention  # noqa: E402, F401

"""ONNX's RNN, LSTM and GRU operators, both ways.

Import (`rnn`, `lstm`, `gru`, rows of the table in ops.py): every attribute of the spec
(both directions, `layout`, initial states, `sequence_lens`, LSTM peepholes, `clip`,
`input_forget`, custom `activations`, GRU `linear_before_reset` 0 or 1). The common case,
which is what PyTorch and the engine export (default activations, no clip or peepholes,
every sequence full length, GRU with linear_before_reset=1), runs on the engine's fused
scan; anything else runs a step-by-step Tensor-op loop. Both are differentiable, so an
imported recurrent model trains like a hand-built one.

Export (`export_scan`, a row of the exporter's table): a recorded `fused.recurrent_scan` becomes one
ONNX node. Its weights stay the model's named parameters in PyTorch's layout and gate
order (`rnn.weight_ih_l0`, ...), reordered into ONNX's (LSTM i, o, f, c; GRU z, r, h)
by Split/Concat nodes that runtimes fold, so the file's state dict is the model's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..fused import recurrent_scan
from ..fused.recurrent import GATES
from ..nn import functional as F
from ..tensor import Tensor, cat, stack, where
from .errors import ExecutionError

Value = Any
# gate k of the engine's (PyTorch's) order is gate TO_ONNX[k] of ONNX's, and back
TO_ONNX = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2]}   # i f g o -> i o f c; r z n -> z r h
FROM_ONNX = {"LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2]}
DEFAULT_ACTS = {"LSTM": ["sigmoid", "tanh", "tanh"], "GRU": ["sigmoid", "tanh"],
                "RNN": ["tanh"]}
# ONNX activation functions: (uses alpha, uses beta, default alpha, default beta, f)
_ACTS: dict[str, tuple[bool, bool, float, float, Callable[..., Tensor]]] = {
    "relu": (False, False, 0.0, 0.0, lambda x, a, b: x.relu()),
    "tanh": (False, False, 0.0, 0.0, lambda x, a, b: x.tanh()),
    "sigmoid": (False, False, 0.0, 0.0, lambda x, a, b: x.sigmoid()),
    "affine": (True, True, 1.0, 0.0, lambda x, a, b: x * a + b),
    "leakyrelu": (True, False, 0.01, 0.0, lambda x, a, b: F.leaky_relu(x, a)),
    "thresholdedrelu": (True, False, 1.0, 0.0, lambda x, a, b: where(x > a, x, 0.0)),
    "scaledtanh": (True, True, 1.0, 1.0, lambda x, a, b: (x * b).tanh() * a),
    "hardsigmoid": (True, True, 0.2, 0.5, lambda x, a, b: (x * a + b).clip(0.0, 1.0)),
    "elu": (True, False, 1.0, 0.0, lambda x, a, b: F.elu(x, a)),
    "softsign": (False, False, 0.0, 0.0, lambda x, a, b: x / (x.abs() + 1.0)),
    "softplus": (False, False, 0.0, 0.0, lambda x, a, b: F.softplus(x)),
}


# -- import ----------------------------------------------------------------------------------

def check(kind: str) -> Callable[[dict[str, Any]], str | None]:
    """Load-time attribute check of an RNN/LSTM/GRU node (one message per problem)."""
    def fn(a: dict[str, Any]) -> str | None:
        if a.get("direction", "forward") not in ("forward", "reverse", "bidirectional"):
            return f"direction={a['direction']!r} is not forward, reverse or bidirectional"
        if a.get("layout", 0) not in (0, 1):
            return f"layout={a['layout']} is not 0 or 1"
        acts = a.get("activations")
        if acts:
            bad = [s for s in acts if str(s).lower() not in _ACTS]
            if bad:
                return f"activation(s) {bad} are not ONNX activation functions"
            per = len(DEFAULT_ACTS[kind]) * (2 if a.get("direction") == "bidirectional" else 1)
            if len(acts) != per:
                return f"{len(acts)} activations given, {per} expected"
        return None
    return fn


def _activations(kind: str, acts: list | None, alphas: list | None, betas: list | None,
                 D: int) -> list[list[Callable[[Tensor], Tensor]]]:
    """Per direction, the activation callables (alpha/beta consumed in order by the
    functions that take them; the ONNX operators' defaults when they run out)."""
    names = [str(s).lower() for s in acts] if acts else DEFAULT_ACTS[kind] * D
    ia: Iterator[float] = iter(alphas or [])
    ib: Iterator[float] = iter(betas or [])
    out = []
    for name in names:
        uses_a, uses_b, da, db, f = _ACTS[name]
        a = float(next(ia, da)) if uses_a else da
        b = float(next(ib, db)) if uses_b else db
        out.append(lambda x, f=f, a=a, b=b: f(x, a, b))
    n = len(names) // D
    return [out[d * n:(d + 1) * n] for d in range(D)]


def _reorder(t: Tensor, kind: str, order: dict[str, list[int]], axis: int = 0) -> Tensor:
    if kind not in order:
        return t
    G = len(order[kind])
    H = t.shape[axis] // G
    idx = (slice(None),) * axis
    return cat([t[idx + (slice(k * H, (k + 1) * H),)] for k in order[kind]], axis)


def _run(kind: str, ctx: Any, X: Value, W: Value, R: Value, B: Value, lens: Value,
         h0: Value, c0: Value, P: Value, a: dict[str, Any]) -> tuple:
    x, W, R = ctx.t(X), ctx.t(W), ctx.t(R)
    layout, direction = int(a.get("layout") or 0), a.get("direction") or "forward"
    D = 2 if direction == "bidirectional" else 1
    if x.ndim != 3 or W.ndim != 3 or R.ndim != 3 or W.shape[0] != D or R.shape[0] != D:
        raise ExecutionError(f"{kind}: X must be 3-D and W, R (num_directions={D}, G*H, ...), "
                             f"got X {x.shape}, W {W.shape}, R {R.shape}")
    H = R.shape[-1]
    if a.get("hidden_size") not in (None, H):
        raise ExecutionError(f"{kind}: hidden_size={a['hidden_size']} but R has shape "
                             f"{R.shape}")
    if layout == 1:
        x = x.transpose(0, 1)  # (T, B, I)
    T, batch = x.shape[0], x.shape[1]
    G = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind]
    ctx.guard((T, batch, G * H), kind)  # the gates of every step, before computing them
    ctx.guard((T, D, batch, H), kind)
    Bt = ctx.t(B) if B is not None else None
    states = []
    for s in (h0, c0):
        if s is None:
            states.append(None)
            continue
        st = ctx.t(s)
        states.append(st.transpose(0, 1) if layout == 1 else st)  # (D, B, H)
    lens_h = None if lens is None else ctx.h(lens).astype(np.int64).reshape(-1)
    if lens_h is not None and (lens_h.shape != (batch,) or lens_h.min() < 0
                               or lens_h.max() > T):
        raise ExecutionError(f"{kind}: sequence_lens {lens_h.tolist()} must be {batch} "
                             f"lengths in 0..{T}")
    full = lens_h is None or bool((lens_h == T).all())
    acts = _activations(kind, a.get("activations"), a.get("activation_alpha"),
                        a.get("activation_beta"), D)
    peep = None if P is None else ctx.t(P)
    if peep is not None and not isinstance(P, Tensor) and not np.any(ctx.h(P)):
        peep = None  # all-zero peepholes (what some exporters write) change nothing
    clip = a.get("clip")
    given = [str(n).lower() for n in (a.get("activations") or [])]
    relu = kind == "RNN" and given == ["relu"] * D
    standard = not given or given == DEFAULT_ACTS[kind] * D or relu
    plain = (standard and clip is None and not a.get("input_forget") and peep is None
             and full and (kind != "GRU" or bool(a.get("linear_before_reset"))))
    ys, hs, cs = [], [], []
    for d in range(D):
        reverse = direction == "reverse" or d == 1
        wb = Bt[d, :G * H] if Bt is not None else None
        rb = Bt[d, G * H:] if Bt is not None else None
        h = states[0][d] if states[0] is not None else None
        c = states[1][d] if states[1] is not None else None
        if plain:
            mode = kind if kind != "RNN" else ("RNN_RELU" if relu else "RNN_TANH")
            packed = recurrent_scan(
                x, h, c if kind == "LSTM" else None, _reorder(W[d], kind, FROM_ONNX),
                _reorder(R[d], kind, FROM_ONNX),
                None if wb is None else _reorder(wb, kind, FROM_ONNX),
                None if rb is None else _reorder(rb, kind, FROM_ONNX), mode=mode,
                reverse=reverse)
            ys.append(packed[:T] if kind == "LSTM" else packed)
            hs.append(packed[0] if reverse else packed[T - 1])
            if kind == "LSTM":
                cs.append(packed[T])
            continue
        y, hn, cn = _general(kind, x, W[d], R[d], wb, rb, h, c,
                             None if peep is None else peep[d], lens_h, acts[d], clip,
                             bool(a.get("input_forget")), bool(a.get("linear_before_reset")),
                             reverse)
        ys.append(y)
        hs.append(hn)
        cs.append(cn)
    Y, Yh = stack(ys, 1), stack(hs)  # (T, D, B, H), (D, B, H)
    Yc = stack(cs) if kind == "LSTM" else None
    if layout == 1:
        Y, Yh = Y.permute(2, 0, 1, 3), Yh.transpose(0, 1)
        Yc = Yc.transpose(0, 1) if Yc is not None else None
    return (Y, Yh, Yc) if kind == "LSTM" else (Y, Yh)


def _general(kind: str, x: Tensor, W: Tensor, R: Tensor, wb: Tensor | None,
             rb: Tensor | None, h: Tensor | None, c: Tensor | None, P: Tensor | None,
             lens: np.ndarray | None, acts: list, clip: float | None, input_forget: bool,
             linear_before_reset: bool, reverse: bool) -> tuple[Tensor, Tensor, Any]:
    """The spec's equations step by step (ONNX gate orders), with sequence lengths: past
    its length a sequence keeps its state and outputs zeros (reverse starts at its end)."""
    T, B = x.shape[0], x.shape[1]
    H = R.shape[-1]
    zeros = Tensor(np.zeros((B, H), x.dtype), device=x.device, dtype=x.dtype)
    h = zeros if h is None else h
    c = zeros if c is None else c
    gx = F.linear(x, W, wb)
    f = acts[0]

    def pre(v: Tensor) -> Tensor:
        return v if clip is None else v.clip(-float(clip), float(clip))
    outs: list[Any] = [None] * T
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        g = gx[t]
        if kind == "LSTM":
            gh = F.linear(h, R, rb)
            z = g + gh
            pi = z[:, :H] + (P[:H] * c if P is not None else 0.0)
            i = f(pre(pi))
            if input_forget:
                fg = 1.0 - i
            else:
                fg = f(pre(z[:, 2 * H:3 * H] + (P[2 * H:] * c if P is not None else 0.0)))
            c_new = fg * c + i * acts[1](pre(z[:, 3 * H:]))
            o = f(pre(z[:, H:2 * H] + (P[H:2 * H] * c_new if P is not None else 0.0)))
            h_new = o * acts[2](c_new)
        elif kind == "GRU":
            rbz = (lambda k: rb[k * H:(k + 1) * H]) if rb is not None else (lambda k: None)
            zt = f(pre(g[:, :H] + F.linear(h, R[:H], rbz(0))))
            rt = f(pre(g[:, H:2 * H] + F.linear(h, R[H:2 * H], rbz(1))))
            if linear_before_reset:
                hh = g[:, 2 * H:] + rt * F.linear(h, R[2 * H:], rbz(2))
            else:
                hh = g[:, 2 * H:] + F.linear(rt * h, R[2 * H:], rbz(2))
            cand = acts[1](pre(hh))
            h_new = cand + zt * (h - cand)
            c_new = c
        else:
            h_new = f(pre(g + F.linear(h, R, rb)))
            c_new = c
        if lens is None:
            h, c = h_new, c_new
            outs[t] = h_new
        else:
            m = Tensor((t < lens)[:, None], device=x.device)
            h, c = where(m, h_new, h), where(m, c_new, c)
            outs[t] = where(m, h_new, zeros)
    return stack(outs), h, (c if kind == "LSTM" else None)


def rnn(ctx: Any, X: Value, W: Value, R: Value, B: Value = None, sequence_lens: Value = None,
        initial_h: Value = None, **a: Any) -> tuple:
    return _run("RNN", ctx, X, W, R, B, sequence_lens, initial_h, None, None, a)


def gru(ctx: Any, X: Value, W: Value, R: Value, B: Value = None, sequence_lens: Value = None,
        initial_h: Value = None, **a: Any) -> tuple:
    return _run("GRU", ctx, X, W, R, B, sequence_lens, initial_h, None, None, a)


def lstm(ctx: Any, X: Value, W: Value, R: Value, B: Value = None, sequence_lens: Value = None,
         initial_h: Value = None, initial_c: Value = None, P: Value = None, **a: Any) -> tuple:
    return _run("LSTM", ctx, X, W, R, B, sequence_lens, initial_h, initial_c, P, a)


_COMMON = {"activation_alpha": None, "activation_beta": None, "activations": None,
           "clip": None, "direction": "forward", "hidden_size": None, "layout": 0}
ATTRS = {"RNN": _COMMON, "GRU": {**_COMMON, "linear_before_reset": 0},
         "LSTM": {**_COMMON, "input_forget": 0}}


# -- export ----------------------------------------------------------------------------------

def export_scan(r: Any) -> None:
    """A traced fused scan (x, h0, c0, w_ih, w_hh, b_ih, b_hh; mode, reverse) as one ONNX
    RNN/LSTM/GRU node whose packed output matches the scan's: (T, B, H), plus c_T as
    row T for LSTM."""
    mode, reverse = r.kw.get("mode", "LSTM"), bool(r.kw.get("reverse", False))
    kind = "RNN" if mode.startswith("RNN") else mode
    x, h0, c0, w_ih, w_hh, b_ih, b_hh = r.args
    H = w_hh.shape[1]
    G = GATES[mode]

    def onnx_layout(i: int) -> str:  # engine weight/bias arg i -> ONNX order, direction axis
        name = r.arg(i)
        if kind in TO_ONNX:
            parts = [r.b.fresh("gate") for _ in range(G)]
            r.b.node("Split", [name, r.b.ints([H] * G)], parts, tag=r.tag, axis=0)
            name = r.node("Concat", [parts[k] for k in TO_ONNX[kind]], axis=0)
        return r.node("Unsqueeze", [name, r.b.ints([0])])

    inputs = [r.arg(0), onnx_layout(3), onnx_layout(4)]
    if b_ih is not None or b_hh is not None:
        zero = np.zeros((1, G * H), w_hh.dtype)
        parts = [onnx_layout(i) if b is not None else r.b.const(zero)
                 for i, b in ((5, b_ih), (6, b_hh))]
        inputs.append(r.node("Concat", parts, axis=1))
    else:
        inputs.append("")
    inputs.append("")  # sequence_lens: every sequence is full length
    inputs.append(r.node("Unsqueeze", [r.arg(1), r.b.ints([0])]) if h0 is not None else "")
    if kind == "LSTM":
        inputs.append(r.node("Unsqueeze", [r.arg(2), r.b.ints([0])]) if c0 is not None else "")
    while inputs[-1] == "":
        inputs.pop()
    outs = [r.b.fresh("Y"), r.b.fresh("Y_h")] + ([r.b.fresh("Y_c")] if kind == "LSTM" else [])
    attrs: dict[str, Any] = {"hidden_size": H}
    if reverse:
        attrs["direction"] = "reverse"
    if kind == "GRU":
        attrs["linear_before_reset"] = 1
    if mode == "RNN_RELU":
        attrs["activations"] = ["Relu"]
    r.b.node(kind, inputs, outs, tag=r.tag, **attrs)
    y = r.node("Squeeze", [outs[0], r.b.ints([1])])  # (T, 1, B, H) -> (T, B, H)
    if kind == "LSTM":
        y = r.node("Concat", [y, outs[2]], axis=0)
    r.ex.names[id(r.out)] = y

"""The recurrent scan: one layer and direction of an RNN/LSTM/GRU over a whole sequence
as one fused kernel.

Written with Tensor ops, a step of an LSTM is about fifteen small ops, so a 28-step
sequence is hundreds of NumPy calls or GPU dispatches forward and as many backward. The
fast paths (`recurrent_scan` / `recurrent_scan_grad` on a backend: NumPy in
backends/cpu_recurrent.py, WGSL in backends/gpu/recurrent.py) do the input projection of
all steps as one GEMM and each step as one loop iteration or one dispatch that computes the
recurrent product and the gate math together.

Signature: x (T, B, I), h0 (B, H) or None (zeros), c0 (B, H) or None for LSTM (None
otherwise), w_ih (G*H, I), w_hh (G*H, H), b_ih / b_hh (G*H,) or None; params mode
("RNN_TANH", "RNN_RELU", "LSTM", "GRU") and reverse (run from t = T-1 down to 0) -> one
packed Tensor: the hidden states in time order (T, B, H), plus c_T as row T for LSTM
((T + 1, B, H)). Gate orders are PyTorch's (LSTM i, f, g, o; GRU r, z, n).

The reference below is the step math itself (the cells of engine.nn.sequence_functional).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import tensor as T
from ..backends.cpu_recurrent import GATES
from .registry import Function, FusedKernel, Sample

Tensor = T.Tensor


# -- the reference: one step, then the scan ----------------------------------------------------
# `gh` is the recurrent projection W_hh h + b_hh; None when the state is zero and there is no
# b_hh (so a zero state needs no zero tensor: one-step cells stay traceable for export).

def _linear(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    y = (x.reshape(-1, x.shape[-1]) @ w.T).reshape(*x.shape[:-1], w.shape[0])
    return y if b is None else y + b


def _plus(a: Tensor, b: Tensor | None) -> Tensor:
    return a if b is None else a + b


def recurrent_projection(h: Tensor | None, w_hh: Tensor, b_hh: Tensor | None
                         ) -> Tensor | None:
    """W_hh h + b_hh; just b_hh (or None) for a zero state."""
    return b_hh if h is None else _linear(h, w_hh, b_hh)


def rnn_gates(gx: Tensor, gh: Tensor | None, nonlinearity: str = "tanh") -> Tensor:
    """h' = act(W_ih x + b_ih + W_hh h + b_hh), given the two projections."""
    pre = _plus(gx, gh)
    return pre.tanh() if nonlinearity == "tanh" else pre.relu()


def lstm_gates(gx: Tensor, gh: Tensor | None, c: Tensor | None, gates: dict | None = None
               ) -> tuple[Tensor, Tensor]:
    """(h', c') from the projections (gate order i, f, g, o as in PyTorch):
    c' = f * c + i * g: the forget gate f decides what of the old cell to keep, the input
    gate i how much of the candidate g to write; h' = o * tanh(c'). c None: zero.
    A `gates` dict receives the activations ("input", "forget", "candidate", "output")."""
    H = gx.shape[-1] // 4
    g = _plus(gx, gh)
    i, f = g[..., :H].sigmoid(), g[..., H:2 * H].sigmoid()
    cand, o = g[..., 2 * H:3 * H].tanh(), g[..., 3 * H:].sigmoid()
    if gates is not None:
        gates.update(input=i, forget=f, candidate=cand, output=o)
    c2 = i * cand if c is None else f * c + i * cand
    return o * c2.tanh(), c2


def gru_gates(gx: Tensor, gh: Tensor | None, h: Tensor | None, gates: dict | None = None
              ) -> Tensor:
    """h' from the projections (gate order r, z, n as in PyTorch): the reset gate r
    scales the recurrent part of the candidate n, the update gate z mixes old and new:
    h' = (1 - z) * n + z * h. h None: zero. `gates` receives "reset" and "update"."""
    H = gx.shape[-1] // 3
    r = _plus(gx[..., :H], None if gh is None else gh[..., :H]).sigmoid()
    z = _plus(gx[..., H:2 * H], None if gh is None else gh[..., H:2 * H]).sigmoid()
    n = _plus(gx[..., 2 * H:], None if gh is None else r * gh[..., 2 * H:]).tanh()
    if gates is not None:
        gates.update(reset=r, update=z)
    return n - z * n if h is None else n + z * (h - n)


def _scan_ref(x: Tensor, h0: Tensor | None, c0: Tensor | None, w_ih: Tensor, w_hh: Tensor,
              b_ih: Tensor | None, b_hh: Tensor | None, mode: str = "LSTM",
              reverse: bool = False) -> Tensor:
    """Step by step with the cells above: the packed output of the module docstring."""
    steps = x.shape[0]
    gx = _linear(x, w_ih, b_ih)  # every step's input projection in one GEMM
    h, c = h0, c0  # None: zero
    outs: list[Any] = [None] * steps
    for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
        gh = recurrent_projection(h, w_hh, b_hh)
        if mode == "LSTM":
            h, c = lstm_gates(gx[t], gh, c)
        elif mode == "GRU":
            h = gru_gates(gx[t], gh, h)
        else:
            h = rnn_gates(gx[t], gh, "tanh" if mode == "RNN_TANH" else "relu")
        outs[t] = h
    out = T.stack(outs)
    return T.cat([out, c.unsqueeze(0)], 0) if mode == "LSTM" else out


def _samples(rng: np.random.Generator) -> list[Sample]:
    """Every mode in both directions, with and without biases, and at H=70 (more than one
    of the GPU kernels' 64-thread workgroups per row)."""
    def r(*shape: int, scale: float = 1.0) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    out = []
    cases = [(m, False, True, (5, 3, 4, 6)) for m in GATES] + \
        [(m, True, m == "RNN_RELU", (3, 2, 3, 70)) for m in GATES] + \
        [("LSTM", True, True, (4, 2, 3, 5)), ("GRU", False, False, (4, 2, 3, 5))]
    for mode, reverse, bias, (steps, B, I, H) in cases:
        G = GATES[mode]
        b = (r(G * H), r(G * H)) if bias else (None, None)
        if mode == "RNN_RELU":  # pre-activations away from the kink at 0
            b = (b[0] + 2.0, b[1])
        out.append(Sample((r(steps, B, I), r(B, H), r(B, H) if mode == "LSTM" else None,
                           r(G * H, I, scale=0.4), r(G * H, H, scale=1 / np.sqrt(H)), *b),
                          {"mode": mode, "reverse": reverse}))
    # zero initial states (None: made inside the scan)
    out.append(Sample((r(4, 2, 3), None, None, r(16, 3, scale=0.4), r(16, 4, scale=0.5),
                       r(16), None), {"mode": "LSTM", "reverse": False}))
    out.append(Sample((r(3, 2, 3), None, None, r(12, 3, scale=0.4), r(12, 4, scale=0.5),
                       None, r(12)), {"mode": "GRU", "reverse": True}))
    return out


recurrent_scan = FusedKernel("recurrent_scan", _scan_ref, samples=_samples)

_NAMES = ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh")


@recurrent_scan.fast("recurrent_scan", "recurrent_scan_grad")
class _RecurrentScan(Function):
    """Arguments that are None (c0 outside LSTM, absent biases) get no gradient slot;
    zero initial states are made here, so a trace sees no batch-sized constant."""

    def forward(self, x, h0, c0, w_ih, w_hh, b_ih, b_hh, mode: str = "LSTM",
                reverse: bool = False):
        raw = (x, h0, c0, w_ih, w_hh, b_ih, b_hh)
        self.present = [n for n, a in zip(_NAMES, raw) if a is not None]
        if h0 is None:
            h0 = self.b.full((x.shape[1], w_hh.shape[1]), 0.0, x.dtype)
        if c0 is None and mode == "LSTM":
            c0 = self.b.full((x.shape[1], w_hh.shape[1]), 0.0, x.dtype)
        self.mode, self.reverse, self.args = mode, reverse, (x, h0, c0, w_ih, w_hh)
        self.out, self.saved = self.b.recurrent_scan(mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh,
                                                     reverse)
        return self.out

    def backward(self, g):
        # which arguments want gradients: the NumPy scan then skips the GEMMs of those
        # that do not (dx of the input layer, dh0 of a zero initial state)
        self.saved["needs"] = dict(zip(self.present, self.needs))
        grads = self.b.recurrent_scan_grad(self.mode, g, self.out, self.saved, *self.args,
                                           self.reverse)
        return tuple(grads.get(n) for n in self.present)


__all__ = ["recurrent_scan", "GATES", "lstm_gates", "gru_gates", "rnn_gates",
           "recurrent_projection"]

"""shaders/recurrent.wgsl and recurrent_grad.wgsl: the fused recurrent scan's fast kernels
(`engine.fused.recurrent`): one dispatch per time step does the recurrent product and the
gate math, forward and backward; the input projection and the weight gradients are GEMMs."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..cpu_recurrent import GATES, prev_index
from .core import GpuCore
from .device import Params

Array = Any


class RecurrentKernels(GpuCore):
    """recurrent_scan and recurrent_scan_grad: one dispatch per step forward and one per
    step backward (recurrent product and gate math together), GEMMs for the rest."""

    def recurrent_scan(self, mode: str, x: Array, h0: Array, c0: Array | None, w_ih: Array,
                       w_hh: Array, b_ih: Array | None, b_hh: Array | None,
                       reverse: bool) -> tuple[Array, dict]:
        T, B, I = x.shape
        H = h0.shape[-1]
        gx = self.matmul(self.reshape(x, (T * B, I)), w_ih, trans_b=True)
        if b_ih is not None:
            gx = self.binary("add", gx, b_ih)
        whT = self.permute(w_hh, (1, 0))  # (H, G*H): neighbouring threads read neighbours
        extra = 1 if mode == "LSTM" else 0
        out = self._new((T + extra, B, H), np.float32)
        save = self._new((T, B, (5 if mode == "LSTM" else 4) * H), np.float32) \
            if mode in ("LSTM", "GRU") else None
        entry = {"LSTM": "lstm_fwd", "GRU": "gru_fwd"}.get(mode, "rnn_fwd")
        groups = _groups(B * H)
        for k in range(T):
            t = T - 1 - k if reverse else k
            p = prev_index(t, T, reverse)
            prm = Params().u(T, B, H, t).u(0 if p is None else p, int(p is None), 0, 0)
            self._run("recurrent", entry, "wwrrrrr", prm,
                    [out, save, gx, whT, b_hh, h0, c0], groups,
                    HAS_BIAS=b_hh is not None, RELU=mode == "RNN_RELU")
        return out, {"save": save}

    def recurrent_scan_grad(self, mode: str, g: Array, out: Array, saved: dict, x: Array,
                            h0: Array, c0: Array | None, w_ih: Array, w_hh: Array,
                            reverse: bool) -> dict[str, Array]:
        T, B, I = x.shape
        H = h0.shape[-1]
        G = GATES[mode]
        dgx = self._new((T, B, G * H), np.float32)
        # GRU only (WebGPU forbids binding one buffer to two writable slots)
        dgh = self._new((T, B, G * H), np.float32) if mode == "GRU" else dgx
        state = self._new((2, B, H), np.float32)  # [0] LSTM dc, GRU dh * z; [1] dh0
        entry = {"LSTM": "lstm_bwd", "GRU": "gru_bwd"}.get(mode, "rnn_bwd")
        groups = _groups(B * H)
        order = list(range(T)) if reverse else list(range(T - 1, -1, -1))
        for k, t in enumerate(order + [-1]):  # -1: the initial state's gradient
            nxt = order[k - 1] if k > 0 else 0  # the step after t, done in the last dispatch
            p = prev_index(t, T, reverse) if t >= 0 else None
            prm = (Params().u(T, B, H, max(t, 0)).u(0 if p is None else p, int(p is None),
                                                     int(k == 0), int(t < 0)).u(nxt, 0, 0, 0))
            self._run("recurrent_grad", entry, "wwwrrrrr", prm,
                    [dgx, dgh if mode == "GRU" else None, state, g, out, saved["save"],
                     w_hh, _or(h0, c0)],
                    groups, RELU=mode == "RNN_RELU")
        fx = self.reshape(dgx, (T * B, G * H))
        fh = self.reshape(dgh, (T * B, G * H))
        if reverse:
            hp = [self.getitem(out, (slice(1, T),)), self.reshape(h0, (1, B, H))]
        else:
            hp = [self.reshape(h0, (1, B, H)), self.getitem(out, (slice(0, T - 1),))]
        hp = self.concat(hp, 0)
        grads = {"x": self.reshape(self.matmul(fx, w_ih), (T, B, I)),
                 "h0": self.getitem(state, (1,)),
                 "w_ih": self.matmul(fx, self.reshape(x, (T * B, I)), trans_a=True),
                 "w_hh": self.matmul(fh, self.reshape(hp, (T * B, H)), trans_a=True),
                 "b_ih": self.reduce("sum", fx, (0,), False),
                 "b_hh": self.reduce("sum", fh, (0,), False)}
        if mode == "LSTM":
            grads["c0"] = self.getitem(state, (0,))
        return grads


def _or(a: Any, b: Any) -> Any:
    return a if b is None else b


def _groups(n: int, wg: int = 64) -> tuple[int, int, int]:
    g = max(1, -(-n // wg))
    return (g, 1, 1) if g <= 65535 else (65535, -(-g // 65535), 1)


_NAMES = ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh")

"""Fused recurrent scans: one layer and direction of an RNN/LSTM/GRU as ONE differentiable
op, with a NumPy fast path and a WGSL fast path beside the Tensor-op reference.

Why fused: written with Tensor ops, a step of an LSTM is about fifteen small ops, so a
28-step sequence is hundreds of NumPy calls or GPU dispatches forward and as many backward.
Here the input projection of all steps is one GEMM, each step is one loop iteration
(NumPy) or one dispatch that does the recurrent product and the gate math together
(`shaders/recurrent.wgsl`), and backpropagation through time is the same loop backwards
with the weight gradients as one GEMM each at the end.

Signature (every path): x (T, B, I), h0 (B, H) or None (zeros), c0 (B, H) or None for
LSTM (None otherwise),
w_ih (G*H, I), w_hh (G*H, H), b_ih / b_hh (G*H,) or None -> one packed array: the hidden
states h_t in time order (T, B, H), plus c_T as row T for LSTM ((T + 1, B, H)). `reverse`
runs from t = T-1 down to 0. Gate orders are PyTorch's (LSTM i, f, g, o; GRU r, z, n).
The reference is `sequence_functional.scan_reference`; tests compare every fast path with
it, forward and backward, on every device.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import Function

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
Array = Any


def _sigmoid_(a: np.ndarray) -> np.ndarray:
    """In place, via tanh (never overflows): sigmoid(x) = (1 + tanh(x / 2)) / 2."""
    np.multiply(a, 0.5, out=a)
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a


def _prev_index(t: int, T: int, reverse: bool) -> int | None:
    """The time index whose state feeds step t (None: the initial state)."""
    p = t + 1 if reverse else t - 1
    return p if 0 <= p < T else None


def _hprev(out: np.ndarray, h0: np.ndarray, T: int, reverse: bool) -> np.ndarray:
    """(T, B, H): the hidden state each step started from, in time order."""
    if reverse:
        return np.concatenate([out[1:T], h0[None]], 0)
    return np.concatenate([h0[None], out[:T - 1]], 0)


class NumpyScan:
    """The CPU fast path: forward keeps what backward needs (gates, cells) in `saved`."""

    @staticmethod
    def forward(mode: str, x: np.ndarray, h0: np.ndarray, c0: np.ndarray | None,
                w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray | None,
                b_hh: np.ndarray | None, reverse: bool) -> tuple[np.ndarray, dict]:
        if mode == "LSTM":
            return NumpyScan._lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse)
        T, B, I = x.shape
        H = h0.shape[-1]
        G = GATES[mode]
        dt = x.dtype
        gx = np.matmul(x.reshape(T * B, I), w_ih.T).reshape(T, B, G * H)
        if b_ih is not None:
            gx += b_ih
        if b_hh is not None and mode != "GRU":  # GRU's b_hn sits inside r * (...)
            gx += b_hh
        whT = np.ascontiguousarray(w_hh.T)
        out = np.empty((T, B, H), dt)
        order = range(T - 1, -1, -1) if reverse else range(T)
        h = h0
        saved: dict[str, np.ndarray] = {}
        if mode == "GRU":
            A = np.empty((T, B, 4 * H), dt)  # r, z, n and the recurrent part of n
            gh = np.empty((B, 3 * H), dt)
            for t in order:
                np.matmul(h, whT, out=gh)
                if b_hh is not None:
                    gh += b_hh
                a, g = A[t], gx[t]
                np.add(g[:, :2 * H], gh[:, :2 * H], out=a[:, :2 * H])
                _sigmoid_(a[:, :2 * H])
                a[:, 3 * H:] = gh[:, 2 * H:]
                n = a[:, 2 * H:3 * H]
                np.multiply(a[:, :H], gh[:, 2 * H:], out=n)
                n += g[:, 2 * H:]
                np.tanh(n, out=n)
                hn = out[t]
                np.subtract(h, n, out=hn)  # h' = n + z * (h - n)
                hn *= a[:, H:2 * H]
                hn += n
                h = hn
            saved.update(A=A)
        else:
            relu = mode == "RNN_RELU"
            for t in order:
                hn = out[t]
                np.matmul(h, whT, out=hn)
                hn += gx[t]
                if relu:
                    np.maximum(hn, 0, out=hn)
                else:
                    np.tanh(hn, out=hn)
                h = hn
        return out, saved

    @staticmethod
    def backward(mode: str, g: np.ndarray, out: np.ndarray, saved: dict, x: np.ndarray,
                 h0: np.ndarray, c0: np.ndarray | None, w_ih: np.ndarray, w_hh: np.ndarray,
                 reverse: bool) -> dict[str, np.ndarray]:
        if mode == "LSTM":
            return NumpyScan._lstm_backward(g, out, saved, x, h0, c0, w_ih, w_hh, reverse)
        T, B, I = x.shape
        H = h0.shape[-1]
        G = GATES[mode]
        dt = x.dtype
        w = np.ascontiguousarray(w_hh)
        order = range(T) if reverse else range(T - 1, -1, -1)  # forward's order, reversed
        dgx = np.empty((T, B, G * H), dt)
        dgh = dgx
        dh = np.zeros((B, H), dt)
        if mode == "GRU":
            A = saved["A"]
            dgh = np.empty((T, B, 3 * H), dt)
            for t in order:
                dh += g[t]
                a = A[t]
                r, z, n, ghn = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
                p = _prev_index(t, T, reverse)
                hp = h0 if p is None else out[p]
                dx_, dh_ = dgx[t], dgh[t]
                dn = dx_[:, 2 * H:]
                np.multiply(dh, 1.0 - z, out=dn)
                dn *= 1.0 - n * n
                np.multiply(dn, ghn, out=dx_[:, :H])
                dx_[:, :H] *= r * (1.0 - r)
                np.subtract(hp, n, out=dx_[:, H:2 * H])
                dx_[:, H:2 * H] *= dh * z * (1.0 - z)
                dh_[:, :2 * H] = dx_[:, :2 * H]
                np.multiply(dn, r, out=dh_[:, 2 * H:])
                dh = dh * z + dh_ @ w
        else:
            relu = mode == "RNN_RELU"
            for t in order:
                dh += g[t]
                d = dgx[t]
                if relu:
                    np.multiply(dh, out[t] > 0, out=d)
                else:
                    np.multiply(dh, 1.0 - out[t] * out[t], out=d)
                dh = d @ w
        fx, fh = dgx.reshape(T * B, G * H), dgh.reshape(T * B, G * H)
        hp = _hprev(out, h0, T, reverse).reshape(T * B, H)
        return {"x": (fx @ w_ih).reshape(T, B, I), "h0": dh,
                "w_ih": fx.T @ x.reshape(T * B, I), "w_hh": fh.T @ hp,
                "b_ih": fx.sum(0), "b_hh": fh.sum(0)}

    # LSTM: the gates are kept in the order i, f, o, g (the three sigmoids side by side)
    # with the sigmoid rows of the weights halved, so ONE tanh activates all four gates:
    # sigmoid(z) = (1 + tanh(z / 2)) / 2. Gradients are those of the true pre-activations.
    @staticmethod
    def _lstm_layout(H: int, dt: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        perm = np.r_[0:2 * H, 3 * H:4 * H, 2 * H:3 * H]
        scale = np.ones(4 * H, dt)
        scale[:3 * H] = 0.5
        return perm, scale

    @staticmethod
    def _lstm_forward(x: np.ndarray, h0: np.ndarray, c0: np.ndarray, w_ih: np.ndarray,
                      w_hh: np.ndarray, b_ih: np.ndarray | None, b_hh: np.ndarray | None,
                      reverse: bool) -> tuple[np.ndarray, dict]:
        T, B, I = x.shape
        H = h0.shape[-1]
        dt = x.dtype
        perm, scale = NumpyScan._lstm_layout(H, dt)
        gx = np.matmul(x.reshape(T * B, I), (w_ih[perm] * scale[:, None]).T)
        for b in (b_ih, b_hh):
            if b is not None:
                gx += b[perm] * scale
        gx = gx.reshape(T, B, 4 * H)
        whT = np.ascontiguousarray((w_hh[perm] * scale[:, None]).T)
        out = np.empty((T + 1, B, H), dt)
        A = np.empty((T, B, 4 * H), dt)  # gate activations i, f, o, g
        C = np.empty((T, B, H), dt)
        TC = np.empty((T, B, H), dt)
        h, c = h0, c0
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            a = A[t]
            np.matmul(h, whT, out=a)
            a += gx[t]
            np.tanh(a, out=a)
            sig = a[:, :3 * H]
            sig *= 0.5
            sig += 0.5
            cn = C[t]
            np.multiply(a[:, H:2 * H], c, out=cn)
            cn += a[:, :H] * a[:, 3 * H:]
            np.tanh(cn, out=TC[t])
            h = out[t]
            np.multiply(a[:, 2 * H:3 * H], TC[t], out=h)
            c = cn
        out[T] = c
        return out, {"A": A, "C": C, "TC": TC}

    @staticmethod
    def _lstm_backward(g: np.ndarray, out: np.ndarray, saved: dict, x: np.ndarray,
                       h0: np.ndarray, c0: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray,
                       reverse: bool) -> dict[str, np.ndarray]:
        T, B, I = x.shape
        H = h0.shape[-1]
        dt = x.dtype
        perm, _ = NumpyScan._lstm_layout(H, dt)
        inv = np.argsort(perm)
        A, C, TC = saved["A"], saved["C"], saved["TC"]
        wp = np.ascontiguousarray(w_hh[perm])
        dG = np.empty((T, B, 4 * H), dt)  # gradients of the pre-activations, i f o g
        dh = np.zeros((B, H), dt)
        dc = np.array(g[T], dtype=dt)
        for t in (range(T) if reverse else range(T - 1, -1, -1)):
            dh += g[t]
            a, tc, d = A[t], TC[t], dG[t]
            p = _prev_index(t, T, reverse)
            tmp = tc * tc
            np.subtract(1.0, tmp, out=tmp)
            tmp *= a[:, 2 * H:3 * H]
            tmp *= dh
            dc += tmp
            np.multiply(dc, a[:, 3 * H:], out=d[:, :H])
            np.multiply(dc, c0 if p is None else C[p], out=d[:, H:2 * H])
            np.multiply(dh, tc, out=d[:, 2 * H:3 * H])
            sig = a[:, :3 * H]
            d[:, :3 * H] *= sig
            d[:, :3 * H] *= 1.0 - sig
            cand = a[:, 3 * H:]
            np.multiply(dc, a[:, :H], out=d[:, 3 * H:])
            d[:, 3 * H:] *= 1.0 - cand * cand
            dc *= a[:, H:2 * H]
            dh = d @ wp
        f = dG.reshape(T * B, 4 * H)
        hp = _hprev(out, h0, T, reverse).reshape(T * B, H)
        db = f.sum(0)[inv]
        return {"x": (f @ w_ih[perm]).reshape(T, B, I), "h0": dh, "c0": dc,
                "w_ih": (f.T @ x.reshape(T * B, I))[inv], "w_hh": (f.T @ hp)[inv],
                "b_ih": db, "b_hh": db}


class GpuScan:
    """The WGSL fast path: one dispatch per step forward and one per step backward
    (recurrent product and gate math together), GEMMs for the rest."""

    @staticmethod
    def available(backend: Any) -> bool:
        return getattr(backend, "name", "") == "gpu" and hasattr(backend, "_run")

    @staticmethod
    def forward(bk: Any, mode: str, x: Array, h0: Array, c0: Array | None, w_ih: Array,
                w_hh: Array, b_ih: Array | None, b_hh: Array | None,
                reverse: bool) -> tuple[Array, dict]:
        from ..backends.gpu.device import Params

        T, B, I = x.shape
        H = h0.shape[-1]
        gx = bk.matmul(bk.reshape(x, (T * B, I)), w_ih, trans_b=True)
        if b_ih is not None:
            gx = bk.binary("add", gx, b_ih)
        whT = bk.permute(w_hh, (1, 0))  # (H, G*H): neighbouring threads read neighbours
        extra = 1 if mode == "LSTM" else 0
        out = bk._new((T + extra, B, H), np.float32)
        save = bk._new((T, B, (5 if mode == "LSTM" else 4) * H), np.float32) \
            if mode in ("LSTM", "GRU") else None
        entry = {"LSTM": "lstm_fwd", "GRU": "gru_fwd"}.get(mode, "rnn_fwd")
        groups = _groups(B * H)
        for k in range(T):
            t = T - 1 - k if reverse else k
            p = _prev_index(t, T, reverse)
            prm = Params().u(T, B, H, t).u(0 if p is None else p, int(p is None), 0, 0)
            bk._run("recurrent", entry, "wwrrrrr", prm,
                    [out, save, gx, whT, b_hh, h0, c0], groups,
                    HAS_BIAS=b_hh is not None, RELU=mode == "RNN_RELU")
        return out, {"save": save}

    @staticmethod
    def backward(bk: Any, mode: str, g: Array, out: Array, saved: dict, x: Array, h0: Array,
                 c0: Array | None, w_ih: Array, w_hh: Array,
                 reverse: bool) -> dict[str, Array]:
        from ..backends.gpu.device import Params

        T, B, I = x.shape
        H = h0.shape[-1]
        G = GATES[mode]
        dgx = bk._new((T, B, G * H), np.float32)
        # GRU only (WebGPU forbids binding one buffer to two writable slots)
        dgh = bk._new((T, B, G * H), np.float32) if mode == "GRU" else dgx
        state = bk._new((2, B, H), np.float32)  # [0] LSTM dc, GRU dh * z; [1] dh0
        entry = {"LSTM": "lstm_bwd", "GRU": "gru_bwd"}.get(mode, "rnn_bwd")
        groups = _groups(B * H)
        order = list(range(T)) if reverse else list(range(T - 1, -1, -1))
        for k, t in enumerate(order + [-1]):  # -1: the initial state's gradient
            nxt = order[k - 1] if k > 0 else 0  # the step after t, done in the last dispatch
            p = _prev_index(t, T, reverse) if t >= 0 else None
            prm = (Params().u(T, B, H, max(t, 0)).u(0 if p is None else p, int(p is None),
                                                     int(k == 0), int(t < 0)).u(nxt, 0, 0, 0))
            bk._run("recurrent_grad", entry, "wwwrrrrr", prm,
                    [dgx, dgh if mode == "GRU" else None, state, g, out, saved["save"],
                     w_hh, _or(h0, c0)],
                    groups, RELU=mode == "RNN_RELU")
        fx = bk.reshape(dgx, (T * B, G * H))
        fh = bk.reshape(dgh, (T * B, G * H))
        if reverse:
            hp = bk.concat([bk.getitem(out, (slice(1, T),)), bk.reshape(h0, (1, B, H))], 0)
        else:
            hp = bk.concat([bk.reshape(h0, (1, B, H)), bk.getitem(out, (slice(0, T - 1),))], 0)
        grads = {"x": bk.reshape(bk.matmul(fx, w_ih), (T, B, I)),
                 "h0": bk.getitem(state, (1,)),
                 "w_ih": bk.matmul(fx, bk.reshape(x, (T * B, I)), trans_a=True),
                 "w_hh": bk.matmul(fh, bk.reshape(hp, (T * B, H)), trans_a=True),
                 "b_ih": bk.reduce("sum", fx, (0,), False),
                 "b_hh": bk.reduce("sum", fh, (0,), False)}
        if mode == "LSTM":
            grads["c0"] = bk.getitem(state, (0,))
        return grads


def _or(a: Any, b: Any) -> Any:
    return a if b is None else b


def _groups(n: int, wg: int = 64) -> tuple[int, int, int]:
    g = max(1, -(-n // wg))
    return (g, 1, 1) if g <= 65535 else (65535, -(-g // 65535), 1)


_NAMES = ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh")


class RecurrentScan(Function):
    """The fused op: see the module docstring. Arguments that are None (c0 outside LSTM,
    absent biases) get no gradient slot, as autograd expects."""

    def forward(self, x, h0, c0, w_ih, w_hh, b_ih, b_hh, mode: str = "LSTM",
                reverse: bool = False):
        raw = (x, h0, c0, w_ih, w_hh, b_ih, b_hh)
        self.mode, self.reverse = mode, reverse
        if h0 is None:  # zero initial states are made here, so tracing sees no constant
            h0 = self.b.full((x.shape[1], w_hh.shape[1]), 0.0, x.dtype)
        if c0 is None and mode == "LSTM":
            c0 = self.b.full((x.shape[1], w_hh.shape[1]), 0.0, x.dtype)
        self.present = [n for n, a in zip(_NAMES, raw) if a is not None]
        self.args = (x, h0, c0, w_ih, w_hh)
        if GpuScan.available(self.b):
            self.gpu = True
            out, self.saved = GpuScan.forward(self.b, mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh,
                                              reverse)
        else:
            self.gpu = False
            out, self.saved = NumpyScan.forward(mode, *_host(x, h0, c0, w_ih, w_hh, b_ih,
                                                              b_hh), reverse)
        self.out = out
        return out

    def backward(self, g):
        x, h0, c0, w_ih, w_hh = self.args
        if self.gpu:
            grads = GpuScan.backward(self.b, self.mode, g, self.out, self.saved, x, h0, c0,
                                     w_ih, w_hh, self.reverse)
        else:
            hx, hh0, hc0, hw_ih, hw_hh = _host(x, h0, c0, w_ih, w_hh)
            grads = NumpyScan.backward(self.mode, np.asarray(g), self.out, self.saved, hx, hh0,
                                       hc0, hw_ih, hw_hh, self.reverse)
        return tuple(grads[n] for n in self.present)


def _host(*arrays: Any) -> list[Any]:
    return [None if a is None else np.asarray(a) for a in arrays]


def scan_arrays(backend: Any, mode: str, reverse: bool, x: Array, h0: Array, c0: Array | None,
                w_ih: Array, w_hh: Array, b_ih: Array | None, b_hh: Array | None,
                g: Array) -> tuple[Array, ...]:
    """The fused scan forward and backward on raw arrays of `backend` (for the GPU kernel
    self-test, which replays the recorded dispatches in a browser): (packed output,
    then the gradients of x, h0, [c0,] w_ih, w_hh, b_ih, b_hh for upstream gradient g)."""
    names = [n for n, a in zip(_NAMES, (x, h0, c0, w_ih, w_hh, b_ih, b_hh)) if a is not None]
    if GpuScan.available(backend):
        out, saved = GpuScan.forward(backend, mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse)
        grads = GpuScan.backward(backend, mode, g, out, saved, x, h0, c0, w_ih, w_hh, reverse)
    else:
        out, saved = NumpyScan.forward(mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse)
        grads = NumpyScan.backward(mode, g, out, saved, x, h0, c0, w_ih, w_hh, reverse)
    return (out, *[grads[n] for n in names])


def has_fast_path(backend: Any) -> bool:
    """Whether the scan runs fused on this backend (else the Tensor-op reference)."""
    return getattr(backend, "name", "") == "cpu" or GpuScan.available(backend)


def recurrent_scan(mode: str, x: Any, h0: Any, c0: Any, w_ih: Any, w_hh: Any, b_ih: Any,
                   b_hh: Any, reverse: bool = False) -> Any:
    """The fused scan where the device has a fast path, else the Tensor-op reference."""
    if not has_fast_path(x.backend):
        from .sequence_functional import scan_reference

        return scan_reference(mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse)
    return RecurrentScan.apply(x, h0, c0 if mode == "LSTM" else None, w_ih, w_hh, b_ih, b_hh,
                               mode=mode, reverse=bool(reverse))

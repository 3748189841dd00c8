"""NumPy fast kernels of the fused recurrent scan (`engine.fused.recurrent`): one layer and
direction of an RNN/LSTM/GRU over a whole sequence. The input projection of every step is
one GEMM, each step one loop iteration, and backpropagation through time the same loop
backwards with each weight gradient one GEMM at the end."""

from __future__ import annotations

import numpy as np

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _sigmoid_(a: np.ndarray) -> np.ndarray:
    """In place, via tanh (never overflows): sigmoid(x) = (1 + tanh(x / 2)) / 2."""
    np.multiply(a, 0.5, out=a)
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a


def prev_index(t: int, T: int, reverse: bool) -> int | None:
    """The time index whose state feeds step t (None: the initial state)."""
    p = t + 1 if reverse else t - 1
    return p if 0 <= p < T else None


def _hprev(out: np.ndarray, h0: np.ndarray, T: int, reverse: bool) -> np.ndarray:
    """(T, B, H): the hidden state each step started from, in time order."""
    if reverse:
        return np.concatenate([out[1:T], h0[None]], 0)
    return np.concatenate([h0[None], out[:T - 1]], 0)


class NumpyRecurrentKernels:
    """recurrent_scan and recurrent_scan_grad: forward keeps what backward needs (gates,
    cells) in `saved`."""

    def recurrent_scan(self, mode: str, x: np.ndarray, h0: np.ndarray,
                       c0: np.ndarray | None, w_ih: np.ndarray, w_hh: np.ndarray,
                       b_ih: np.ndarray | None, b_hh: np.ndarray | None,
                       reverse: bool) -> tuple[np.ndarray, dict]:
        if mode == "LSTM":
            return _lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse)
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

    def recurrent_scan_grad(self, mode: str, g: np.ndarray, out: np.ndarray, saved: dict,
                            x: np.ndarray, h0: np.ndarray, c0: np.ndarray | None,
                            w_ih: np.ndarray, w_hh: np.ndarray,
                            reverse: bool) -> dict[str, np.ndarray]:
        if mode == "LSTM":
            return _lstm_backward(g, out, saved, x, h0, c0, w_ih, w_hh, reverse)
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
                p = prev_index(t, T, reverse)
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


# LSTM: the gates are kept in the order i, f, o, g (the three sigmoids side by side) with
# the sigmoid rows of the weights halved, so ONE tanh activates all four gates:
# sigmoid(z) = (1 + tanh(z / 2)) / 2. Gradients are those of the true pre-activations.

def _lstm_layout(H: int, dt: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    perm = np.r_[0:2 * H, 3 * H:4 * H, 2 * H:3 * H]
    scale = np.ones(4 * H, dt)
    scale[:3 * H] = 0.5
    return perm, scale


def _lstm_forward(x: np.ndarray, h0: np.ndarray, c0: np.ndarray, w_ih: np.ndarray,
                  w_hh: np.ndarray, b_ih: np.ndarray | None, b_hh: np.ndarray | None,
                  reverse: bool) -> tuple[np.ndarray, dict]:
    T, B, I = x.shape
    H = h0.shape[-1]
    dt = x.dtype
    perm, scale = _lstm_layout(H, dt)
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


def _lstm_backward(g: np.ndarray, out: np.ndarray, saved: dict, x: np.ndarray,
                   h0: np.ndarray, c0: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray,
                   reverse: bool) -> dict[str, np.ndarray]:
    T, B, I = x.shape
    H = h0.shape[-1]
    dt = x.dtype
    perm, _ = _lstm_layout(H, dt)
    inv = np.argsort(perm)
    A, C, TC = saved["A"], saved["C"], saved["TC"]
    wp = np.ascontiguousarray(w_hh[perm])
    dG = np.empty((T, B, 4 * H), dt)  # gradients of the pre-activations, i f o g
    dh = np.zeros((B, H), dt)
    dc = np.array(g[T], dtype=dt)
    for t in (range(T) if reverse else range(T - 1, -1, -1)):
        dh += g[t]
        a, tc, d = A[t], TC[t], dG[t]
        p = prev_index(t, T, reverse)
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

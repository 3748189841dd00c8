"""NumPy fast kernels of the fused recurrent scan (`engine.fused.recurrent`): one layer and
direction of an RNN/LSTM/GRU over a whole sequence. The input projection of every step is
one GEMM, each step one loop iteration, and backpropagation through time the same loop
backwards with each weight gradient one GEMM at the end (LSTM: with the batch innermost,
and its GEMMs beside the step loop on the other thread, a run of steps at a time; see the
note above `STEP_RUN`)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from . import cpu_parallel as parallel

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
#
# Batch innermost: the step's GEMM is written transposed, gates^T = W_hh h^T, and the states
# are kept as (H, B). Each gate is then one contiguous (H, B) slab of the (4H, B) block, so
# every elementwise op of a step runs on contiguous memory, NumPy's fast loop. On the column
# slices of a (B, 4H) block the same ops were 2-3x slower (the sigmoids' affine step at
# H=128, B=64: 9 vs 2.5 us), and a step is about twenty of them. The input projection is a
# batched GEMM per run of steps with the biases folded in as an input row of ones; the
# weight gradients are one GEMM per run of steps over the pre-activation gradients of its
# steps (kept (T, 4H, B), one transposing copy to (4H, steps*B)), added in run order.
#
# The step loop beside its GEMMs (`_Overlap`). The loop itself is a serial chain: each step
# needs the last one's state, and its ~100 us GEMM and ~15 short passes cannot be split
# over threads (a hand-off of the GIL costs ~15-60 us here; see cpu_parallel). But the
# input projection and the weight gradients (288 MFLOP at H=128, T=28, B=64: a fifth of a
# training step) need the loop only run by run. So forward and backward are each ONE pool
# region: part 0 is the loop, the other parts are per run of STEP_RUN steps: the projection
# of the run's inputs (done by whichever thread claims it first: the loop itself when it
# gets there before another thread) and, behind the loop, the run's weight-gradient GEMM,
# input gradient and output copy. The other thread does these while the loop runs, so the
# GEMMs leave the critical path, and the loop thread keeps the GIL to itself (a GEMM runs
# without it). Results are the same on any thread count: the runs are cut from T alone.

STEP_RUN = 4  # steps per run of the overlap (7 runs at T=28: the last run's GEMMs, the
# part that cannot overlap the loop, are ~0.6 ms)
OVERLAP_GRAIN = 1 << 21  # multiply-adds a run's weight-gradient GEMM needs before the
# overlap runs on the pool (below: the same parts, serially; a region costs two wake-ups)


def _runs(T: int, backwards: bool) -> list[range]:
    """The steps in runs of STEP_RUN, in the order a loop over t (upwards, or downwards
    when `backwards`) reaches them; each run is a range of time indices, ascending."""
    edges = list(range(0, T, STEP_RUN)) + [T]
    runs = [range(a, b) for a, b in zip(edges, edges[1:])]
    return runs[::-1] if backwards else runs


def _cut(r: range) -> slice:
    """A run as a slice: a view to write into (a range would index a copy)."""
    return slice(r.start, r.stop)


class _Overlap:
    """A step loop over runs and each run's work before and after it, as the parts of one
    pool region (see the note above). `step(k)` runs the loop's steps of run k;
    `before(k)` must be done before them (whoever claims it first does it);
    `after(k, wait)` calls `wait()` when it needs the loop past run k."""

    def __init__(self, n: int, step: Callable[[int], None],
                 before: Callable[[int], None] | None,
                 after: Callable[[int, Callable[[], None]], None]) -> None:
        self.n, self.step, self.before, self.after = n, step, before, after
        self.lock = threading.Lock()
        self.claimed = [False] * n
        self.ready = [threading.Event() for _ in range(n)]  # before(k) done
        self.passed = [threading.Event() for _ in range(n)]  # the loop is past run k
        self.failed = False

    def _claim(self, k: int) -> bool:
        with self.lock:
            mine, self.claimed[k] = not self.claimed[k], True
        if mine:
            try:
                self.before(k)
            except BaseException:
                self.failed = True
                raise
            finally:
                self.ready[k].set()
        return mine

    def _loop(self) -> None:
        try:
            for k in range(self.n):
                if self.before is not None and not self._claim(k):
                    self.ready[k].wait()
                    if self.failed:
                        raise RuntimeError("recurrent scan: a run's input part failed")
                self.step(k)
                self.passed[k].set()
        except BaseException:
            self.failed = True
            raise
        finally:
            for e in self.passed:  # never leave a waiting part behind
                e.set()

    def _after(self, k: int) -> None:
        def wait() -> None:
            self.passed[k].wait()
            if self.failed:
                raise RuntimeError("recurrent scan: the step loop failed")
        self.after(k, wait)

    def run(self, pooled: bool) -> None:
        parts: list[Callable[[], object]] = [self._loop]
        if self.before is not None:
            parts += [lambda k=k: self._claim(k) for k in range(1, self.n)]
        parts += [lambda k=k: self._after(k) for k in range(self.n)]
        if pooled:
            parallel.run(len(parts), lambda i, slot: parts[i]())
        else:  # the same parts in the same order, serially
            for p in parts:
                p()


def _lstm_layout(H: int, dt: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    perm = np.r_[0:2 * H, 3 * H:4 * H, 2 * H:3 * H]
    scale = np.ones(4 * H, dt)
    scale[:3 * H] = 0.5
    return perm, scale


def _pooled(T: int, B: int, H: int, I: int) -> bool:
    """Whether the overlap pays for a region: a run's weight-gradient GEMM is long."""
    return 4 * H * min(T, STEP_RUN) * B * (H + I + 1) >= OVERLAP_GRAIN


def _lstm_forward(x: np.ndarray, h0: np.ndarray, c0: np.ndarray, w_ih: np.ndarray,
                  w_hh: np.ndarray, b_ih: np.ndarray | None, b_hh: np.ndarray | None,
                  reverse: bool) -> tuple[np.ndarray, dict]:
    T, B, I = x.shape
    H = h0.shape[-1]
    dt = x.dtype
    perm, scale = _lstm_layout(H, dt)
    w_x = np.zeros((4 * H, I + 1), dt)  # [W_ih | b_ih + b_hh], permuted and halved
    w_x[:, :I] = w_ih[perm]
    for b in (b_ih, b_hh):
        if b is not None:
            w_x[:, I] += b[perm]
    w_x *= scale[:, None]
    xT = np.empty((T, I + 1, B), dt)
    A = np.empty((T, 4 * H, B), dt)  # every step's input part, then its activations
    w_h = np.ascontiguousarray(w_hh[perm] * scale[:, None])
    C = np.empty((T, H, B), dt)  # cells
    TC = np.empty((T, H, B), dt)  # tanh of the cells
    HS = np.empty((T, H, B), dt)  # hidden states
    out = np.empty((T + 1, B, H), dt)
    gh, ig = np.empty((4 * H, B), dt), np.empty((H, B), dt)
    state = [np.ascontiguousarray(h0.T), np.ascontiguousarray(c0.T)]
    skip = [not state[0].any()]  # a zero initial state (the usual one): no first GEMM
    runs = _runs(T, reverse)

    def project(k: int) -> None:  # the input part of a run's steps, biases included
        r = _cut(runs[k])
        xT[r, :I] = x[r].transpose(0, 2, 1)
        xT[r, I] = 1.0
        np.matmul(w_x, xT[r], out=A[r])

    def step(k: int) -> None:
        h, c = state
        for t in (reversed(runs[k]) if reverse else runs[k]):
            a = A[t]
            if not skip[0]:
                np.matmul(w_h, h, out=gh)
                a += gh
            skip[0] = False
            np.tanh(a, out=a)
            sig = a[:3 * H]
            sig *= 0.5
            sig += 0.5
            cn = C[t]
            np.multiply(a[H:2 * H], c, out=cn)  # c' = f * c + i * g
            np.multiply(a[:H], a[3 * H:], out=ig)
            cn += ig
            np.tanh(cn, out=TC[t])
            h = HS[t]
            np.multiply(a[2 * H:3 * H], TC[t], out=h)  # h' = o * tanh(c')
            c = cn
        state[:] = h, c

    def after(k: int, wait: Callable[[], None]) -> None:
        wait()
        r = _cut(runs[k])
        out[r] = HS[r].transpose(0, 2, 1)

    _Overlap(len(runs), step, project, after).run(_pooled(T, B, H, I))
    out[T] = state[1].T
    return out, {"A": A, "C": C, "TC": TC}


def _lstm_backward(g: np.ndarray, out: np.ndarray, saved: dict, x: np.ndarray,
                   h0: np.ndarray, c0: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray,
                   reverse: bool) -> dict[str, np.ndarray]:
    T, B, I = x.shape
    H = h0.shape[-1]
    K = H + I + 1
    dt = x.dtype
    A, C, TC = saved["A"], saved["C"], saved["TC"]
    w_hT = np.ascontiguousarray(w_hh.T)  # (H, 4H), true (unhalved) weights, torch's order
    live = g[:T].reshape(T, -1).any(1)  # steps with an upstream gradient (often just one)
    # D[t]: the gradients of the pre-activations in torch's gate order i f g o (A holds
    # i f o g), then P = o * (1 - tanh(c)^2), what dh adds to dc. Why this order: the
    # rows a step scales by dc (i f g) and those it scales by dh (o P) are each one
    # block, so a step is five calls
    D = np.empty((T, 5 * H, B), dt)
    DC, DH = D[:, :3 * H].reshape(T, 3, H, B), D[:, 3 * H:].reshape(T, 2, H, B)  # views
    dh = np.zeros((H, B), dt)
    dc = np.array(g[T].T, dtype=dt, order="C")
    c0T = np.ascontiguousarray(c0.T)
    needs = saved.get("needs")  # argument name -> wants a gradient (absent: every one)
    want_h0 = needs is None or needs.get("h0", False)
    want_x = needs is None or needs.get("x", False)  # the input layer's x wants none
    first = T - 1 if reverse else 0  # the last step backwards: its dh is h0's gradient
    runs = _runs(T, not reverse)  # backwards through time: forward's order reversed

    # Each gate's gradient is (dc or dh) times a factor made of forward values only: its
    # activation's derivative (s (1 - s) for the sigmoids, 1 - g^2 for the candidate) times
    # what it multiplied (i: g, f: c_prev, o: tanh(c), g: i). `factors` writes them into D
    # ahead of the loop (on the other thread, a run at a time), so a step of the loop is
    # five calls, not seventeen, and D[t] is then scaled in place.
    def factors(k: int) -> None:
        r = _cut(runs[k])
        a, q = A[r], D[r]
        for src, dst in ((slice(0, 2 * H), slice(0, 2 * H)),  # i f
                         (slice(2 * H, 3 * H), slice(3 * H, 4 * H))):  # o
            np.multiply(a[:, src], a[:, src], out=q[:, dst])
            np.subtract(a[:, src], q[:, dst], out=q[:, dst])
        cand, gq = a[:, 3 * H:], q[:, 2 * H:3 * H]
        np.multiply(cand, cand, out=gq)
        np.subtract(1.0, gq, out=gq)
        q[:, :H] *= cand
        for t in runs[k]:
            p = prev_index(t, T, reverse)
            D[t, H:2 * H] *= c0T if p is None else C[p]
        gq *= a[:, :H]
        q[:, 3 * H:4 * H] *= TC[r]
        pr = q[:, 4 * H:]
        np.multiply(TC[r], TC[r], out=pr)
        np.subtract(1.0, pr, out=pr)
        pr *= a[:, 2 * H:3 * H]

    def step(k: int) -> None:
        nonlocal dh, dc  # in-place updates (the same arrays)
        for t in (runs[k] if reverse else reversed(runs[k])):
            if live[t]:
                dh += g[t].T
            e, by_dh, by_dc = D[t], DH[t], DC[t]
            by_dh *= dh  # o and P
            dc += e[4 * H:]  # dc += dh * o * (1 - tanh(c)^2)
            by_dc *= dc  # i f g
            dc *= A[t, H:2 * H]
            if t != first or want_h0:
                np.matmul(w_hT, e[:4 * H], out=dh)

    # A run's weight gradients in ONE GEMM: (4H, steps*B) @ [h_prev | x | 1], the ones
    # column giving the bias gradient. (One transposing copy of D per run; writing each
    # step into a (4H, T, B) array instead cost 0.9 ms of scattered stores.)
    partial: list[np.ndarray | None] = [None] * len(runs)
    w_x = w_ih
    dx = np.empty((T, B, I), dt) if want_x else None

    def after(k: int, wait: Callable[[], None]) -> None:
        r = _cut(runs[k])
        n = r.stop - r.start
        Z = np.empty((n, B, K), dt)  # what the run's steps read: [h_prev | x | 1]
        for j, t in enumerate(runs[k]):
            p = prev_index(t, T, reverse)
            Z[j, :, :H] = h0 if p is None else out[p]
        Z[:, :, H:H + I] = x[r]
        Z[:, :, H + I] = 1.0
        f = np.empty((4 * H, n, B), dt)
        wait()
        f[...] = D[r, :4 * H].transpose(1, 0, 2)
        fm = f.reshape(4 * H, n * B)
        partial[k] = fm @ Z.reshape(n * B, K)
        if dx is not None:
            np.matmul(fm.T, w_x, out=dx[r].reshape(n * B, I))

    _Overlap(len(runs), step, factors, after).run(_pooled(T, B, H, I))
    dw = parallel.total(partial)  # in run order: the same on any thread count
    grads = {"h0": dh.T.copy(), "c0": dc.T.copy(), "w_ih": dw[:, H:H + I],
             "w_hh": dw[:, :H], "b_ih": dw[:, H + I], "b_hh": dw[:, H + I].copy()}
    if dx is not None:
        grads["x"] = dx
    return grads

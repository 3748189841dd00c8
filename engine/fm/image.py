"""A damaged image as factorization-machine data: which pixel, where its neighbours are, what
they show.

Every observed pixel value is a training row and every missing one a row to predict. A
row (pixel p, channel c) has two sides:
- context (one-hot): the colour channel c;
- neighbourhood (real-valued): J = (2R+1)^2 cells of `cell` x `cell` pixels around p
  (cell (0, 0) holds p; p itself never counts), each the sum of its observed pixels minus
  a smooth estimate at p, divided by the expected number observed: "the cell to the
  upper left is brighter than here".
The smooth estimate ("base") is a normalised Gaussian average of the observed pixels
around p, *without p*. So a row never contains its own target, and observed and missing
pixels have rows of the same kind (under random loss, the same distribution): the FM
learns from observed pixels exactly the task it then does on missing ones.

The FM (engine.fm.FactorizationMachine, interactions="cross") predicts value - base:

    y = w0 + w_c + sum_j x_j (w_j + <v_j, v_c>)

w_j is an interpolation filter learned from this image; <v_j, v_c> bends it per channel
through k factors (a low-rank filter bank). It is fitted by autograd (Adam) on Tensors,
through the fused fm_pairwise kernel, on the CPU or the GPU. Why a learned filter: it
adapts to the image's own texture (brush strokes, fur), where a fixed smoothness prior
(biharmonic) blurs. A second FM (residual_values, fit_residual_fm), learned on observed
pixels held out of both, corrects the smooth fill by the first FM where the neighbourhood
is observed (engine.inpaint).
NumPy only (runs in Pyodide).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .model import FactorizationMachine

CHANNELS = ("R", "G", "B")


def cell_size(missing: float) -> int:
    """Cells grow with the loss so that about one pixel per cell is observed:
    1 at <= ~65% missing, 2 at 80%, 4 at 95%."""
    return max(1, int(round(1.0 / np.sqrt(max(1.0 - missing, 1e-3)) - 0.2)))


def _gauss_sum(a: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian sum over the two image axes (zero outside the image)."""
    r = int(np.ceil(2.5 * sigma))
    k = np.exp(-np.arange(-r, r + 1) ** 2 / (2.0 * sigma * sigma))
    out = a
    for axis in (0, 1):
        n = out.shape[axis]
        pad = [(0, 0)] * out.ndim
        pad[axis] = (r, r)
        p = np.pad(out, pad)
        acc = np.zeros_like(out)
        for i, w in enumerate(k):
            sl = [slice(None)] * out.ndim
            sl[axis] = slice(i, i + n)
            acc += w * p[tuple(sl)]
        out = acc
    return out


def _box_sums(a: np.ndarray, c: int) -> np.ndarray:
    """Sum over the c x c cell at each pixel (rows y - c//2 .. y - c//2 + c - 1)."""
    if c == 1:
        return a.copy()
    h, w = a.shape[:2]
    cs = np.zeros((h + 1, w + 1) + a.shape[2:])
    cs[1:, 1:] = np.cumsum(np.cumsum(a, 0), 1)
    lo = c // 2
    y0, y1 = np.clip(np.arange(h) - lo, 0, h), np.clip(np.arange(h) - lo + c, 0, h)
    x0, x1 = np.clip(np.arange(w) - lo, 0, w), np.clip(np.arange(w) - lo + c, 0, w)
    return (cs[y1][:, x1] - cs[y0][:, x1] - cs[y1][:, x0] + cs[y0][:, x0])


@dataclass
class PixelFeatures:
    """The rows of one damaged image; build with pixel_features()."""

    base: np.ndarray        # (H, W, C) smooth estimate at each pixel without that pixel
    support: np.ndarray     # (H, W) observed pixels in the neighbourhood / expected
    cell: int
    radius: int
    offsets: np.ndarray     # (J, 2) cell offsets (dy, dx) in cells
    _sy: np.ndarray         # (H + 2P, W + 2P, C) padded cell sums of observed values
    _sm: np.ndarray         # (H + 2P, W + 2P) padded cell counts of observed pixels
    _own: np.ndarray        # (H, W, C) the pixel's own observed value (0 where missing)
    _obs: np.ndarray        # (H, W) observed
    _norm: float

    @property
    def n_context(self) -> int:
        return self._own.shape[2]

    @property
    def n_features(self) -> int:
        return self.n_context + len(self.offsets)

    @property
    def side(self) -> np.ndarray:
        """0 = context (channel), 1 = neighbourhood cell: the FM's two sides."""
        return np.r_[np.zeros(self.n_context), np.ones(len(self.offsets))].astype(np.int8)

    def names(self) -> list[str]:
        ch = CHANNELS if self.n_context == 3 else ("grey",)
        return [f"channel={c}" for c in ch] + [
            f"cell ({dy:+d}, {dx:+d})" for dy, dx in self.offsets.tolist()]

    def values(self, py: np.ndarray, px: np.ndarray, ch: np.ndarray | None = None
               ) -> np.ndarray:
        """(n, C, J) neighbourhood features of pixels (py, px): every channel, or (n, 1, J)
        for one channel ch per pixel."""
        pad = self.radius * self.cell
        if ch is None:
            def pick(a: np.ndarray) -> np.ndarray:
                return a
        else:
            rows, cs = np.arange(len(py))[:, None], np.asarray(ch, np.int64)[:, None]

            def pick(a: np.ndarray) -> np.ndarray:
                return a[rows, cs]
        b = pick(self.base[py, px])                              # (n, C) or (n, 1)
        out = np.empty(b.shape + (len(self.offsets),))
        # flat row gathers by np.take: the same numbers, several times faster than 2-d
        # fancy indexing at every offset
        wp = self._sm.shape[1]
        sy_rows, sm_flat = self._sy.reshape(-1, self._sy.shape[2]), self._sm.reshape(-1)
        at = (py + pad) * wp + (px + pad)
        for j, (dy, dx) in enumerate(self.offsets.tolist()):
            i = at + (dy * self.cell * wp + dx * self.cell)
            sy, sm = pick(np.take(sy_rows, i, axis=0)), np.take(sm_flat, i)
            if dy == 0 and dx == 0:   # the centre cell, without the pixel itself
                sy = sy - pick(self._own[py, px])
                sm = sm - self._obs[py, px]
            out[:, :, j] = (sy - sm[:, None] * b) / self._norm
        return out

    def filtered(self, py: np.ndarray, px: np.ndarray, W: np.ndarray) -> np.ndarray:
        """(n, C) sum_j W[c, j] * values(py, px)[:, c, j]: per-channel filters (C, J)
        applied without building the (n, C, J) values (at 512x512 and 80% loss those
        were ~40 MB per batch; this is ~4x faster)."""
        pad = self.radius * self.cell
        b = self.base[py, px]
        wp = self._sm.shape[1]
        sy_rows, sm_flat = self._sy.reshape(-1, self._sy.shape[2]), self._sm.reshape(-1)
        at = (py + pad) * wp + (px + pad)
        acc_y, acc_m = np.zeros_like(b), np.zeros_like(b)
        for j, (dy, dx) in enumerate(self.offsets.tolist()):
            i = at + (dy * self.cell * wp + dx * self.cell)
            sy, sm = np.take(sy_rows, i, axis=0), np.take(sm_flat, i)
            if dy == 0 and dx == 0:   # the centre cell, without the pixel itself
                sy = sy - self._own[py, px]
                sm = sm - self._obs[py, px]
            acc_y += sy * W[:, j]
            acc_m += sm[:, None] * W[:, j]
        return (acc_y - acc_m * b) / self._norm

    def rows(self, py: np.ndarray, px: np.ndarray, ch: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
        """Padded FM rows (idx, val) of shape (n, 1 + J) for (pixel, channel) triples."""
        py, px, ch = (np.asarray(a, np.int64).reshape(-1) for a in (py, px, ch))
        J = len(self.offsets)
        idx = np.empty((len(py), 1 + J), np.int64)
        idx[:, 0] = ch
        idx[:, 1:] = self.n_context + np.arange(J)
        val = np.empty((len(py), 1 + J))
        val[:, 0] = 1.0
        val[:, 1:] = self.values(py, px, ch)[:, 0]
        return idx, val


def pixel_features(x: np.ndarray, obs: np.ndarray, *, cell: int | None = None,
                   radius: int = 2, fallback: np.ndarray | None = None) -> PixelFeatures:
    """Features of every pixel of image x (H, W, C) in [0, 1] whose observed pixels are
    `obs`. `fallback` (H, W, C) replaces the base where no observed pixel is near (inside
    large holes); default: the mean observed colour."""
    h, w, C = x.shape
    ob = obs.astype(np.float64)
    missing = 1.0 - float(ob.mean())
    c = int(cell) if cell else cell_size(missing)
    y = x * ob[..., None]
    sigma = max(1.0, 0.8 * c)
    k0 = 1.0  # the Gaussian's centre weight: subtracted so a pixel never sees itself
    num = _gauss_sum(y, sigma) - k0 * y
    den = _gauss_sum(ob, sigma) - k0 * ob
    ok = den > 1e-3
    if fallback is None:
        fallback = np.broadcast_to(y.sum((0, 1)) / max(ob.sum(), 1.0), x.shape)
    base = np.where(ok[..., None], num / np.where(ok, den, 1.0)[..., None], fallback)
    pad = radius * c
    sy = np.pad(_box_sums(y, c), ((pad, pad), (pad, pad), (0, 0)))
    sm = np.pad(_box_sums(ob, c), ((pad, pad), (pad, pad)))
    offs = np.array([(dy, dx) for dy in range(-radius, radius + 1)
                     for dx in range(-radius, radius + 1)], np.int64)
    norm = c * c * max(1.0 - missing, 1e-3)
    # observed pixels in the whole neighbourhood (without p) against the expected number
    tot = _box_sums(ob, (2 * radius + 1) * c) - ob
    support = tot / (norm * len(offs))
    return PixelFeatures(base, support, c, radius, offs, sy, sm, y, ob, norm)


def pixel_fm(feats: PixelFeatures, *, k: int = 4, seed: int = 0,
             device: str | None = None) -> FactorizationMachine:
    """The (unfitted) FM for these features: channel x neighbourhood-cell interactions."""
    return FactorizationMachine(feats.n_features, k, interactions="cross", side=feats.side,
                                l2=(0.0, 1e-3, 1e-2), init_std=0.01, seed=seed, device=device)


def training_rows(feats: PixelFeatures, x: np.ndarray, learn: np.ndarray, n_train: int,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(idx, val, target) for a seeded sample of n_train (pixel, channel) values among the
    pixels `learn` (observed ones): target = value - base."""
    h, w, C = x.shape
    pix = np.flatnonzero(learn.reshape(-1))
    if len(pix) == 0:
        raise ValueError("no observed pixel to learn from")
    rng = np.random.default_rng(seed)
    take = rng.choice(len(pix) * C, min(int(n_train), len(pix) * C), replace=False)
    p, ch = pix[take // C], take % C
    py, px = p // w, p % w
    idx, val = feats.rows(py, px, ch)
    return idx, val, x[py, px, ch] - feats.base[py, px, ch]


def fit_pixel_fm(feats: PixelFeatures, x: np.ndarray, learn: np.ndarray, *, k: int = 4,
                 epochs: int = 8, n_train: int = 8_000, lr: float = 0.02,
                 batch_size: int = 1024, seed: int = 0, device: str | None = None,
                 callback: Callable[[int, float], bool | None] | None = None
                 ) -> tuple[FactorizationMachine, list[float]]:
    """Fit the FM by Adam on a sample of the pixels `learn`; returns it and its loss per
    epoch. callback(epoch, loss) may return False to stop (cancel)."""
    fm = pixel_fm(feats, k=k, seed=seed, device=device)
    idx, val, target = training_rows(feats, x, learn, n_train, seed)
    hist = fm.fit(idx, val, target, lr=lr, epochs=epochs, batch_size=batch_size, seed=seed,
                  callback=callback)
    return fm, hist


def channel_filters(fm: FactorizationMachine, n_context: int) -> tuple[np.ndarray, np.ndarray]:
    """The FM read as one filter per channel: (bias (C,), weights (C, J)).

    With one context feature per row (its channel) and only cross pairs, the FM's score
    is exactly  w0 + w_c + sum_j x_j (w_j + <v_j, v_c>): a linear filter per channel."""
    th = fm._theta()
    w, V = th[:, 0], th[:, 1:]
    bias = float(fm.w0.numpy()[0]) + w[:n_context]
    return bias, w[None, n_context:] + V[:n_context] @ V[n_context:].T


def predict_pixel_fm(fm: FactorizationMachine, feats: PixelFeatures, py: np.ndarray,
                     px: np.ndarray, batch: int = 65_536) -> np.ndarray:
    """(n, C) FM estimates (base + predicted residual) at pixels (py, px), through the
    channel filters (the FM's score, computed for all channels of a pixel at once)."""
    py, px = np.asarray(py, np.int64), np.asarray(px, np.int64)
    bias, W = channel_filters(fm, feats.n_context)
    out = np.empty((len(py), feats.n_context))
    for s in range(0, len(py), batch):
        sl = slice(s, s + batch)
        out[sl] = feats.filtered(py[sl], px[sl], W) + bias
    return out + feats.base[py, px]


def explain_pixel(fm: FactorizationMachine, feats: PixelFeatures, y: int, x: int
                  ) -> list[dict]:
    """Per channel: the base, each neighbourhood cell's value and its learned weight
    w_j + <v_j, v_c> (what the FM multiplies it by), and the prediction: what the page
    shows for the pixel under the mouse."""
    bias, W = channel_filters(fm, feats.n_context)
    vals = feats.values(np.array([y]), np.array([x]))[0]      # (C, J)
    names = feats.names()
    return [{"channel": names[c].split("=")[1], "base": float(feats.base[y, x, c]),
             "bias": float(bias[c]), "values": vals[c].tolist(), "weights": W[c].tolist(),
             "prediction": float(feats.base[y, x, c] + bias[c] + vals[c] @ W[c])}
            for c in range(feats.n_context)]


# -- the second stage: an FM on the residuals of the smooth fill -------------------------

_RESIDUAL = ["FM - smooth", "non-local - smooth"] + [
    f"smooth ({dy:+d}, {dx:+d}) - smooth" for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
RESIDUAL_NAMES = _RESIDUAL + [f"{n} x support" for n in _RESIDUAL]


def residual_values(smooth: np.ndarray, fm_img: np.ndarray, support: np.ndarray,
                    py: np.ndarray, px: np.ndarray, nonlocal_img: np.ndarray | None = None
                    ) -> np.ndarray:
    """(n, C, 20) second-stage features of pixels (py, px): the first FM's and the
    non-local patch groups' (engine.fm.groups; 0 if None) corrections to the smooth fill
    and the smooth fill's 8 neighbours relative to its value (its local shape: what a
    sharpening filter needs), each also times the neighbourhood's support (so the
    weights can differ where fewer pixels are observed)."""
    Bp = np.pad(smooth, ((1, 1), (1, 1), (0, 0)), mode="edge")
    b = smooth[py, px]
    cols = [fm_img[py, px] - b,
            (nonlocal_img[py, px] - b) if nonlocal_img is not None else np.zeros_like(b)]
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                cols.append(Bp[py + 1 + dy, px + 1 + dx] - b)
    X = np.stack(cols, -1)
    return np.concatenate([X, X * support[py, px][:, None, None]], -1)


_CROSS = [0, 1, 10, 11]   # FM and groups corrections, each plain and times support


def cross_channel(values: np.ndarray) -> np.ndarray:
    """(n, C, F + 4 (C - 1)) residual_values with, for each channel, the other channels'
    FM and groups corrections (plain and times support) appended, the next channel
    first. The mask removes a pixel's channels together, so their corrections err
    together: a channel's filter can use the others' to cancel part of its own error
    (+0.01 dB at 80% loss on starry_night and baboon, +0.05 on fruits)."""
    C = values.shape[1]
    extra = [np.roll(values[:, :, _CROSS], -s, axis=1) for s in range(1, C)]
    return np.concatenate([values] + extra, -1)


def set_groups(values: np.ndarray, corr: np.ndarray, support: np.ndarray) -> np.ndarray:
    """`values` (residual_values, or cross_channel of it) with the groups' correction
    `corr` (n, C) at pixels of support `support` (n,) written in place: its plain and
    support-scaled columns and cross_channel's copies of them, the same numbers as
    rebuilding the features (a new group round changes only these; rebuilding all of
    them at every round cost ~1 s at 512x512)."""
    F, C = 2 * len(_RESIDUAL), values.shape[1]
    scaled = corr * support[:, None]
    values[..., 1], values[..., len(_RESIDUAL) + 1] = corr, scaled
    if values.shape[-1] > F:
        for s in range(1, C):
            j = F + len(_CROSS) * (s - 1)
            values[..., j + 1] = np.roll(corr, -s, axis=1)
            values[..., j + 3] = np.roll(scaled, -s, axis=1)
    return values


def fit_residual_fm(values: np.ndarray, target: np.ndarray, *, k: int = 4, ridge: float = 1e-3,
                    device: str | None = None) -> FactorizationMachine:
    """The second FM: channel x feature interactions (like pixel_fm), fitted on held-out
    pixels, whose smooth fill and first-FM estimate never saw them: `values` (n, C, F)
    from residual_values, `target` (n, C) = true value - smooth fill.

    Fitted exactly: with one context feature (the channel) per row its score is linear in
    the per-channel filter w_c + w + V_c V^T (channel_filters), so the least-squares
    optimum (ridge `ridge` x rows x mean feature variance) is one small solve per channel;
    the filters are written back as the FM's w0, w and factors V (mean filter, then an SVD
    of the per-channel deviations, rank <= C - 1 <= k). Autograd on ~10k rows reaches
    the same optimum only after hundreds of Adam steps, at several times the cost."""
    n, C, J = values.shape
    if k < C - 1:
        raise ValueError(f"k must be at least {C - 1} for {C} channels, got {k}")
    filt = np.empty((C, J + 1))
    for c in range(C):
        A = np.concatenate([np.ones((n, 1)), values[:, c]], 1)
        reg = ridge * n * max(float(A[:, 1:].var(0).mean()), 1e-12) * np.eye(J + 1)
        reg[0, 0] = 0.0                      # the channel's bias is not penalised
        filt[c] = np.linalg.solve(A.T @ A + reg, A.T @ target[:, c])
    bias, W = filt[:, 0], filt[:, 1:]
    mean = W.mean(0)
    U, S, Vt = np.linalg.svd(W - mean, full_matrices=False)      # (C, C), (C,), (C, J)
    r = np.sqrt(S)
    V = np.zeros((C + J, k))
    V[:C, :len(S)] = U * r
    V[C:, :len(S)] = Vt.T * r
    side = np.r_[np.zeros(C), np.ones(J)].astype(np.int8)
    fm = FactorizationMachine(C + J, k, interactions="cross", side=side, device=device,
                              dtype="float64")
    fm.set_parameters(float(bias.mean()), np.r_[bias - bias.mean(), mean], V)
    return fm


def predict_residual_fm(fm: FactorizationMachine, values: np.ndarray) -> np.ndarray:
    """(n, C) corrections to the smooth fill (the FM's score as per-channel filters)."""
    bias, W = channel_filters(fm, values.shape[1])
    return np.einsum("ncj,cj->nc", values, W) + bias


def predict_residual_at(fm: FactorizationMachine, smooth: np.ndarray, fm_img: np.ndarray,
                        support: np.ndarray, py: np.ndarray, px: np.ndarray,
                        nonlocal_img: np.ndarray | None = None, cross: bool = False
                        ) -> np.ndarray:
    """predict_residual_fm of residual_values (cross_channel'd if `cross`) at pixels
    (py, px), without building those (n, C, F) rows: each feature is gathered as one
    (n, C) column and multiplied into the channel filters at once. The same numbers up
    to rounding order; at 512x512 and 80% loss the rows were ~100-160 MB and building
    and multiplying them cost ~2 s per prediction."""
    C = smooth.shape[2]
    bias, W = channel_filters(fm, C)
    F = len(RESIDUAL_NAMES)
    if W.shape[1] != (F + len(_CROSS) * (C - 1) if cross else F):
        raise ValueError(f"the FM has {W.shape[1]} features, not those of "
                         f"residual_values{' + cross_channel' if cross else ''}")
    h, w = smooth.shape[:2]
    flat = np.asarray(py, np.int64) * w + np.asarray(px, np.int64)
    b = np.take(smooth.reshape(-1, C), flat, axis=0)
    s = np.take(support.reshape(-1), flat)[:, None]
    half = len(_RESIDUAL)
    out = np.broadcast_to(bias, b.shape).copy()

    def add(col: np.ndarray, j: int) -> None:   # feature j and its "x support" twin
        out[...] += col * (W[:, j] + s * W[:, j + half])

    fmc = np.take(fm_img.reshape(-1, C), flat, axis=0) - b
    nlc = (np.take(nonlocal_img.reshape(-1, C), flat, axis=0) - b
           if nonlocal_img is not None else np.zeros_like(b))
    add(fmc, 0)
    add(nlc, 1)
    Bp = np.pad(smooth, ((1, 1), (1, 1), (0, 0)), mode="edge").reshape(-1, C)
    at = (np.asarray(py, np.int64) + 1) * (w + 2) + np.asarray(px, np.int64) + 1
    j = 2
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                add(np.take(Bp, at + dy * (w + 2) + dx, axis=0) - b, j)
                j += 1
    if cross:
        for k in range(1, C):
            o = 2 * half + len(_CROSS) * (k - 1)   # cross_channel's columns for shift k
            for col, m in ((np.roll(fmc, -k, axis=1), 0), (np.roll(nlc, -k, axis=1), 1)):
                out += col * (W[:, o + m] + s * W[:, o + m + 2])
    return out

"""Restore images with missing pixels by a factorization machine, helped by a smoothness prior.

Why an FM: the damaged image becomes sparse "which pixel, where, what context" data
(engine.fm.image): every observed pixel is a training row whose features are its
neighbourhood cells (never the pixel itself), so an FM learns from the observed pixels an
interpolation filter bank for *this* image's texture and predicts each missing pixel from
its own neighbourhood. Where the neighbourhood is mostly missing (strokes, scratches,
holes) the FM has little to go on, so a biharmonic (thin-plate) fill, the best simple
smoothness prior, takes over; elsewhere a second FM, learned on 2-10% of the observed
pixels held out of every fit, predicts the smooth fill's residual from the first FM's
correction, the non-local patch groups' low-rank fill (engine.fm.groups: texture seen
elsewhere in the image) and the fill's local shape. NumPy only (runs in Pyodide).

    x = inpaint(image, mask)            # mask: True where a pixel is missing
    r = restore(image, mask)            # the parts: FM alone, biharmonic, loss curve, ...
    mask = random_mask(image.shape[:2], 0.8, seed=0)

Steps: (1) push-pull pyramid fill as a starting point; (2) the biharmonic fill, solved
for the missing pixels with matrix-free preconditioned conjugate gradients (sum of
squared Laplacians, Neumann borders); (3) the FM, fitted by autograd on a seeded sample
of observed pixels, predicts every missing pixel; (3b) similar-patch groups, completed
at low rank, fill the missing pixels from their look-alikes (below 25% observed, starting
from the same fill at half resolution; skipped when nearly all the damage is strokes or
holes); (4) the second FM (fitted exactly by least squares on the
held-out pixels) corrects (2) by (3), (3b) and (2)'s local shape, each channel also by
the other channels' corrections, scaled by how much of the FM's neighbourhood is
observed (0 inside holes: there the result is (2)); (5) from 10% observed on, the groups
are matched again on (4)'s blend and the second FM refitted, then a last group round
from every observed pixel (the held-out ones too), matched on and completed from the
blend, feeds (4)'s correction; the result is the mean of that correction and the
round's fill. With a
fixed `blend` weight, (4) is instead that blend of (2) and (3).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_PIXELS = 4_194_304      # 2048 x 2048: keeps memory and time bounded for uploads
MIN_SIDE = 8


class InpaintError(ValueError):
    """The image or mask cannot be inpainted (shape, mode, size or content)."""


# -- input checks ------------------------------------------------------------------------

def _as_image(image: np.ndarray, max_pixels: int) -> tuple[np.ndarray, np.dtype, bool]:
    """Float (H, W, C) in [0, 1], the input dtype, and whether it was 2-d (grey)."""
    a = np.asarray(image)
    if a.dtype == object or a.dtype.kind not in "uif b":
        raise InpaintError(f"image must be a numeric array, not dtype {a.dtype}")
    grey = a.ndim == 2
    if grey:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3):
        raise InpaintError(f"image must be (H, W) grey or (H, W, 3) RGB, got shape {a.shape}; "
                           "convert RGBA or palette images to RGB first")
    h, w = a.shape[:2]
    if h < MIN_SIDE or w < MIN_SIDE:
        raise InpaintError(f"image is {h}x{w}; both sides must be at least {MIN_SIDE} pixels")
    if h * w > max_pixels:
        raise InpaintError(f"image is {h}x{w} = {h * w} pixels, more than the limit of "
                           f"{max_pixels}; downscale it first")
    if a.dtype == np.uint8:
        f = a.astype(np.float64) / 255.0
    elif a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise InpaintError("image contains NaN or infinite values; mark those pixels in "
                               "the mask and set them to 0")
        lo, hi = float(a.min()), float(a.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise InpaintError(f"float images must be in [0, 1], got values in [{lo:.3g}, "
                               f"{hi:.3g}]; divide 8-bit data by 255")
        f = a.astype(np.float64)
    else:
        raise InpaintError(f"image dtype must be uint8 or float, not {a.dtype}")
    return f, a.dtype, grey


def _as_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[2] in (1, 3):  # per-channel masks: missing in any channel
        m = m.any(axis=2) if m.dtype == bool else (m != 0).any(axis=2)
    if m.shape != shape:
        raise InpaintError(f"mask shape {m.shape} does not match the image's {shape}; "
                           "the mask must be (H, W) with True where pixels are missing")
    m = m.astype(bool)
    if m.all():
        raise InpaintError("every pixel is missing: nothing to restore from")
    return m


# -- masks -------------------------------------------------------------------------------

def _shape2(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) < 2 or shape[0] < 1 or shape[1] < 1:
        raise InpaintError(f"mask shape must be (H, W, ...) with positive sides, got {shape}")
    return int(shape[0]), int(shape[1])


def random_mask(shape: tuple[int, ...], fraction: float, seed: int = 0) -> np.ndarray:
    """Each pixel missing independently with probability `fraction` (True = missing)."""
    if not 0.0 <= fraction < 1.0:
        raise InpaintError(f"fraction must be in [0, 1), got {fraction}")
    return np.random.default_rng(seed).random(_shape2(shape)) < fraction


def scratch_mask(shape: tuple[int, ...], n: int = 12, width: int = 3,
                 seed: int = 0) -> np.ndarray:
    """`n` random curved strokes `width` pixels wide, like cracks or scratches."""
    h, w = _shape2(shape)
    rng = np.random.default_rng(seed)
    m = np.zeros((h, w), bool)
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(int(n)):
        y, x = rng.uniform(0, h), rng.uniform(0, w)
        ang = rng.uniform(0, 2 * np.pi)
        for _ in range(int(rng.integers(20, 60))):
            ang += rng.normal(0, 0.25)
            step = max(h, w) / 80
            y2, x2 = y + step * np.sin(ang), x + step * np.cos(ang)
            # thick segment from (y, x) to (y2, x2): pixels within width/2 of it
            y0, y1 = int(max(min(y, y2) - width, 0)), int(min(max(y, y2) + width + 1, h))
            x0, x1 = int(max(min(x, x2) - width, 0)), int(min(max(x, x2) + width + 1, w))
            if y0 < y1 and x0 < x1:
                py, px = yy[y0:y1, x0:x1], xx[y0:y1, x0:x1]
                dy, dx = y2 - y, x2 - x
                t = np.clip(((py - y) * dy + (px - x) * dx) / (dy * dy + dx * dx + 1e-12), 0, 1)
                d2 = (py - y - t * dy) ** 2 + (px - x - t * dx) ** 2
                m[y0:y1, x0:x1] |= d2 <= (width / 2.0) ** 2
            y, x = y2, x2
            if not (0 <= y < h and 0 <= x < w):
                break
    return m


def block_mask(shape: tuple[int, ...], n: int = 4, size: int = 24, seed: int = 0) -> np.ndarray:
    """`n` square holes of side `size` at random places."""
    h, w = _shape2(shape)
    rng = np.random.default_rng(seed)
    m = np.zeros((h, w), bool)
    s = int(min(size, h, w))
    for _ in range(int(n)):
        y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        m[y:y + s, x:x + s] = True
    return m


def apply_mask(image: np.ndarray, mask: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """A copy of `image` with the missing pixels set to `fill` (what a viewer shows)."""
    out = np.array(image, copy=True)
    out[np.asarray(mask, bool)] = fill
    return out


# -- step 1: push-pull pyramid fill ------------------------------------------------------

def _push_pull(x: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Fill holes from a mask-weighted image pyramid (coarse values flow into holes)."""
    h, w, c = x.shape
    wgt = obs.astype(np.float64)
    if h <= 1 or w <= 1 or wgt.all():
        return np.where(obs[..., None], x, (x * wgt[..., None]).sum((0, 1))
                        / max(wgt.sum(), 1e-12))
    H2, W2 = (h + 1) // 2, (w + 1) // 2
    pad = ((0, 2 * H2 - h), (0, 2 * W2 - w))
    xw = np.pad(x * wgt[..., None], pad + ((0, 0),), mode="edge")
    ww = np.pad(wgt, pad, mode="edge")
    s = xw.reshape(H2, 2, W2, 2, c).sum((1, 3))
    sw = ww.reshape(H2, 2, W2, 2).sum((1, 3))
    coarse_obs = sw > 0
    coarse = np.where(coarse_obs[..., None], s / np.maximum(sw, 1e-12)[..., None], 0.0)
    coarse = _push_pull(coarse, coarse_obs)
    up = np.repeat(np.repeat(coarse, 2, 0), 2, 1)[:h, :w]
    return np.where(obs[..., None], x, up)


# -- step 2: biharmonic fill by conjugate gradients --------------------------------------

def _lap(z: np.ndarray) -> np.ndarray:
    """5-point Laplacian with Neumann (edge-replicate) borders; symmetric as a matrix."""
    p = np.pad(z, ((1, 1), (1, 1), (0, 0)), mode="edge")
    out = p[:-2, 1:-1] + p[2:, 1:-1]
    out += p[1:-1, :-2]
    out += p[1:-1, 2:]
    out -= 4.0 * z
    return out


def _biharmonic(x0: np.ndarray, obs: np.ndarray, iters: int = 80, tol: float = 1e-5
                ) -> np.ndarray:
    """Minimise ||Laplacian(x)||^2 over the missing pixels (all channels at once).

    In float32 (half the memory traffic of float64; the fill needs ~1e-4 accuracy, far
    above float32's rounding), returned as float64."""
    x0 = np.asarray(x0, np.float32)
    h, w, c = x0.shape
    miss = ~obs
    mm = miss[..., None].astype(np.float32)
    # diag of L^T L = squared stencil weights per pixel: 20 inside, 12 on edges, 6 corners
    nb = np.full((h, w), 4.0)
    nb[0, :] -= 1
    nb[-1, :] -= 1
    nb[:, 0] -= 1
    nb[:, -1] -= 1
    dinv = mm / (nb * nb + nb)[..., None].astype(np.float32)   # Jacobi, on the unknowns

    def A(v: np.ndarray) -> np.ndarray:
        return _lap(_lap(v * mm)) * mm

    known = x0 * (1.0 - mm)
    b = -_lap(_lap(known)) * mm
    x = x0 * mm
    r = b - A(x)
    z = r * dinv
    p = z.copy()
    rz = float((r * z).sum())
    bn = float(np.sqrt((b * b).sum())) + 1e-30
    for _ in range(iters):
        Ap = A(p)
        a = rz / max(float((p * Ap).sum()), 1e-30)
        x += a * p
        r -= a * Ap
        if np.sqrt((r * r).sum()) < tol * bn:
            break
        z = r * dinv
        rz_new = float((r * z).sum())
        p = z + (rz_new / max(rz, 1e-30)) * p
        rz = rz_new
    return (known + x * mm).astype(np.float64)


# -- steps 3 and 4: the factorization machine and the blend ----------------------------

METHODS = ("fm", "fm-only", "biharmonic")


@dataclass
class Restoration:
    """Everything one restoration computed (float (H, W, C) images in [0, 1])."""

    result: np.ndarray          # what inpaint() returns (method's output)
    fm: np.ndarray | None       # the FM alone (observed pixels kept)
    biharmonic: np.ndarray      # the smoothness prior alone
    weight: np.ndarray | None   # (H, W) the FMs' share (0 inside holes)
    history: list[float] = field(default_factory=list)   # FM training loss per epoch
    model: Any = None           # the fitted engine.fm.FactorizationMachine
    features: Any = None        # engine.fm.image.PixelFeatures (for explanations)
    seconds: dict[str, float] = field(default_factory=dict)
    cancelled: bool = False
    blend: float | None = None  # the FM's least-squares weight on the held-out pixels
    second: Any = None          # the second FM (on the smooth fill's residuals), if fitted
    nonlocal_fill: np.ndarray | None = None   # the last group round's low-rank fill, if computed
    # (from 10% observed on: matched on and completed from the blend, so it carries the FMs)


def restore_steps(image: np.ndarray, mask: np.ndarray, *, method: str = "fm",
                  iters: int = 80, blend: float | str = "auto", seed: int = 0, k: int = 4,
                  epochs: int = 8, n_train: int = 8_000, device: str | None = None,
                  cancel: Callable[[], bool] | None = None,
                  max_pixels: int = MAX_PIXELS, nonlocal_rounds: int = 3,
                  nonlocal_refine: bool = True, final_stride: int | None = None
                  ) -> Iterator[tuple[str, Any]]:
    """restore() as a generator of events, for a page that shows progress (and, in the
    browser, yields to its event loop in between): ("stage", text), ("epoch", (epoch,
    epochs, loss)) after each FM epoch, and last ("done", Restoration). cancel() is asked
    after each epoch; True stops the fit there and restores with the FM reached.
    final_stride: the reference-patch grid of the last group round (every observed pixel);
    that round runs 4 EM steps from the blend (6 steps: +0.005 dB on baboon at 80% loss,
    at 1.5x its CPU). None: every 5th patch where the groups' rank is at most 4, every
    6th at rank 8 (fruits at 50% loss), where each group costs ~30% more and the 5th
    would put the slowest case past the time budget. Every 5th instead of every 6th:
    baboon at 80% loss +0.03 dB (with the round from the blend: +1.03 / +1.01 over
    biharmonic, seeds 0 / 1), for ~0.6 s more CPU at 512x512."""
    if method not in METHODS:
        raise InpaintError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if not (blend == "auto" or (isinstance(blend, (int, float)) and 0.0 <= blend <= 1.0)):
        raise InpaintError(f"blend must be 'auto' or a weight in [0, 1], not {blend!r}")
    x, _, _ = _as_image(image, max_pixels)
    miss = _as_mask(mask, x.shape[:2])
    obs = ~miss
    x = np.where(obs[..., None], x, 0.0)
    secs: dict[str, float] = {}
    if not miss.any():
        yield "done", Restoration(x, x, x, np.zeros(miss.shape), seconds=secs)
        return
    # a stream of its own: default_rng(seed) is the one random_mask(seed) drew the mask from
    rng = np.random.default_rng((seed, 17))
    # a few observed pixels held out of the fits (validation): the FM's and the smooth
    # fill's errors there train the second FM; they are used again for the final fill
    # (2-10%: at least ~3000 pixels where the loss is high, for the second FM to learn from)
    share = float(np.clip(3000.0 / max(int(obs.sum()), 1), 0.02, 0.10))
    val_px = obs & (rng.random(obs.shape) < share) if method == "fm" else np.zeros_like(obs)
    if val_px.sum() < 50:
        val_px[:] = False
    fit_obs = obs & ~val_px
    yield "stage", "smoothness prior (biharmonic fill)"
    t0 = time.perf_counter()
    smooth_v = _biharmonic(_push_pull(x * fit_obs[..., None], fit_obs), fit_obs, iters=iters)
    smooth = np.clip(_biharmonic(np.where(obs[..., None], x, smooth_v), obs,
                                 iters=max(iters // 4, 10)) if val_px.any() else smooth_v,
                     0.0, 1.0)
    secs["biharmonic"] = time.perf_counter() - t0
    if method == "biharmonic":
        yield "done", Restoration(smooth, None, smooth, None, seconds=secs)
        return
    from .fm.image import (
        cross_channel,
        fit_residual_fm,
        pixel_features,
        pixel_fm,
        predict_pixel_fm,
        predict_residual_at,
        predict_residual_fm,
        residual_values,
        set_groups,
        training_rows,
    )

    yield "stage", "features of every pixel"
    t0 = time.perf_counter()
    feats = pixel_features(x, obs, fallback=smooth)
    model = pixel_fm(feats, k=k, seed=seed, device=device)
    idx, val, target = training_rows(feats, x, fit_obs, n_train, seed)
    hist: list[float] = []
    cancelled = False
    for loss in model.fit_iter(idx, val, target, lr=0.02, epochs=epochs, seed=seed):
        hist.append(loss)
        yield "epoch", (len(hist), epochs, loss)
        if cancel is not None and cancel():
            cancelled = True
            break
    secs["fm fit"] = time.perf_counter() - t0
    yield "stage", "predicting the missing pixels"
    t0 = time.perf_counter()
    py, px = np.nonzero(miss | val_px)
    pred = np.clip(predict_pixel_fm(model, feats, py, px), 0.0, 1.0)
    fm_img = x.copy()
    fm_img[py, px] = pred
    fm_val = fm_img[val_px]
    vy, vx = np.nonzero(val_px)
    # the FM's share falls to 0 where less than half of its neighbourhood is observed
    # as expected: inside strokes, scratches and holes it has little to go on, and the
    # held-out pixels (scattered, fully surrounded) say nothing about such pixels
    gate = np.where(miss, np.clip((feats.support - 0.5) / 0.4, 0.0, 1.0), 0.0)
    nl = None
    if (method == "fm" and val_px.any() and nonlocal_rounds > 0
            and float(gate[miss].mean()) > 0.1):
        # non-local patch groups from the pixels the fits see (held-out ones excluded, so
        # the second FM learns honestly how far to trust them); skipped where nearly all
        # the damage is strokes or holes (gate 0: the correction is not applied there)
        yield "stage", "non-local patch groups (low-rank completion)"
        t1 = time.perf_counter()
        from .fm.groups import nonlocal_fill
        nl, nl_rank = nonlocal_fill(x, fit_obs, smooth_v, rounds=nonlocal_rounds,
                                    coarse=0.25, held=val_px)
        secs["non-local"] = time.perf_counter() - t1
    held = (residual_values(smooth_v, fm_img, feats.support, vy, vx, nl)
            if val_px.any() else None)
    fm_img[val_px] = x[val_px]
    secs["fm predict"] = time.perf_counter() - t0 - secs.get("non-local", 0.0)
    stage2 = None
    if method == "fm-only":
        a = np.where(miss, 1.0, 0.0)
    else:
        auto = blend == "auto"
        if auto:  # least-squares weight of the FM on the held-out pixels (a diagnostic
            # once the second FM replaces the blend)
            e_s, e_f = smooth_v[val_px] - x[val_px], fm_val - x[val_px]
            d = e_s - e_f
            blend = float(np.clip((e_s * d).sum() / max(float((d * d).sum()), 1e-12),
                                  0.0, 1.0)) if val_px.any() else 0.5
        a = float(blend) * gate
    out = a[..., None] * fm_img + (1.0 - a[..., None]) * smooth
    if method == "fm" and held is not None and auto:
        # second FM: the smooth fill's residual from the first FM's correction and the
        # fill's local shape, learned on the held-out pixels (honest: neither the fill
        # nor the first FM saw them), applied where the neighbourhood is observed
        yield "stage", "second FM on the smooth fill's residuals"
        t0 = time.perf_counter()
        # the other channels' corrections only with the groups' (strokes and holes: the
        # FM's alone cost up to 0.02 dB on scratches)
        xc = cross_channel if nl is not None else np.asarray
        stage2 = fit_residual_fm(xc(held), x[vy, vx] - smooth_v[vy, vx],
                                 device=device, ridge=0.1)
        my, mx = np.nonzero(miss)

        def correction() -> np.ndarray:   # the second FM's at the missing pixels
            return predict_residual_at(stage2, smooth, fm_img, feats.support, my, mx, nl,
                                       cross=nl is not None)

        corr = correction()
        out = smooth.copy()
        # its own gate is full from half the expected support on: the second FM sees the
        # support among its features (and at 95% loss the support is noisy: the first
        # FM's gate cost 0.1 dB there); inside holes it is still 0. Ridge 0.1 (x rows x
        # feature variance): +0.01-0.03 dB over 1e-3 on the cases measured
        gate2 = np.clip((feats.support - 0.3) / 0.3, 0.0, 1.0)
        a = np.where(miss, gate2, 0.0)
        out[my, mx] = np.clip(smooth[my, mx] + a[my, mx, None] * corr, 0.0, 1.0)
        secs["second fm"] = time.perf_counter() - t0
        if nl is not None and nonlocal_refine and float(fit_obs.mean()) >= 0.1:
            # the groups re-matched on the blend (FM + groups: better than the groups'
            # own fill from 50 to 80% loss), completed once more from their fill, and the
            # second FM refitted on it: +0.02-0.05 dB at 50 and 80% loss on the three
            # bench images (2 seeds). A full round from the blend (matched and completed
            # from it) lost 0.1-0.2 dB on fruits at 80% and 0.1 dB at 95% loss
            yield "stage", "non-local patch groups re-matched on the blend"
            t0 = time.perf_counter()
            from .fm.groups import regroup
            sup = feats.support
            guide = out.copy()   # the held-out pixels' blend, cross-fitted (2 folds)
            fold = np.arange(len(vy)) % 2 == 1
            tv = x[vy, vx] - smooth_v[vy, vx]
            held = xc(held)   # a new array: set_groups below writes into it
            for f in (fold, ~fold):
                m2 = fit_residual_fm(held[~f], tv[~f], device=device, ridge=0.1)
                c2 = predict_residual_fm(m2, held[f])
                guide[vy[f], vx[f]] = np.clip(smooth_v[vy[f], vx[f]]
                                              + gate2[vy[f], vx[f], None] * c2, 0.0, 1.0)
            nl = regroup(x, fit_obs, guide, nl, rank=nl_rank)
            # only the groups' columns change (set_groups); the held-out pixels' are not
            # recomputed, as fm_img now holds the truth there
            set_groups(held, nl[vy, vx] - smooth_v[vy, vx], sup[vy, vx])
            stage2 = fit_residual_fm(held, tv, device=device, ridge=0.1)
            corr = correction()
            out[my, mx] = np.clip(smooth[my, mx] + a[my, mx, None] * corr, 0.0, 1.0)
            secs["non-local"] += time.perf_counter() - t0
            # the last group round from every observed pixel, the held-out ones too (no
            # fit follows; the second FM keeps the weights it learned where the groups
            # had not seen them), matched on the blend: the groups the fits saw lack
            # 2-10% of the observed pixels. With cross_channel: +0.06-0.13 dB at 50-80%
            # loss on the three bench images (2 seeds). The round is completed from the
            # blend too (one more EM pass of the groups' model from the best estimate)
            # and the result is the mean of the second FM's correction by it and that
            # fill: two estimates of different kinds (a filter learned on held-out
            # pixels, a low-rank model of look-alike patches; alone each is 0.02-0.1 dB
            # below the mean). With every 5th patch, over main's last round from the
            # groups' own fill on every 6th: 50% loss +0.06-0.13 dB, 80% +0.03-0.06 dB
            # (seeds 0 and 1) on the three bench images
            yield "stage", "non-local patch groups from every observed pixel"
            t0 = time.perf_counter()
            if final_stride is None:   # every 5th patch where a group is cheap (rank <= 4)
                final_stride = 5 if nl_rank <= 4 else 6
            nl = regroup(x, obs, out, out, stride=final_stride, rank=nl_rank, iters=4)
            corr = correction()
            out[my, mx] = np.clip(smooth[my, mx] + a[my, mx, None] * corr, 0.0, 1.0)
            out[my, mx] += 0.5 * a[my, mx, None] * (nl[my, mx] - out[my, mx])
            secs["non-local"] += time.perf_counter() - t0
    out = np.where(obs[..., None], x, out)
    yield "done", Restoration(out, fm_img, smooth, a, hist, model, feats, secs, cancelled,
                              float(blend) if method == "fm" else None, stage2,
                              None if nl is None else np.where(obs[..., None], x, nl))


def restore(image: np.ndarray, mask: np.ndarray, *, method: str = "fm", iters: int = 80,
            blend: float | str = "auto", seed: int = 0, k: int = 4, epochs: int = 8,
            n_train: int = 8_000, device: str | None = None,
            progress: Callable[[int, int, float], bool | None] | None = None,
            max_pixels: int = MAX_PIXELS, nonlocal_rounds: int = 3,
            nonlocal_refine: bool = True, final_stride: int | None = None) -> Restoration:
    """Restore the pixels where `mask` is True and keep every part (see inpaint()).

    progress(epoch, epochs, loss) runs after each FM epoch; returning False cancels the
    fit (the FM keeps the parameters reached, `cancelled` is set)."""
    stop = [False]
    for kind, data in restore_steps(image, mask, method=method, iters=iters, blend=blend,
                                    seed=seed, k=k, epochs=epochs, n_train=n_train,
                                    device=device, cancel=lambda: stop[0],
                                    max_pixels=max_pixels, nonlocal_rounds=nonlocal_rounds,
                                    nonlocal_refine=nonlocal_refine,
                                    final_stride=final_stride):
        if kind == "epoch" and progress is not None and progress(*data) is False:
            stop[0] = True
        elif kind == "done":
            return data
    raise AssertionError("restore_steps ended without a result")  # pragma: no cover


def inpaint(image: np.ndarray, mask: np.ndarray, *, method: str = "fm", iters: int = 80,
            blend: float | str = "auto", seed: int = 0, k: int = 4, epochs: int = 8,
            device: str | None = None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Restore the pixels where `mask` is True; returns the image's dtype and shape.

    image: (H, W) grey or (H, W, 3) RGB, uint8 or float in [0, 1]. mask: (H, W) bool.
    method: "fm" (the biharmonic fill corrected by a second FM, learned on 2-10% of
    the observed pixels held out of both fits, from the first FM; or with a number
    `blend`, the FM blended with the fill by that weight where its neighbourhood is
    observed), "fm-only", or "biharmonic". The result is
    deterministic for a given seed."""
    _, dtype, grey = _as_image(image, max_pixels)
    if not _as_mask(mask, np.shape(image)[:2]).any():
        return np.array(image, copy=True)
    out = restore(image, mask, method=method, iters=iters, blend=blend, seed=seed, k=k,
                  epochs=epochs, device=device, max_pixels=max_pixels).result
    return _like(out, dtype, grey)


def _like(out: np.ndarray, dtype: np.dtype, grey: bool) -> np.ndarray:
    """A float [0, 1] result back in the input's dtype and layout."""
    out = np.clip(out, 0.0, 1.0)
    if grey:
        out = out[:, :, 0]
    if dtype == np.uint8:
        return np.round(out * 255.0).astype(np.uint8)
    return out.astype(dtype if dtype.kind == "f" else np.float64)


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB (higher is better)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range ** 2 / mse)


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0, win: int = 7) -> float:
    """Structural similarity (Wang et al. 2004) as scikit-image computes it by default:
    7x7 uniform windows, sample covariances, mean over channels and the valid interior.
    1 = identical. Written here because the browser has no scikit-image."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.shape != y.shape:
        raise ValueError(f"ssim needs images of one shape, got {x.shape} and {y.shape}")
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    if min(x.shape[:2]) < win:
        raise ValueError(f"ssim needs images of at least {win}x{win} pixels")
    n = win * win
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def mean(z: np.ndarray) -> np.ndarray:   # uniform window means over the valid interior
        cs = np.zeros((z.shape[0] + 1, z.shape[1] + 1) + z.shape[2:])
        cs[1:, 1:] = np.cumsum(np.cumsum(z, 0), 1)
        return (cs[win:, win:] - cs[:-win, win:] - cs[win:, :-win] + cs[:-win, :-win]) / n

    mx, my = mean(x), mean(y)
    cov = n / (n - 1.0)
    vx, vy = cov * (mean(x * x) - mx * mx), cov * (mean(y * y) - my * my)
    vxy = cov * (mean(x * y) - mx * my)
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())

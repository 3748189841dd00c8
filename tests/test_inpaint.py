"""Inpainting: recovery of a synthetic low-rank image, masks, dtypes, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from engine.inpaint import (
    InpaintError,
    apply_mask,
    block_mask,
    inpaint,
    psnr,
    random_mask,
    restore,
    restore_steps,
    scratch_mask,
    ssim,
)


def _low_rank_image(h: int = 64, w: int = 72, c: int = 3) -> np.ndarray:
    y, x = np.linspace(0, 1, h), np.linspace(0, 1, w)
    rows = np.stack([np.sin(2 * np.pi * y), np.cos(3 * y), y ** 2])
    cols = np.stack([np.cos(2 * np.pi * x), np.sin(4 * x), 1 - x])
    out = np.stack([(rows.T * (0.3 + 0.2 * ch)) @ cols for ch in range(c)], -1)
    out -= out.min()
    return out / out.max()


def test_recovers_low_rank_image_at_50_percent() -> None:
    img = _low_rank_image()
    m = random_mask(img.shape, 0.5, seed=1)
    out = inpaint(img, m)
    assert out.shape == img.shape and out.dtype == img.dtype
    assert np.array_equal(out[~m], img[~m])  # observed pixels are kept
    assert psnr(out, img) > 35


def test_high_missing_grey_and_uint8() -> None:
    img = _low_rank_image(c=1)[:, :, 0]
    m = random_mask(img.shape, 0.85, seed=2)
    out = inpaint(img, m)
    assert out.shape == img.shape and psnr(out, img) > 30
    u8 = (img * 255).round().astype(np.uint8)
    out8 = inpaint(u8, m)
    assert out8.dtype == np.uint8 and out8.shape == u8.shape
    mean_fill = np.where(m, u8[~m].mean(), u8)
    assert psnr(out8 / 255, img) > psnr(mean_fill / 255, img) + 10


def test_scratches_and_blocks() -> None:
    img = _low_rank_image(96, 96)
    for m in (scratch_mask(img.shape, n=6, width=3, seed=0),
              block_mask(img.shape, n=3, size=10, seed=0)):
        assert 0 < m.mean() < 0.5
        assert psnr(inpaint(img, m), img) > psnr(apply_mask(img, m, 0.5), img) + 10


def test_masks_are_seeded() -> None:
    a, b = random_mask((50, 40), 0.8, seed=3), random_mask((50, 40), 0.8, seed=3)
    assert np.array_equal(a, b) and abs(a.mean() - 0.8) < 0.05
    assert not np.array_equal(a, random_mask((50, 40), 0.8, seed=4))
    assert np.array_equal(scratch_mask((64, 64), seed=1), scratch_mask((64, 64), seed=1))
    with pytest.raises(InpaintError, match="fraction"):
        random_mask((8, 8), 1.5)


def test_bad_input() -> None:
    img = _low_rank_image(32, 32)
    m = random_mask(img.shape, 0.5)
    with pytest.raises(InpaintError, match="does not match"):
        inpaint(img, m[:-1])
    with pytest.raises(InpaintError, match="RGBA|shape"):
        inpaint(np.zeros((32, 32, 4)), m)
    with pytest.raises(InpaintError, match="at least"):
        inpaint(np.zeros((4, 32)), np.zeros((4, 32), bool))
    with pytest.raises(InpaintError, match="limit"):
        inpaint(img, m, max_pixels=100)
    with pytest.raises(InpaintError, match="every pixel"):
        inpaint(img, np.ones((32, 32), bool))
    with pytest.raises(InpaintError, match=r"\[0, 1\]"):
        inpaint(img * 255.0, m)
    with pytest.raises(InpaintError, match="NaN"):
        inpaint(np.full((32, 32), np.nan), m)
    with pytest.raises(InpaintError, match="numeric"):
        inpaint(np.full((32, 32), "a"), m)


# -- the factorization machine --------------------------------------------------------------

def _stripes(h: int = 96, w: int = 96) -> np.ndarray:
    """Diagonal stripes 5 pixels apart: texture an isotropic smoothness prior blurs away."""
    yy, xx = np.mgrid[0:h, 0:w]
    g = 0.5 + 0.4 * np.sin(2 * np.pi * (xx + 2 * yy) / 5.0)
    return np.stack([g, 0.8 * g + 0.1, 1 - g], -1)


def test_fm_learns_texture_the_smooth_fill_cannot() -> None:
    img = _stripes()
    m = random_mask(img.shape, 0.5, seed=3)
    r = restore(img, m, seed=0)
    assert psnr(r.fm, img) > psnr(r.biharmonic, img) + 6, (psnr(r.fm, img),
                                                           psnr(r.biharmonic, img))
    assert r.blend > 0.8  # the held-out pixels show the FM is better: it gets the weight
    assert psnr(r.result, img) > psnr(r.biharmonic, img) + 6
    assert len(r.history) == 8 and r.history[-1] < r.history[0]
    assert np.array_equal(r.result[~m], img[~m]) and np.array_equal(r.fm[~m], img[~m])


def test_features_never_contain_the_pixel_itself() -> None:
    """A row's features and base do not change when its own value does (so the FM learns
    from observed pixels exactly the task it does on missing ones); a neighbour's do."""
    from engine.fm.image import pixel_features

    img = _low_rank_image(40, 40)
    obs = ~random_mask(img.shape, 0.5, seed=0)
    y, x = np.argwhere(obs[10:30, 10:30])[0] + 10
    for cell in (1, 2, 4):
        a = pixel_features(img * obs[..., None], obs, cell=cell)
        changed = img.copy()
        changed[y, x] += 0.3
        b = pixel_features(changed * obs[..., None], obs, cell=cell)
        py, px = np.array([y]), np.array([x])
        np.testing.assert_allclose(a.values(py, px), b.values(py, px), atol=1e-12)
        np.testing.assert_allclose(a.base[y, x], b.base[y, x], atol=1e-12)
        assert not np.allclose(a.values(py, px + 1), b.values(py, px + 1))


def test_fm_prediction_is_the_engine_forward_and_explained() -> None:
    """predict_pixel_fm (the FM read as per-channel filters) equals the engine's FM forward
    on the padded rows, and explain_pixel's parts add up to it."""
    from engine.fm.image import explain_pixel, fit_pixel_fm, pixel_features, predict_pixel_fm

    img = _low_rank_image(32, 32)
    obs = ~random_mask(img.shape, 0.6, seed=1)
    feats = pixel_features(img * obs[..., None], obs)
    fm, hist = fit_pixel_fm(feats, img, obs, epochs=2, n_train=2000, seed=1)
    py, px = np.nonzero(~obs)
    got = predict_pixel_fm(fm, feats, py, px)
    idx, val = feats.rows(np.repeat(py, 3), np.repeat(px, 3), np.tile(np.arange(3), len(py)))
    want = fm.predict(idx, val).reshape(-1, 3) + feats.base[py, px]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    parts = explain_pixel(fm, feats, int(py[0]), int(px[0]))
    assert [p["channel"] for p in parts] == ["R", "G", "B"]
    for c, p in enumerate(parts):
        total = p["base"] + p["bias"] + float(np.dot(p["values"], p["weights"]))
        assert abs(total - p["prediction"]) < 1e-9 and abs(total - got[0, c]) < 1e-5
    assert len(feats.names()) == feats.n_features == 3 + 25


def test_restore_is_deterministic_reports_progress_and_cancels() -> None:
    img = _low_rank_image(48, 48)
    m = random_mask(img.shape, 0.7, seed=5)
    a, b = inpaint(img, m, seed=2), inpaint(img, m, seed=2)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, inpaint(img, m, seed=3))
    seen = []
    r = restore(img, m, progress=lambda ep, n, loss: seen.append((ep, n, loss)))
    assert [s[0] for s in seen] == list(range(1, 9)) and all(s[1] == 8 for s in seen)
    stop = restore(img, m, progress=lambda ep, n, loss: ep < 2)
    assert stop.cancelled and len(stop.history) == 2 and not r.cancelled
    assert psnr(stop.result, img) > 25  # restored with the FM fitted so far
    kinds = [k for k, _ in restore_steps(img, m, epochs=3)]
    assert kinds[-1] == "done" and kinds.count("epoch") == 3 and kinds[0] == "stage"
    only = restore(img, m, method="biharmonic")
    assert only.fm is None and np.array_equal(only.result, only.biharmonic)
    fm_only = restore(img, m, method="fm-only")
    assert np.array_equal(inpaint(img, m, method="fm-only"), fm_only.fm)
    assert fm_only.second is None and r.second is not None
    with pytest.raises(InpaintError, match="method"):
        inpaint(img, m, method="magic")
    with pytest.raises(InpaintError, match="blend"):
        inpaint(img, m, blend=2.0)


def test_second_fm_is_the_least_squares_filter_and_the_engine_forward() -> None:
    """The second FM (fitted exactly) has the per-channel least-squares filters as its
    channel_filters, and its engine forward on padded rows is predict_residual_fm."""
    from engine.fm.image import RESIDUAL_NAMES, fit_residual_fm, predict_residual_fm

    rng = np.random.default_rng(0)
    n, C, J = 500, 3, len(RESIDUAL_NAMES)
    X = rng.normal(0, 0.05, (n, C, J))
    true = rng.normal(0, 1, (C, J))
    y = np.einsum("ncj,cj->nc", X, true) + np.array([0.1, -0.2, 0.05]) \
        + rng.normal(0, 1e-3, (n, C))
    fm = fit_residual_fm(X, y, ridge=0.0)
    got = predict_residual_fm(fm, X)
    for c in range(C):  # the least-squares fit of each channel, by NumPy
        A = np.concatenate([np.ones((n, 1)), X[:, c]], 1)
        coef = np.linalg.lstsq(A, y[:, c], rcond=None)[0]
        np.testing.assert_allclose(got[:, c], A @ coef, atol=1e-8)
    np.testing.assert_allclose(got, y, atol=5e-3)
    idx = np.empty((n * C, 1 + J), np.int64)
    idx[:, 0] = np.tile(np.arange(C), n)
    idx[:, 1:] = C + np.arange(J)
    val = np.concatenate([np.ones((n * C, 1)), X.reshape(n * C, J)], 1)
    np.testing.assert_allclose(fm.predict(idx, val).reshape(n, C), got, atol=1e-8)


def test_cross_channel_appends_the_other_channels_corrections() -> None:
    """Each channel's second-FM row gets the FM and groups corrections (plain and times
    support: residual_values' columns 0, 1, 10, 11) of the next channel, then the one
    after; a grey image has no others."""
    from engine.fm.image import RESIDUAL_NAMES, cross_channel

    J = len(RESIDUAL_NAMES)
    v = np.arange(2 * 3 * J, dtype=np.float64).reshape(2, 3, J)
    out = cross_channel(v)
    assert out.shape == (2, 3, J + 8)
    np.testing.assert_array_equal(out[:, :, :J], v)
    for c in range(3):
        np.testing.assert_array_equal(out[:, c, J:J + 4], v[:, (c + 1) % 3][:, [0, 1, 10, 11]])
        np.testing.assert_array_equal(out[:, c, J + 4:], v[:, (c + 2) % 3][:, [0, 1, 10, 11]])
    assert RESIDUAL_NAMES[10] == "FM - smooth x support"
    assert RESIDUAL_NAMES[11] == "non-local - smooth x support"
    np.testing.assert_array_equal(cross_channel(v[:, :1]), v[:, :1])


@pytest.mark.parametrize("cross", [False, True])
@pytest.mark.parametrize("with_groups", [False, True])
def test_residual_prediction_without_rows_matches_the_rows(cross: bool,
                                                           with_groups: bool) -> None:
    """predict_residual_at (features gathered column by column, no (n, C, F) rows) gives
    predict_residual_fm's numbers on residual_values (and cross_channel) rows, borders
    included; an FM of the wrong width is refused."""
    from engine.fm.image import (
        cross_channel,
        fit_residual_fm,
        predict_residual_at,
        predict_residual_fm,
        residual_values,
    )

    rng = np.random.default_rng(3)
    sm, fi, nl = (rng.random((17, 13, 3)) for _ in range(3))
    sup = rng.random((17, 13))
    py, px = np.r_[0, 16, rng.integers(0, 17, 200)], np.r_[0, 12, rng.integers(0, 13, 200)]
    v = residual_values(sm, fi, sup, py, px, nl if with_groups else None)
    v = cross_channel(v) if cross else v
    fm = fit_residual_fm(v, rng.normal(size=(len(py), 3)), ridge=0.1)
    got = predict_residual_at(fm, sm, fi, sup, py, px, nl if with_groups else None, cross)
    np.testing.assert_allclose(got, predict_residual_fm(fm, v), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="features"):
        predict_residual_at(fm, sm, fi, sup, py, px, nl, not cross)


def test_second_fm_features_never_see_the_held_out_pixel() -> None:
    """The second FM learns on held-out pixels: its features there come from a smooth fill
    and a first FM that never saw them. Changing a held-out pixel's value leaves its own
    features unchanged. (The first FM's own features exclude the pixel:
    test_features_never_contain_the_pixel_itself.)"""
    from engine.fm.image import residual_values

    img = _low_rank_image(40, 40)
    obs = ~random_mask(img.shape, 0.5, seed=0)
    y, x = np.argwhere(obs[10:30, 10:30])[0] + 10
    held = np.zeros_like(obs)
    held[y, x] = True
    fit = obs & ~held
    from engine.inpaint import _biharmonic, _push_pull

    def feats(im: np.ndarray) -> np.ndarray:
        xx = np.where(fit[..., None], im, 0.0)
        smooth = _biharmonic(_push_pull(xx, fit), fit)
        return residual_values(smooth, smooth + 0.01, np.ones(obs.shape), np.array([y]),
                               np.array([x]))

    changed = img.copy()
    changed[y, x] += 0.3
    np.testing.assert_allclose(feats(img), feats(changed), atol=1e-12)


def test_holes_fall_back_to_the_smooth_fill() -> None:
    """Inside a hole wider than the FM's neighbourhood the FM has nothing to go on: the
    result there is the biharmonic fill's."""
    img = _low_rank_image(64, 64)
    m = np.zeros(img.shape[:2], bool)
    m[20:44, 20:44] = True
    r = restore(img, m)
    assert r.weight[32, 32] == 0.0 and np.array_equal(r.result[32, 32], r.biharmonic[32, 32])
    assert psnr(r.result, img) > 30


def test_ssim_matches_scikit_image() -> None:
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a = _low_rank_image(40, 48)
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    want = structural_similarity(a, b, channel_axis=-1, data_range=1.0)
    assert abs(ssim(a, b) - want) < 1e-9
    assert abs(ssim(a[..., 0], b[..., 0]) - structural_similarity(
        a[..., 0], b[..., 0], data_range=1.0)) < 1e-9
    assert ssim(a, a) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shape"):
        ssim(a, b[:-1])

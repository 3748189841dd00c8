"""Non-local patch groups (engine.fm.groups): matching, low-rank completion, honesty."""

from __future__ import annotations

import numpy as np
import pytest

from engine.fm.groups import (
    _double,
    _half,
    choose_rank,
    complete_groups,
    group_rank,
    group_shrink,
    match_patches,
    nonlocal_estimate,
    nonlocal_fill,
    regroup,
)
from engine.inpaint import _biharmonic, _push_pull, psnr, random_mask, restore


def _texture(h: int = 48, w: int = 48) -> np.ndarray:
    """A periodic colour texture (period 6 x 8): every patch has exact look-alikes nearby,
    which a smooth fill cannot know about at high loss."""
    y, x = np.mgrid[0:h, 0:w]
    base = 0.5 + 0.25 * np.sin(2 * np.pi * y / 6) * np.cos(2 * np.pi * x / 8)
    return np.clip(np.stack([base, 1 - base, 0.5 + 0.4 * (base - 0.5)], -1), 0, 1)


def test_groups_hold_the_reference_and_stay_in_the_window() -> None:
    img = _texture()
    g = match_patches(img, patch=6, k=8, radius=7, stride=5)
    n = g.y.shape[0]
    assert g.y.shape == g.x.shape == (n, 8)
    ry = np.meshgrid(np.r_[np.arange(0, 43, 5), 42], np.r_[np.arange(0, 43, 5), 42],
                     indexing="ij")
    refs = np.stack([r.ravel() for r in ry], 1)
    for i, (y, x) in enumerate(refs):
        assert ((g.y[i] == y) & (g.x[i] == x)).any()          # itself, at distance 0
        assert (np.abs(g.y[i] - y) <= 7).all() and (np.abs(g.x[i] - x) <= 7).all()
    assert (g.y >= 0).all() and (g.y <= 48 - 6).all()


def test_completion_restores_a_texture_the_smooth_fill_blurs() -> None:
    img = _texture()
    obs = ~random_mask(img.shape, 0.5, seed=3)
    x = np.where(obs[..., None], img, 0.0)
    smooth = np.clip(_biharmonic(_push_pull(x, obs), obs), 0, 1)
    nl = nonlocal_estimate(x, obs, smooth, radius=8, stride=3)
    assert np.array_equal(nl[obs], img[obs])                  # observed pixels kept
    assert psnr(nl, img) > psnr(smooth, img) + 5.0            # measured: +13 dB


def test_completion_is_exact_on_a_rank_one_group() -> None:
    """Members that are multiples of one patch plus a common mean, 40% of the other
    members' entries missing: rank-1 completion recovers them (the factor model's fixed point)."""
    rng = np.random.default_rng(0)
    p, k = 4, 8
    img = np.zeros((p, p * k, 1))
    pattern = rng.random((p, p))
    for j in range(k):
        img[:, j * p:(j + 1) * p, 0] = 0.3 + (0.2 + 0.05 * j) * pattern
    obs = rng.random(img.shape[:2]) < 0.6
    obs[:, :2 * p] = True          # two members whole: every offset observed somewhere
    from engine.fm.groups import PatchGroups

    g = PatchGroups(np.zeros((1, k), np.int64), (np.arange(k) * p)[None], p)
    x, start = np.where(obs[..., None], img, 0), np.full(img.shape, 0.5)
    for relax in (1.0, 1.8):
        out = complete_groups(x, obs, start, g, rank=1, iters=300, relax=relax)
        np.testing.assert_allclose(out, img, atol=1e-3)
    # over-relaxed imputation reaches the same fixed point faster (measured: 0.014 -> 0.0016
    # max error after 20 steps)
    err = [np.abs(complete_groups(x, obs, start, g, rank=1, iters=20, relax=r) - img).max()
           for r in (1.0, 1.8)]
    assert err[1] < 0.5 * err[0]


def _reference_em(x: np.ndarray, obs: np.ndarray, est: np.ndarray, g, rank: int,
                  iters: int, relax: float, shrink: float = 0.0) -> np.ndarray:
    """complete_groups written plainly, one group at a time in float64: impute (over-
    relaxed), centre, two subspace steps from the identity's first columns (QR), project
    (each factor weighted by 1 - shrink x the mean eigenvalue beyond the rank / its own,
    clipped to [0, 1]), and average the last models per pixel."""
    h, w, c = x.shape
    p = g.patch
    acc, cnt = np.zeros((h, w, c)), np.zeros((h, w))
    for gy, gx in zip(g.y, g.x):
        def rows(a: np.ndarray, gy: np.ndarray = gy, gx: np.ndarray = gx) -> np.ndarray:
            return np.stack([a[y:y + p, x0:x0 + p].reshape(-1) for y, x0 in zip(gy, gx)])
        yo, miss = rows(x), rows(np.repeat(~obs[..., None], c, 2))
        imp = rows(est)
        u, z = np.eye(len(gy))[:, :rank], imp
        for _ in range(iters):
            zi = np.where(miss, imp, yo)
            mu = zi.mean(0)
            zc = zi - mu
            for _ in range(2):
                u = np.linalg.qr(zc @ zc.T @ u)[0]
            gram = zc @ zc.T
            lam = np.diag(u.T @ gram @ u)
            s2 = max(np.trace(gram) - lam.sum(), 0.0) / max(len(gy) - 1 - rank, 1)
            wgt = np.clip(1.0 - shrink * s2 / np.maximum(lam, 1e-12), 0.0, 1.0)
            z = (u * wgt) @ (u.T @ zc) + mu
            imp = imp + relax * (z - imp)
        for j, (y, x0) in enumerate(zip(gy, gx)):
            acc[y:y + p, x0:x0 + p] += z[j].reshape(p, p, c)
            cnt[y:y + p, x0:x0 + p] += 1
    return np.where(cnt[..., None] > 0, acc / np.maximum(cnt, 1)[..., None], est)


@pytest.mark.parametrize("rank, relax, shrink", [(1, 1.0, 0.0), (2, 1.8, 0.0), (4, 1.8, 0.0),
                                                 (1, 1.0, 1.0), (3, 1.8, 1.0), (4, 1.8, 3.0)])
def test_fused_em_is_the_plain_em(rank: int, relax: float, shrink: float) -> None:
    """complete_groups' fused E-step (the missing entries move by relax x (model -
    imputed), observed ones keep their values) is the textbook hard-impute EM: the same
    fill as a plain per-group float64 loop, up to float32 rounding; with `shrink` the
    factors are damped by signal over the group's noise level in both."""
    img = _texture(32, 32)
    obs = ~random_mask(img.shape, 0.7, seed=2)
    x = np.where(obs[..., None], img, 0.0)
    start = np.clip(_biharmonic(_push_pull(x, obs), obs), 0, 1)
    g = match_patches(start, patch=5, k=8, radius=4, stride=4)
    got = complete_groups(x, obs, start, g, rank=rank, iters=5, relax=relax, chunk=7,
                          shrink=shrink)
    want = _reference_em(x, obs, start, g, rank, 5, relax, shrink)
    np.testing.assert_allclose(got, want, atol=2e-4)
    if shrink:   # the damping changes the fill (the case is not one where it is inert)
        plain = complete_groups(x, obs, start, g, rank=rank, iters=5, relax=relax, chunk=7)
        assert np.abs(got - plain).max() > 1e-3


def test_shrinkage_only_at_high_loss() -> None:
    """The factors are damped at 80 and 95% loss, where a group's few observed entries
    barely determine them (more at 95%), and left whole at 50% (damping cost 0.02-0.13 dB
    there)."""
    assert group_shrink(0.05) == 2.0        # ~1 observed entry per offset: damped more
    assert group_shrink(0.2) == 1.0
    assert group_shrink(0.5) == group_shrink(0.9) == 0.0


@pytest.mark.parametrize("coarse", [0.0, 0.6])
def test_nonlocal_fill_never_sees_pixels_outside_obs(coarse: float) -> None:
    """The second FM learns how far to trust the groups on held-out pixels: the groups'
    fill there must not depend on their values (nor through the half-resolution start)."""
    img = _texture(32, 32)
    obs = ~random_mask(img.shape, 0.5, seed=1)
    held = np.zeros_like(obs)
    held[np.nonzero(obs)[0][40], np.nonzero(obs)[1][40]] = True
    fit = obs & ~held
    start = np.full(img.shape, 0.5)

    def fill(im: np.ndarray) -> np.ndarray:
        return nonlocal_estimate(im, fit, start, rounds=2, patch=6, k=6, stride=4,
                                 coarse=coarse)

    changed = img.copy()
    changed[held] = 1.0 - changed[held]
    np.testing.assert_array_equal(fill(img), fill(changed))


def test_regroup_keeps_obs_and_never_sees_pixels_outside_it() -> None:
    img = _texture(32, 32)
    obs = ~random_mask(img.shape, 0.6, seed=2)
    start = np.full(img.shape, 0.5)
    guide = np.where(obs[..., None], img, 0.4)
    out = regroup(img, obs, guide, start, patch=6, k=6, stride=4)
    np.testing.assert_array_equal(out[obs], img[obs])
    changed = np.where(obs[..., None], img, 1.0 - img)
    np.testing.assert_array_equal(out, regroup(changed, obs, guide, start, patch=6, k=6,
                                               stride=4))


def test_rank_follows_the_observed_share_and_restore_reports_the_fill() -> None:
    assert group_rank(0.5) == 4 and group_rank(0.2) == 2 and group_rank(0.05) == 1
    img = _texture(40, 40)
    m = random_mask(img.shape, 0.6, seed=0)
    r = restore(img, m, epochs=2)
    assert r.nonlocal_fill is not None and r.nonlocal_fill.shape == img.shape
    assert "non-local" in r.seconds
    one = restore(img, m, epochs=2, nonlocal_refine=False)   # no re-matching on the blend
    assert not np.array_equal(one.result, r.result)
    np.testing.assert_array_equal(restore(img, m, epochs=2).result, r.result)
    dense = restore(img, m, epochs=2, final_stride=4)   # the last round's denser grid
    assert not np.array_equal(dense.nonlocal_fill, r.nonlocal_fill)
    np.testing.assert_array_equal(dense.result[~m], img[~m])
    off = restore(img, m, epochs=2, nonlocal_rounds=0)
    assert off.nonlocal_fill is None


def test_rank_is_chosen_on_the_held_out_pixels_only() -> None:
    """choose_rank keeps the rank unless twice it errs less on the held-out pixels, and
    returns that rank's fill; nonlocal_fill with held-out pixels is nonlocal_estimate at
    the rank it chose (the held-out values decide only that choice), at full resolution
    and with a half-resolution start (where the coarse level chooses)."""
    x = np.zeros((6, 6, 1))
    held = np.zeros((6, 6), bool)
    held[2, 3] = True

    def score(e: np.ndarray) -> float:
        return float(((e[held] - x[held]) ** 2).mean())

    fills = {2: np.full_like(x, 0.1), 4: np.full_like(x, 0.2)}
    fills[4][2, 3] = 0.05             # worse everywhere but on the held-out pixel
    assert choose_rank(fills.__getitem__, score, 2, 16)[::2] == (4, True)
    fills[4][2, 3] = 0.15
    r, est, rich = choose_rank(fills.__getitem__, score, 2, 16)
    assert (r, rich) == (2, False) and est is fills[2]
    assert choose_rank({8: x}.__getitem__, score, 8, 9)[0] == 8   # no room below k
    img = _texture(40, 40)
    obs = ~random_mask(img.shape, 0.5, seed=1)
    held = obs & (np.random.default_rng(0).random(obs.shape) < 0.1)
    fit = obs & ~held
    start = np.clip(_biharmonic(_push_pull(np.where(fit[..., None], img, 0), fit), fit), 0, 1)
    kw = dict(patch=6, k=8, stride=4, rounds=2)
    est, rank = nonlocal_fill(img, fit, start, held=held, **kw)
    assert rank in (group_rank(fit.mean(), 8), 2 * group_rank(fit.mean(), 8))
    np.testing.assert_array_equal(est, nonlocal_estimate(img, fit, start, rank=rank, **kw))
    np.testing.assert_array_equal(est[fit], img[fit])
    assert nonlocal_fill(img, fit, start, **kw)[1] == group_rank(fit.mean(), 8)
    big = np.tile(img, (2, 2, 1))                 # 80x80 at 80% loss: one coarse level
    obs = ~random_mask(big.shape, 0.8, seed=2)
    held = obs & (np.random.default_rng(1).random(obs.shape) < 0.2)
    fit = obs & ~held
    start = np.clip(_biharmonic(_push_pull(np.where(fit[..., None], big, 0), fit), fit), 0, 1)
    kw = dict(patch=6, k=8, stride=4, rounds=1, coarse=0.25)
    est, rank = nonlocal_fill(big, fit, start, held=held, **kw)
    assert rank in (group_rank(fit.mean(), 8), 2 * group_rank(fit.mean(), 8))
    np.testing.assert_array_equal(est, nonlocal_estimate(big, fit, start, rank=rank, **kw))


def test_half_resolution_round_trip() -> None:
    """Block means over the observed pixels only, and bilinear doubling that returns a
    linear ramp exactly (away from the clamped border), on odd sides too."""
    a = np.arange(5 * 7 * 2, dtype=np.float64).reshape(5, 7, 2)
    wgt = np.ones((5, 7))
    wgt[0, 0] = 0.0
    h, seen = _half(a, wgt)
    assert h.shape == (2, 3, 2) and seen.all()
    np.testing.assert_allclose(h[0, 0], a[[0, 1, 1], [1, 0, 1]].mean(0))
    ramp = (np.arange(16)[:, None, None] * 0.1 + np.arange(12)[None, :, None] * 0.2
            ) * np.ones((1, 1, 3))
    back = _double(_half(ramp, np.ones((16, 12)))[0], (17, 13))
    assert back.shape == (17, 13, 3)
    np.testing.assert_allclose(back[1:15, 1:11], ramp[1:15, 1:11], atol=1e-12)
    np.testing.assert_array_equal(back[16], back[15])

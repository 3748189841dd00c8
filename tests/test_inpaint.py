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
    scratch_mask,
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

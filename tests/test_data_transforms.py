"""Training transforms (exact crops and flips, normalisation) and MNIST-style digit
preprocessing for the drawing demo."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.transforms import (
    center_square,
    fit_within,
    image_batch,
    mean_std,
    mnist_preprocess,
    normalize,
    random_crop,
    random_hflip,
    resize,
    to_chw,
)


@pytest.fixture
def batch():
    return np.random.default_rng(0).integers(0, 256, (16, 8, 10, 3), dtype=np.uint8)


def test_random_crop_is_an_exact_window_of_the_padded_image(batch):
    out = random_crop(batch, (6, 7), padding=2, rng=1)
    assert out.shape == (16, 6, 7, 3) and out.dtype == np.uint8
    padded = np.pad(batch, ((0, 0), (2, 2), (2, 2), (0, 0)))
    offsets = set()
    for img, crop in zip(padded, out):
        hits = [(dy, dx) for dy in range(12 - 6 + 1) for dx in range(14 - 7 + 1)
                if np.array_equal(img[dy:dy + 6, dx:dx + 7], crop)]
        assert hits, "crop is not a window of the padded image"
        offsets.add(hits[0])
    assert len(offsets) > 4  # offsets vary across the batch
    np.testing.assert_array_equal(random_crop(batch, (8, 10), 0, rng=3), batch)  # full size
    np.testing.assert_array_equal(random_crop(batch, 6, 2, rng=5), random_crop(batch, 6, 2, 5))


def test_random_crop_layouts_and_errors(batch):
    nchw = to_chw(batch)
    a = random_crop(batch, 8, padding=4, rng=7)
    b = random_crop(nchw, 8, padding=4, rng=7, layout="NCHW")
    np.testing.assert_array_equal(to_chw(a), b)  # same offsets, same pixels
    gray = random_crop(batch[..., 0], 5, padding=1, rng=0)
    assert gray.shape == (16, 5, 5)
    filled = random_crop(np.zeros((2, 2, 2, 1), np.float32), 2, padding=3, rng=0, fill=-1.0)
    assert filled.min() == -1.0
    with pytest.raises(ValueError, match="does not fit"):
        random_crop(batch, 20, padding=2)
    with pytest.raises(ValueError, match="expected a batch"):
        random_crop(batch[0, 0], 4)


def test_random_hflip(batch):
    original = batch.copy()
    np.testing.assert_array_equal(random_hflip(batch, rng=0, p=0.0), batch)
    np.testing.assert_array_equal(random_hflip(batch, rng=0, p=1.0), batch[:, :, ::-1])
    out = random_hflip(batch, rng=0)
    flipped = [np.array_equal(o, b[:, ::-1]) for o, b in zip(out, batch)]
    kept = [np.array_equal(o, b) for o, b in zip(out, batch)]
    assert all(f or k for f, k in zip(flipped, kept)) and 0 < sum(flipped) < 16
    np.testing.assert_array_equal(batch, original)  # input untouched
    np.testing.assert_array_equal(
        to_chw(out), random_hflip(to_chw(batch), rng=0, layout="NCHW"))


def test_normalize_and_stats(batch):
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.5]
    out = normalize(batch, mean, std)
    assert out.dtype == np.float32 and out.shape == batch.shape
    ref = (batch / 255.0 - np.array(mean)) / np.array(std)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(normalize(to_chw(batch), mean, std, axis=1), to_chw(out),
                               rtol=1e-6)
    np.testing.assert_allclose(normalize(np.ones((2, 2), np.float32), 0.5, 0.5), 1.0)
    m, s = mean_std(batch)
    np.testing.assert_allclose(normalize(batch, m, s).mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(normalize(batch, m, s).std(axis=(0, 1, 2)), 1, atol=1e-4)
    with pytest.raises(ValueError, match="2 values but x has 3 channels"):
        normalize(batch, [0.5, 0.5], [1, 1])
    with pytest.raises(ValueError, match="positive"):
        normalize(batch, 0.5, 0.0)


def test_to_chw():
    x = np.arange(24).reshape(2, 3, 4)
    assert to_chw(x).shape == (4, 2, 3) and to_chw(x)[1, 0, 2] == x[0, 2, 1]
    assert to_chw(x[None]).shape == (1, 4, 2, 3) and to_chw(x).flags.c_contiguous
    with pytest.raises(ValueError):
        to_chw(x[0])


# --- MNIST-style preprocessing -------------------------------------------------------------

def _stroke_canvas(h=240, w=320, ink=255, bg=0):
    """A thick '7' drawn off-centre on a large canvas, like the drawing demo's."""
    img = np.full((h, w), bg, np.uint8)
    img[40:58, 60:170] = ink  # top bar
    for t in range(130):  # diagonal down-left
        y, x = 58 + t, 165 - int(t * 0.55)
        img[y:y + 4, max(0, x - 9):x + 9] = ink
    return img


def _com(x):
    m = x.sum()
    r = np.arange(x.shape[0])
    return (x.sum(1) * r).sum() / m, (x.sum(0) * r).sum() / m


@pytest.mark.parametrize("variant", ["white-on-black", "black-on-white", "float", "rgb"])
def test_mnist_preprocess_stroke(variant):
    img = _stroke_canvas()
    if variant == "black-on-white":
        img = 255 - img
    elif variant == "float":
        img = img.astype(np.float32) / 255
    elif variant == "rgb":
        img = np.repeat(255 - img[:, :, None], 3, axis=2)  # dark ink on white, RGB
    x = mnist_preprocess(img)
    assert x.shape == (28, 28) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() == pytest.approx(1.0)
    cy, cx = _com(x)
    assert abs(cy - 14) <= 0.5 + 1e-9 and abs(cx - 14) <= 0.5 + 1e-9
    rows, cols = np.flatnonzero(x.any(1)), np.flatnonzero(x.any(0))
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    assert max(height, width) == 20  # longer side scaled to 20
    assert abs(width / height - 110 / 164) < 0.1  # aspect ratio kept (ink box 110x164)
    np.testing.assert_allclose(x, mnist_preprocess(_stroke_canvas()), atol=1e-6)


def test_mnist_preprocess_small_and_wide_strokes():
    dot = np.zeros((50, 50), np.uint8)
    dot[20:23, 30:32] = 200  # a tiny mark, faint ink: scaled up, contrast stretched
    x = mnist_preprocess(dot)
    assert x.max() == pytest.approx(1.0) and abs(_com(x)[0] - 14) <= 0.5 + 1e-9
    bar = np.zeros((10, 400), np.uint8)
    bar[4:6, 10:390] = 255  # a wide dash: 20 px wide, thin
    x = mnist_preprocess(bar)
    cols = np.flatnonzero(x.any(0))
    assert cols[-1] - cols[0] + 1 == 20 and np.flatnonzero(x.any(1)).size <= 2


@pytest.mark.parametrize("canvas", [np.zeros((280, 280), np.uint8),
                                    np.full((280, 280), 255, np.uint8),
                                    np.full((10, 10), 0.5, np.float32),
                                    np.zeros((0, 0), np.uint8)])
def test_mnist_preprocess_empty_canvas(canvas):
    x = mnist_preprocess(canvas)
    assert x.shape == (28, 28) and not x.any()


def test_mnist_preprocess_explicit_inversion_and_errors():
    img = _stroke_canvas()
    np.testing.assert_allclose(mnist_preprocess(255 - img, invert=True), mnist_preprocess(img),
                               atol=1e-6)
    assert not mnist_preprocess(img, invert=True).any()  # forced wrong way: nothing drawn
    with pytest.raises(ValueError, match="NaN"):
        mnist_preprocess(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="grayscale"):
        mnist_preprocess(np.zeros((4, 4, 2)))


def test_image_batch_is_nchw_in_unit_range():
    rgb = np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    x = image_batch(rgb)
    assert x.shape == (2, 3, 5, 7) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_allclose(x[1, 2, 4, 6], rgb[1, 4, 6, 2] / 255, rtol=1e-6)
    gray = image_batch(np.full((3, 4, 4), 255, np.uint8))
    assert gray.shape == (3, 1, 4, 4) and np.all(gray == 1.0)
    with pytest.raises(ValueError, match=r"\(N, H, W\) or \(N, H, W, C\)"):
        image_batch(np.zeros((4, 4), np.uint8))


def test_center_square_takes_the_middle_and_fit_within_keeps_the_aspect():
    img = np.zeros((40, 100, 3), np.uint8)
    img[:, 30:70] = 200  # the centre 40x40 square is uniform
    img[:, :30], img[:, 70:] = 10, 90  # the sides must not leak in
    small = center_square(img, 8)
    assert small.shape == (8, 8, 3) and np.all(small == 200)
    tall = np.zeros((300, 60, 3), np.uint8)
    assert fit_within(tall, 100).shape == (100, 20, 3)
    assert fit_within(img, 256).shape == (102, 256, 3)
    assert resize(img, (4, 10), "nearest").shape == (4, 10, 3)
    with pytest.raises(ValueError, match="resample must be one of"):
        resize(img, 4, "cubic-ish")
    with pytest.raises(ValueError, match="the image is empty"):
        center_square(np.zeros((0, 5, 3), np.uint8), 4)

"""Array transforms for training and for the demos (a drawn digit, a photo of any shape as
a network input); NumPy only (Pillow for resizing).

Batch transforms are vectorised over the batch (one gather, no per-image Python loop)
because they run every training step. Layout is channels-last ("NHWC", what loaders
return) unless `layout="NCHW"` is given; (N, H, W) grayscale batches count as NHWC.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MNIST_SIZE, MNIST_BOX = 28, 20  # LeCun et al.: digits fit a 20x20 box, centred in 28x28


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _spatial_axes(x: np.ndarray, layout: str) -> tuple[int, int]:
    if layout == "NHWC" and x.ndim in (3, 4):
        return 1, 2
    if layout == "NCHW" and x.ndim == 4:
        return 2, 3
    raise ValueError(f"expected a batch (N, H, W[, C]) for NHWC or (N, C, H, W) for NCHW, "
                     f"got shape {x.shape} with layout={layout!r}")


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int | np.integer):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


def to_float(x: np.ndarray) -> np.ndarray:
    """float32 in [0, 1] from uint8 (divided by 255); float input is only cast."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x.astype(np.float32) * np.float32(1 / 255)
    return x.astype(np.float32, copy=False)


def normalize(x: np.ndarray, mean: float | Sequence[float], std: float | Sequence[float], *,
              axis: int = -1) -> np.ndarray:
    """(x - mean) / std per channel along `axis` (-1 for HWC, 1 for NCHW), as float32.

    uint8 input is scaled to [0, 1] first, so mean/std are given in [0, 1] units (the
    usual published values, e.g. CIFAR-10's per-channel mean ~0.49).
    """
    x = to_float(x)
    mean_a = np.asarray(mean, np.float32)
    std_a = np.asarray(std, np.float32)
    if np.any(std_a <= 0):
        raise ValueError(f"normalize: std must be positive, got {std}")
    shape = [1] * x.ndim
    if mean_a.ndim or std_a.ndim:
        shape[axis] = x.shape[axis]
    for name, v in (("mean", mean_a), ("std", std_a)):
        if v.ndim and v.shape != (x.shape[axis],):
            raise ValueError(f"normalize: {name} has {v.size} values but x has "
                             f"{x.shape[axis]} channels on axis {axis} (shape {x.shape})")
    return (x - mean_a.reshape(shape if mean_a.ndim else ())) / \
        std_a.reshape(shape if std_a.ndim else ())


def mean_std(images: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (in [0, 1] units for uint8) over all other axes."""
    axes = tuple(a for a in range(images.ndim) if a != axis % images.ndim)
    x = np.asarray(images, np.float64) / (255.0 if images.dtype == np.uint8 else 1.0)
    return x.mean(axis=axes).astype(np.float32), x.std(axis=axes).astype(np.float32)


def random_crop(batch: np.ndarray, size: int | Sequence[int], padding: int = 0,
                rng: np.random.Generator | int | None = None, *, layout: str = "NHWC",
                fill: float = 0) -> np.ndarray:
    """Pad each image by `padding` (value `fill`) and crop a random `size` window.

    Offsets are drawn independently per image (rows, then columns); the crop is one
    fancy-index gather over the whole batch.
    """
    _spatial_axes(batch, layout)  # validates the shape
    th, tw = _pair(size)
    if padding < 0:
        raise ValueError(f"random_crop: padding must be >= 0, got {padding}")
    x = batch if layout == "NHWC" else np.moveaxis(batch, 1, -1)  # gather in NHWC
    if padding:
        pad = [(0, 0)] * x.ndim
        pad[1] = pad[2] = (padding, padding)
        x = np.pad(x, pad, constant_values=fill)
    n, H, W = x.shape[:3]
    if th > H or tw > W or th < 1 or tw < 1:
        raise ValueError(f"random_crop: crop {th}x{tw} does not fit images of "
                         f"{H - 2 * padding}x{W - 2 * padding} padded by {padding}")
    g = _rng(rng)
    oy = g.integers(0, H - th + 1, size=n)
    ox = g.integers(0, W - tw + 1, size=n)
    rows = (oy[:, None] + np.arange(th))[:, :, None]  # (n, th, 1)
    cols = (ox[:, None] + np.arange(tw))[:, None, :]  # (n, 1, tw)
    out = x[np.arange(n)[:, None, None], rows, cols]  # (n, th, tw[, C])
    return out if layout == "NHWC" else np.ascontiguousarray(np.moveaxis(out, -1, 1))


def random_hflip(batch: np.ndarray, rng: np.random.Generator | int | None = None,
                 p: float = 0.5, *, layout: str = "NHWC") -> np.ndarray:
    """Mirror each image left-right with probability p (a new array; input untouched)."""
    _, w_ax = _spatial_axes(batch, layout)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"random_hflip: p must be in [0, 1], got {p}")
    flip = _rng(rng).random(len(batch)) < p
    out = batch.copy()
    out[flip] = np.flip(batch[flip], axis=w_ax)
    return out


def to_chw(x: np.ndarray) -> np.ndarray:
    """(H, W, C) -> (C, H, W) and (N, H, W, C) -> (N, C, H, W), contiguous."""
    if x.ndim not in (3, 4):
        raise ValueError(f"to_chw expects (H, W, C) or (N, H, W, C), got shape {x.shape}")
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


def image_batch(images: np.ndarray) -> np.ndarray:
    """Host images as a network's input: float32 (N, C, H, W) in [0, 1] from uint8 or
    float (N, H, W) grayscale (one channel) or (N, H, W, C) channels-last batches."""
    x = to_float(images)
    if x.ndim == 3:
        return np.ascontiguousarray(x[:, None])
    if x.ndim == 4:
        return to_chw(x)
    raise ValueError(f"image_batch expects (N, H, W) or (N, H, W, C) images, got shape "
                     f"{x.shape}")


_RESAMPLE = ("nearest", "bilinear", "bicubic", "lanczos")


def resize(img: np.ndarray, size: int | Sequence[int], resample: str = "bilinear"
           ) -> np.ndarray:
    """An (H, W[, C]) uint8 image resized to `size` (h, w) with Pillow's filter."""
    from PIL import Image

    if resample not in _RESAMPLE:
        raise ValueError(f"resample must be one of {_RESAMPLE}, not {resample!r}")
    h, w = _pair(size)
    if h < 1 or w < 1:
        raise ValueError(f"resize: the size must be positive, got {(h, w)}")
    flt = getattr(Image.Resampling, resample.upper())
    return np.asarray(Image.fromarray(np.asarray(img)).resize((w, h), flt))


def center_square(img: np.ndarray, size: int, resample: str = "lanczos") -> np.ndarray:
    """The largest centred square of an (H, W[, C]) image, resized to size x size: how
    a photo of any shape becomes a square classifier's input (CIFAR-10: 32)."""
    h, w = img.shape[:2]
    s = min(h, w)
    if s == 0:
        raise ValueError(f"center_square: the image is empty (shape {img.shape})")
    top, left = (h - s) // 2, (w - s) // 2
    return resize(img[top:top + s, left:left + s], size, resample)


def fit_within(img: np.ndarray, side: int, resample: str = "bilinear") -> np.ndarray:
    """An (H, W[, C]) image scaled so its longer side is `side`, keeping its aspect."""
    h, w = img.shape[:2]
    scale = side / max(h, w, 1)
    return resize(img, (max(1, round(h * scale)), max(1, round(w * scale))), resample)


def _gray01(img: np.ndarray) -> np.ndarray:
    """Any 2D/3D image array -> 2D float64 in [0, 1] (RGBA composited over white)."""
    x = np.asarray(img)
    if x.dtype == bool:
        x = x.astype(np.float64)
    elif np.issubdtype(x.dtype, np.integer):
        top = float(x.max()) if x.size else 0.0
        x = x.astype(np.float64) / (255.0 if top <= 255 else top)
    elif np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
        if x.size and not np.isfinite(x).all():
            raise ValueError("mnist_preprocess: image contains NaN or infinity")
        if x.size and x.max() > 1.0 + 1e-6:  # float data in 0..255
            x = x / 255.0
    else:
        raise ValueError(f"mnist_preprocess: unsupported dtype {x.dtype}")
    if x.ndim == 3 and x.shape[2] in (1, 3, 4):
        if x.shape[2] == 1:
            x = x[:, :, 0]
        else:
            lum = x[:, :, :3] @ np.array([0.299, 0.587, 0.114])
            x = lum if x.shape[2] == 3 else x[:, :, 3] * lum + (1.0 - x[:, :, 3])
    if x.ndim != 2:
        raise ValueError(f"mnist_preprocess: expected a grayscale (H, W) or (H, W, 1|3|4) "
                         f"image, got shape {np.shape(img)}")
    return np.clip(x, 0.0, 1.0)


def mnist_preprocess(img: np.ndarray, *, invert: bool | str = "auto",
                     threshold: float = 0.1) -> np.ndarray:
    """A drawn digit -> MNIST-style float32 (28, 28) in [0, 1], white ink on black.

    As in LeCun et al. (1998): crop to the ink, scale so the longer side is 20 px keeping
    the aspect ratio (antialiased), and place in 28x28 so the centre of mass is at pixel
    (14, 14) (where MNIST's lies; integer shift, so within 0.5 px; the digit is never
    cut off, which can pull a lopsided glyph off-centre). `invert="auto"` treats a light
    border as paper (dark ink on white) and inverts it; the background level is
    subtracted and contrast stretched. An empty canvas gives zeros.
    """
    x = _gray01(img)
    out = np.zeros((MNIST_SIZE, MNIST_SIZE), np.float32)
    if x.size == 0:
        return out
    border = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])
    bg = float(np.median(border))
    if invert == "auto":
        invert = bg > 0.5
    elif not isinstance(invert, bool):
        raise ValueError(f"invert must be True, False or 'auto', not {invert!r}")
    if invert:
        x, bg = 1.0 - x, 1.0 - bg
    peak = float(x.max())
    if peak - bg < threshold:  # nothing drawn (or only noise)
        return out
    x = np.clip((x - bg) / (peak - bg), 0.0, 1.0)
    rows = np.flatnonzero((x > threshold).any(axis=1))
    cols = np.flatnonzero((x > threshold).any(axis=0))
    crop = x[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    scale = MNIST_BOX / max(h, w)
    nh, nw = max(1, min(MNIST_BOX, round(h * scale))), max(1, min(MNIST_BOX, round(w * scale)))
    from PIL import Image

    small = np.asarray(Image.fromarray(crop.astype(np.float32)).resize(
        (nw, nh), Image.Resampling.BILINEAR), dtype=np.float64)
    small = np.clip(small, 0.0, 1.0)
    if small.max() <= 0:
        return out
    small /= small.max()
    mass = small.sum()
    cy = float((small.sum(axis=1) * np.arange(nh)).sum() / mass)
    cx = float((small.sum(axis=0) * np.arange(nw)).sum() / mass)
    top = int(np.clip(np.floor(MNIST_SIZE / 2 - cy + 0.5), 0, MNIST_SIZE - nh))
    left = int(np.clip(np.floor(MNIST_SIZE / 2 - cx + 0.5), 0, MNIST_SIZE - nw))
    out[top:top + nh, left:left + nw] = small
    return out

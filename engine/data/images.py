"""Decoding images with Pillow into NumPy arrays, with clear errors for bad input.

Images a user uploads are untrusted: the file type is sniffed by Pillow (never by the
name) and must be one of `IMAGE_FORMATS` (Pillow would otherwise also open EPS/PostScript,
handing it to Ghostscript: nothing uploaded is executed), the pixel count is checked from
the header before any pixel is decoded (so a small file claiming 50000x50000 pixels cannot
exhaust memory), and decoding errors become `ImageError` naming the source. 16-bit and
float images are scaled to 8 bits, not clipped (`_to_8bit`). Pillow is imported lazily: it
is only needed when images are actually read.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from typing import IO, Any

import numpy as np

DEFAULT_MAX_PIXELS = 40_000_000  # ~ a 7300x5500 photo; far beyond any demo input
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")  # what Pillow may open

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | IO[bytes]
_FORMAT_NAMES = {"WEBP": "WebP"}


class ImageError(ValueError):
    """The input is not a readable image, is corrupt, or is too large."""


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("reading images needs Pillow: pip install pillow "
                          "(or pip install 'demystify[web]')") from None
    return Image


def _describe(src: ImageSource) -> str:
    if isinstance(src, bytes | bytearray | memoryview):
        return f"<{len(src)} bytes>"
    if isinstance(src, str | os.PathLike):
        return str(src)
    return getattr(src, "name", "<file object>")


def _to_8bit(im: Any) -> Any:
    """A 16-bit, 32-bit integer or float greyscale image as 8-bit "L", scaled (Pillow's
    own convert clips: a 0..65535 gradient would turn white, a 0..1 float image black).

    16-bit: v / 257 (65535 -> 255). 32-bit integers: the same when they fit 0..65535,
    else their min..max. Floats: 0..1 -> 0..255, else their min..max; NaN -> 0."""
    Image = _pil()
    if not (im.mode.startswith("I;16") or im.mode in ("I", "F")):
        return im
    a = np.asarray(im).astype(np.float64)
    if im.mode == "F":
        a = np.where(np.isfinite(a), a, np.nan)
        lo, hi = (np.nanmin(a), np.nanmax(a)) if np.isfinite(a).any() else (0.0, 1.0)
        a = np.nan_to_num(a, nan=lo)
        scale = (0.0, 1.0) if 0.0 <= lo and hi <= 1.0 else (lo, hi)
    elif im.mode.startswith("I;16") or (a.min() >= 0 and a.max() <= 65535):
        scale = (0.0, 65535.0)
    else:
        scale = (a.min(), a.max())
    lo, hi = scale
    out = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "L")


def decode_data_url(url: str) -> bytes:
    """The bytes of a browser canvas's `data:image/...;base64,` URL (what the drawing
    widgets send); anything else is refused before Pillow sees it."""
    head, _, data = url.partition(",")
    if not head.startswith("data:image/") or ";base64" not in head:
        raise ImageError(f"not an image data URL (starts {url[:30]!r}); expected "
                         "'data:image/png;base64,...' as a canvas's toDataURL() gives")
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error as exc:
        raise ImageError(f"image data URL has invalid base64 ({exc})") from None


def decode_image(src: ImageSource, mode: str = "RGB", *,
                 max_pixels: int = DEFAULT_MAX_PIXELS, size: tuple[int, int] | None = None,
                 name: str | None = None,
                 formats: tuple[str, ...] = IMAGE_FORMATS) -> np.ndarray:
    """Decode to uint8: (H, W, 3) for mode "RGB", (H, W) for "L".

    Only `formats` are opened (Pillow's format names). Transparent images are composited
    over white (how a browser shows them), EXIF orientation is applied (phone photos),
    high bit depths are scaled to 8 bits, and `size=(H, W)` resizes with antialiasing.
    """
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L', not {mode!r}")
    Image = _pil()
    label = name or _describe(src)
    if isinstance(src, bytes | bytearray | memoryview):
        src = io.BytesIO(bytes(src))
    try:
        im = Image.open(src, formats=list(formats))
    except FileNotFoundError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{label}: image is too large ({exc})") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{label}: not an image in a format this reader accepts "
                         f"({', '.join(_FORMAT_NAMES.get(f, f) for f in formats)}); "
                         "convert it to PNG or JPEG") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{label}: image data is corrupt or truncated ({exc})") from None
    with im:
        w, h = im.size
        if w * h > max_pixels:
            raise ImageError(f"{label}: {w}x{h} = {w * h} pixels is over the limit of "
                             f"{max_pixels}; downscale it first or raise max_pixels")
        if w == 0 or h == 0:
            raise ImageError(f"{label}: image has no pixels ({w}x{h})")
        try:
            if "exif" in im.info and im.getexif().get(0x0112, 1) != 1:  # EXIF orientation
                from PIL import ImageOps

                im = ImageOps.exif_transpose(im)
            im = _to_8bit(im)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im = Image.alpha_composite(white, rgba)
            if im.mode != mode:
                im = im.convert(mode)
            if size is not None and (h, w) != tuple(size):
                im = im.resize((int(size[1]), int(size[0])), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"{label}: image data is corrupt or truncated ({exc})") from None
    return arr


def load_image(src: ImageSource, mode: str = "RGB", *,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An image as float32 in [0, 1], HWC: (H, W, 3) for "RGB", (H, W, 1) for "L".

    `src` is a path, the file's bytes, or a binary file object.
    """
    arr = decode_image(src, mode, max_pixels=max_pixels)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr.astype(np.float32) / np.float32(255.0)

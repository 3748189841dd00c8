"""Decoding images with Pillow into NumPy arrays, with clear errors for bad input.

Images a user uploads are untrusted: the file type is sniffed by Pillow (never by the
name), the pixel count is checked from the header before any pixel is decoded (so a
small file claiming 50000x50000 pixels cannot exhaust memory), and decoding errors
become `ImageError` naming the source. Pillow is imported lazily: it is only needed
when images are actually read.
"""

from __future__ import annotations

import io
import os
from typing import IO, Any

import numpy as np

DEFAULT_MAX_PIXELS = 40_000_000  # ~ a 7300x5500 photo; far beyond any demo input

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | IO[bytes]


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


def decode_image(src: ImageSource, mode: str = "RGB", *,
                 max_pixels: int = DEFAULT_MAX_PIXELS, size: tuple[int, int] | None = None,
                 name: str | None = None) -> np.ndarray:
    """Decode to uint8: (H, W, 3) for mode "RGB", (H, W) for "L".

    Transparent images are composited over white (how a browser shows them), EXIF
    orientation is applied (phone photos), and `size=(H, W)` resizes with antialiasing.
    """
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L', not {mode!r}")
    Image = _pil()
    label = name or _describe(src)
    if isinstance(src, bytes | bytearray | memoryview):
        src = io.BytesIO(bytes(src))
    try:
        im = Image.open(src)
    except FileNotFoundError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{label}: image is too large ({exc})") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{label}: not an image Pillow can read (unknown or unsupported "
                         "format)") from None
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

"""Quick starts for the static site: a page may offer a plain version of its demo on the
loading screen, answered by the engine while the page's worker is still importing Panel
(about half of a start), then hand what the user did there over to the full page.

A `QuickStart` names the pad the loading screen draws (the page's own canvas code,
webapp.canvas, with these settings), how to prepare (load the model, on the CPU: no
GPU pipelines to compile first) and how to read one drawing into a result line. The
site's boot code (tools/site/assets/boot.py) runs it; the full page takes the last drawing
with `take(slug)`. This module must not import Panel."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class QuickStart:
    title: str  # the pad's heading on the loading screen
    prepare: Callable[[], Any]  # -> state (a model), run once before the first reading
    read: Callable[[Any, str], dict[str, str]]  # (state, PNG data URL) -> label, detail
    canvas: dict[str, Any] = field(default_factory=dict)  # DrawCanvas settings


def _digits_prepare() -> Any:
    from webapp import digit_reader

    return digit_reader.load("cpu")


def _digits_read(net: Any, data_url: str) -> dict[str, str]:
    """The Digits page's own reading (webapp.digit_reader.read), its class and certainty."""
    from webapp import digit_reader

    _, probs, _ = digit_reader.read(net, data_url)
    pred = int(np.argmax(probs))
    return {"label": str(pred), "detail": f"{100 * float(probs[pred]):.1f}% sure"}


def _digits() -> QuickStart:
    from webapp.digit_reader import CANVAS

    return QuickStart("Draw a digit while the app loads", _digits_prepare, _digits_read,
                      CANVAS)


# page slug -> its quick start (a page with none starts as before)
QUICK_STARTS: dict[str, Callable[[], QuickStart]] = {"digits": _digits}

_HANDED: dict[str, dict[str, Any]] = {}


def hand_over(slug: str, drawing: dict[str, Any] | None) -> None:
    """Keep the quick pad's last drawing ({"image": data URL, "strokes": [[[x, y], ...]]})
    for the full page of `slug`."""
    if drawing and drawing.get("image"):
        _HANDED[slug] = {"image": str(drawing["image"]),
                         "strokes": [[[float(x), float(y)] for x, y in s]
                                     for s in drawing.get("strokes") or []]}


def take(slug: str) -> dict[str, Any] | None:
    """The drawing handed over for `slug` (once), or None."""
    return _HANDED.pop(slug, None)

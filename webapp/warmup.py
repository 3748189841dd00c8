"""Warm-ups for the static site, so a page's first result does not pay one-time costs.

Two moments: `WARM_UPS` run once on zeros while the page's worker is still importing
Panel (the GPU's pipelines), and the jobs pages queue with `after_render`, run once the
page's document is written, while the browser draws it and the worker would wait idle
(the digits page reads a sample drawing: Pillow's import, the model's load, the first
readbacks).

On WebGPU the first use of each compute pipeline compiles it in the browser's GPU
process, and on a software adapter (SwiftShader) that takes seconds: the first drawn
digit waited ~6 s for LeNet-5's pipelines. Encoding the same work early (no readback:
nothing here waits for the GPU) lets the GPU process compile them meanwhile, so the
first real result finds them built (the device caches pipelines by shader, entry point
and constants; weights and values do not matter, only shapes). This module must not
import Panel: the site runs it before Panel's settings are applied.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable

import numpy as np


def _submit(device: str) -> None:
    """Hand what was encoded to the GPU now, without waiting for it."""
    from engine import backends

    backends.get(device).dev.flush()


def digits(device: str) -> None:
    """What webapp.digits runs per drawing: LeNet-5 layer by layer, then a softmax."""
    from engine import Tensor, nn, no_grad
    from engine.models import lenet5

    with nn.init.no_init():  # the weights do not matter, and drawing them is slow here
        net = lenet5(device).eval()
    h = Tensor(np.zeros((1, 1, 28, 28), np.float32), device=device)
    with no_grad():
        for layer in net.children():
            h = layer(h)
        nn.functional.softmax(h, dim=-1)
    _submit(device)


# page slug -> warm-up (a page with none starts as before)
WARM_UPS: dict[str, Callable[[str], None]] = {"digits": digits}


_AFTER_RENDER: list[Callable[[], Awaitable[None]]] = []


def after_render(job: Callable[[], Awaitable[None]]) -> None:
    """Queue `job` (an async callable) for when the static page's document is written
    (`run_after_render`, which the site's boot code calls). Only in the browser: a
    server has no such moment (and would queue a job for every session)."""
    if sys.platform == "emscripten":
        _AFTER_RENDER.append(job)


async def run_after_render() -> None:
    """Run the queued jobs one after the other; a failure costs only the head start."""
    while _AFTER_RENDER:
        job = _AFTER_RENDER.pop(0)
        try:
            await job()
        except Exception as exc:  # noqa: BLE001
            logging.getLogger("demystify.webapp").warning("warm-up %r failed: %s", job, exc)

"""The GPU backend: WGSL compute shaders (shaders/*.wgsl) on a Device.

Importing this package registers the "gpu" device with `engine.backends`; the backend is
created lazily on first use, and creation fails (so "auto" falls back to NumPy) when wgpu
finds no adapter or when DEMYSTIFY_NO_GPU=1 is set. In the browser (Pyodide) the Device is
`browser.BrowserDevice` over WebGPU (see browser.py for `await browser.init()`).
"""

from __future__ import annotations

import sys

from .. import register
from .array import GpuArray
from .backend import GpuBackend
from .device import Device, Kernel


def _factory() -> GpuBackend:
    if sys.platform == "emscripten":
        from .browser import create_sync
        return GpuBackend(create_sync())
    return GpuBackend()


register("gpu", _factory)

__all__ = ["GpuArray", "GpuBackend", "Device", "Kernel"]

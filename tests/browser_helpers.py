"""Shared pieces of the browser tests: headless Chromium with WebGPU, a loopback server.

Chromium is Debian's (/usr/bin/chromium, or DEMYSTIFY_CHROMIUM), driven by Playwright's
Python package; we never run `playwright install`. WebGPU runs on SwiftShader (Chrome's
CPU Vulkan), so no GPU is needed; `navigator.gpu` exists only in secure contexts, hence
pages are served from http://127.0.0.1, never opened as file:// or data: URLs.

A missing prerequisite skips the test, except under CI (env `CI` set), where it fails:
CI installs chromium and runs `npm ci`, so a missing piece there is a broken setup.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("DEMYSTIFY_CHROMIUM", "/usr/bin/chromium")
NODE_PYODIDE = ROOT / "node_modules" / "pyodide"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
    # WebGPU headless on Chrome's software Vulkan (SwiftShader); no GPU needed
    "--enable-unsafe-webgpu", "--enable-features=Vulkan", "--use-angle=swiftshader",
    "--use-webgpu-adapter=swiftshader",
]

# Resolves to the adapter's description, or null when WebGPU gives no adapter.
PROBE_WEBGPU = """async () => {
  if (!navigator.gpu) return null;
  const a = await navigator.gpu.requestAdapter();
  if (!a) return null;
  const i = a.info || {};
  return [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(" ");
}"""


def require(ok: Any, reason: str) -> None:
    """Skip with `reason` unless ok; under CI fail instead (the setup is broken)."""
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so browser tests must run)")
    pytest.skip(reason)


@contextlib.contextmanager
def chromium(args: list[str] | None = None) -> Iterator[Any]:
    """A headless Chromium (Playwright Browser) with WebGPU flags (or `args` instead of
    CHROMIUM_ARGS); skips when unavailable."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        require(False, "the playwright package is not installed (pip install playwright)")
    require(Path(CHROMIUM).is_file(), f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=CHROMIUM_ARGS if args is None else args)
        except Error as exc:
            require(False, f"Chromium at {CHROMIUM} did not start: {exc}")
        try:
            yield browser
        finally:
            browser.close()


def webgpu_adapter(page: Any) -> str:
    """The WebGPU adapter's description on `page` (already on a 127.0.0.1 URL); skips (or
    fails under CI) when there is none."""
    name = page.evaluate(PROBE_WEBGPU)
    require(name is not None, "Chromium gives no WebGPU adapter (navigator.gpu missing or "
            "requestAdapter() returned null with SwiftShader flags)")
    return str(name)

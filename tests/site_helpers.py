"""Shared pieces of the static-site tests and benchmark: building a site, serving it on
loopback, and visiting its pages in Chromium while recording everything that went wrong
(console errors, page errors, failed or refused requests, HTTP errors).

A static page is ready when its loading panel is gone (`<html data-demystify="ready">`,
set by tools/site/assets/loader.js once Panel has drawn the live app); a page whose app
could not start says so in `window.demystifyLoad.error`, which fails the wait at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.browser_helpers import CHROMIUM_ARGS, ROOT, require

LOAD_TIMEOUT_MS = 300_000  # a cold page on a busy 2-core machine: Pyodide, Panel, the app
# No WebGPU: the same Chromium without the flags that give it SwiftShader's WebGPU.
NO_WEBGPU_ARGS = [a for a in CHROMIUM_ARGS if "webgpu" not in a.lower()
                  and "vulkan" not in a.lower()] + ["--disable-features=WebGPU"]
READY = ("document.documentElement.dataset.demystify === 'ready' || "
         "!!(window.demystifyLoad && window.demystifyLoad.error)")


def pyodide_release() -> Path:
    """PYODIDE_DIST, the full Pyodide release the end-to-end tests build from (skips, or
    fails under CI, without it)."""
    raw = os.environ.get("PYODIDE_DIST", "")
    require(raw and (Path(raw) / "pyodide-lock.json").is_file(),
            "PYODIDE_DIST does not name a full Pyodide release folder (.ci/run sets it to "
            "../shared/pyodide/0.28.0); the npm package has only the core runtime")
    return Path(raw).resolve()


def online_version() -> str:
    """The Pyodide version of the shared online build: PYODIDE_DIST's when it names a
    release (the hosted pages' CDN requests are answered from it), else 0.28.0."""
    raw = os.environ.get("PYODIDE_DIST", "")
    pkg = Path(raw) / "package.json"
    return json.loads(pkg.read_text())["version"] if raw and pkg.is_file() else "0.28.0"


def build_site(out: Path, *args: str) -> Path:
    """`python build.py site --out OUT ARGS` (this interpreter: the tests run in .venv)."""
    proc = subprocess.run([sys.executable, "-m", "tools.site", "site", "--out", str(out),
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """The folder on a loopback HTTP server; its base URL (ends with /)."""
    from tests.data_helpers import LocalServer

    server = LocalServer(folder)
    try:
        yield server.url
    finally:
        server.close()


class Visit:
    """One page of a served site in `context`, with every problem it had.

    `local` says which URLs are the site's own (default: under `base`); any other request
    is recorded as foreign (the context refuses or answers it: see the tests)."""

    def __init__(self, context: Any, base: str, path: str,
                 local: Callable[[str], bool] | None = None) -> None:
        self.base = base
        self.local = local or (lambda url: url.startswith(base))
        self.errors: list[str] = []
        self.messages: list[str] = []  # every console line, for a failure's report
        self.foreign: list[str] = []
        self.http_errors: list[str] = []
        self.page = context.new_page()
        self.page.set_default_timeout(60_000)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("request", self._request)
        self.page.on("response", lambda r: r.status >= 400 and self.http_errors.append(
            f"{r.status} {r.url}"))
        self.page.on("requestfailed", self._failed)
        self.page.goto(base + path)

    def _console(self, msg: Any) -> None:
        self.messages.append(f"{msg.type}: {msg.text}"[:500])
        if msg.type == "error":
            self.errors.append(msg.text)

    def _failed(self, request: Any) -> None:
        # ERR_ABORTED: cancelled, as when a page goes on to its ?embed=true variant
        if self.local(request.url) and "ERR_ABORTED" not in (request.failure or ""):
            self.http_errors.append(f"failed {request.url}: {request.failure}")

    def _request(self, request: Any) -> None:
        url = request.url
        if not url.startswith(("data:", "blob:")) and not self.local(url):
            self.foreign.append(url)

    def ready(self, timeout_ms: int = LOAD_TIMEOUT_MS) -> dict[str, Any]:
        """Wait until the app is live; its load record (window.demystifyLoad)."""
        self.page.wait_for_function(READY, timeout=timeout_ms)
        load = self.page.evaluate("window.demystifyLoad")
        assert not load.get("error"), f"the app did not start: {load['error']}; " \
            f"console: {self.errors[-5:]}"
        return load

    def check(self, shot: str | None = None) -> None:
        """No console or page error, no request left the machine, no failed request."""
        if shot:
            self.screenshot(f"site_{shot}")
        assert not self.foreign, f"requests to other hosts: {self.foreign[:8]}"
        assert not self.http_errors, f"failed requests: {self.http_errors[:8]}"
        assert not self.errors, f"console errors: {self.errors[:8]}"

    def screenshot(self, name: str) -> None:
        folder = ROOT / "tests" / "screenshots"
        folder.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(folder / f"{name}.png"), full_page=True)

    def report(self) -> str:
        """What the page said, for a failed step's message."""
        return (f"console errors: {self.errors[-8:]}; last console lines: "
                f"{self.messages[-15:]}; page errors and requests: {self.http_errors[:4]}")

    def close(self) -> None:
        self.page.close()

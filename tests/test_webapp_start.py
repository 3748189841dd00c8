"""The web app's start page is served by `panel serve` and needs nothing from the internet."""

from __future__ import annotations

import html
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rendered_text(url: str) -> str:
    """The text of every model in the server-side document of a new session at `url`."""
    import panel.models  # noqa: F401  (registers Panel's Bokeh models for deserialisation)
    from bokeh.client import pull_session

    with pull_session(url=url) as session:
        texts = [getattr(m, "text", None) for m in session.document.models]
    return "\n".join(html.unescape(t) for t in texts if isinstance(t, str))


def test_start_page_is_served():
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "panel",
        "serve",
        "webapp/app.py",
        "--port",
        str(port),
        "--address",
        "127.0.0.1",
        f"--allow-websocket-origin=127.0.0.1:{port}",
    ]
    url = f"http://127.0.0.1:{port}/app"
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

        def server_log() -> str:
            log.seek(0)
            return log.read().decode(errors="replace")[-4000:]

        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            status, body = None, ""
            while time.monotonic() < deadline:
                if server.poll() is not None:
                    raise AssertionError(
                        f"panel serve exited with code {server.returncode}:\n{server_log()}"
                    )
                try:
                    with urllib.request.urlopen(url, timeout=30) as resp:
                        status, body = resp.status, resp.read().decode("utf-8", "replace")
                    break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    time.sleep(0.5)
            else:
                raise AssertionError(
                    f"{url} did not answer within {STARTUP_TIMEOUT_S} s:\n{server_log()}"
                )

            assert status == 200, f"GET {url} -> {status}"
            assert "Bokeh" in body and "docs_json" in body, (
                f"no Bokeh document in the page:\n{body[:2000]}"
            )
            assert "<title>Demystify</title>" in body, "the page title is missing"
            # Offline: the page must not pull scripts, styles or fonts from the internet.
            for external in (
                "cdn.bokeh.org",
                "cdn.holoviz.org",
                "fonts.googleapis.com",
                "unpkg.com",
                "cdn.jsdelivr.net",
            ):
                assert external not in body, f"page references {external}; it must work offline"

            # The content arrives over the websocket: pull the document like a browser does.
            text = rendered_text(url)
            assert "Demystify — deep learning you can touch" in text
            for demo in ("Digits", "CIFAR-10", "Movies", "Art restoration", "Playground", "Engine"):
                assert f"<h3>{demo}</h3>" in text, f"demo card {demo!r} missing"
            assert text.count("coming soon") == 6
            assert (
                "engine device:" in text or "engine unavailable" in text or ("engine error" in text)
            ), "device badge missing"
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)

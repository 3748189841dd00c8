"""The web app's server serves every page, and no page needs anything from the internet.

(The browser tests in test_webapp_browser.py drive the pages; this one needs no browser.)
"""

from __future__ import annotations

import html
import urllib.request

from webapp.server import subprocess_server

STARTUP_TIMEOUT_S = 60


def rendered_text(url: str) -> str:
    """The text of every model in the server-side document of a new session at `url`."""
    import panel.models  # noqa: F401  (registers Panel's Bokeh models for deserialisation)
    from bokeh.client import pull_session

    with pull_session(url=url) as session:
        texts = [getattr(m, "text", None) for m in session.document.models]
    return "\n".join(html.unescape(t) for t in texts if isinstance(t, str))


PAGES = ("app", "digits", "cifar10", "movies", "art", "playground", "engine", "sequences")


def test_every_page_is_served():
    with subprocess_server(STARTUP_TIMEOUT_S) as server:
        base = server.base
        with urllib.request.urlopen(base + "/", timeout=30) as resp:
            assert resp.url.endswith("/app"), "/ should redirect to the start page"
        for name in PAGES:
            with urllib.request.urlopen(f"{base}/{name}", timeout=60) as resp:
                status, body = resp.status, resp.read().decode("utf-8", "replace")
            assert status == 200, f"GET /{name} -> {status}"
            assert "Bokeh" in body and "docs_json" in body, f"/{name}: no Bokeh document"
            assert "<title>Demystify" in body, f"/{name}: the page title is missing"
            # Offline: no scripts, styles or fonts from the internet.
            for external in ("cdn.bokeh.org", "cdn.holoviz.org", "fonts.googleapis.com",
                             "unpkg.com", "cdn.jsdelivr.net", "esm.sh"):
                assert external not in body, f"/{name} references {external}"

        # The content arrives over the websocket: pull the document like a browser does.
        text = rendered_text(base + "/app")
        assert "Demystify — deep learning you can touch" in text
        for demo in ("Digits", "CIFAR-10", "Movies", "Art restoration", "Playground", "Engine",
                     "Sequences"):
            assert f"<h3>{demo}</h3>" in text, f"demo card {demo!r} missing"
        assert "CPU: " in text or "GPU: " in text or "engine unavailable" in text, \
            "device badge missing"
        assert "Traceback" not in server.log(), server.log()

"""The hosted (online) static site end to end, as `--pwa` builds it (its caching service
worker registers and runs on every page): it names the CDNs; here each CDN URL is
answered from the local Pyodide release or the installed Panel/Bokeh by request
interception, so every URL it names is proven to resolve to the file it must be; any other
request is refused. Every page of the app's registry, as in tests/test_browser_site.py
(its own module: Playwright's sync API allows one instance at a time, and that module's
last browser lives until it ends), on WebGPU. What differs from the offline build is only
where the files come from, so the pages whose actions cost a minute of SwiftShader each
open to their live app here (HOSTED_ACTIONS), and the offline build drives them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from tests.browser_helpers import CHROMIUM_ARGS, chromium
from tests.site_helpers import Visit, online_version, pyodide_release, serve
from tests.test_browser_site import (
    ACTIONS,
    ONLY_LOOPBACK,
    SLUGS,
    page_path,
    run_page,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
# The pages whose action runs here; the others (CIFAR-10, Art, Playground, Sequences: a
# minute of SwiftShader WebGPU each) open to their live app on WebGPU, every URL resolved
# and no error, and the offline build drives their actions in both modes.
HOSTED_ACTIONS = {slug: ACTIONS[slug] for slug in ("app", "digits", "movies", "engine")}


def cdn_files() -> list[tuple[re.Pattern[str], Callable[[re.Match[str]], Path]]]:
    """Which local file answers each CDN URL the hosted build names."""
    import bokeh
    import panel

    release = pyodide_release()
    panel_dist = Path(panel.__file__).parent / "dist"
    bokeh_js = Path(bokeh.__file__).parent / "server" / "static" / "js"
    version = online_version()  # the shared online build's: the release's own
    return [
        (re.compile(rf"https://cdn\.jsdelivr\.net/pyodide/v{re.escape(version)}/full/"
                    r"([^/?#]+)"), lambda m: release / m.group(1)),
        (re.compile(r"https://cdn\.holoviz\.org/panel/[^/]+/dist/([^?#]+)"),
         lambda m: panel_dist / m.group(1)),
        (re.compile(r"https://cdn\.bokeh\.org/bokeh/release/([^?#]+?)-\d+\.\d+\.\d+"
                    r"((?:\.min)?\.js)"), lambda m: bokeh_js / (m.group(1) + m.group(2))),
    ]


@pytest.fixture(scope="module")
def hosted(online_site) -> Iterator[tuple[str, Any, list[str]]]:
    """The online build (tests/conftest.py's, Pyodide = the local release's version) and a
    Chromium context whose CDN requests are answered from local files; unknown URLs are
    refused. The build's PWA service worker runs: what it fetches is intercepted too."""
    out = online_site
    rules, answered = cdn_files(), []  # from PYODIDE_DIST's release (skips without it)

    def answer(route: Any) -> None:
        url = route.request.url
        if url.startswith(base):
            route.continue_()
            return
        for pattern, local in rules:
            m = pattern.match(url)
            if m:
                path = local(m)  # the URL's path, decoded (es-module-shims@%5E1.10.0)
                path = Path(unquote(str(path)))
                if path.is_file():
                    answered.append(url)
                    route.fulfill(path=str(path), headers={
                        "Access-Control-Allow-Origin": "*"})
                else:
                    route.fulfill(status=404, body=f"{path} is not in the local copy")
                return
        route.abort()

    with serve(out) as base, chromium(CHROMIUM_ARGS + [ONLY_LOOPBACK]) as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.route("**/*", answer)
        yield base, context, answered
        context.close()


@pytest.mark.parametrize("slug", SLUGS)
def test_hosted_page(hosted, slug, tmp_path):
    base, context, answered = hosted
    cdns = ("https://cdn.jsdelivr.net/", "https://cdn.holoviz.org/", "https://cdn.bokeh.org/")
    v = Visit(context, base, page_path(slug),
              local=lambda url: url.startswith((base, *cdns)))
    try:
        run_page(v, slug, tmp_path, "webgpu", actions=HOSTED_ACTIONS, shot=f"hosted_{slug}")
        seen = set(answered)
        assert any(u.startswith(cdns[0]) and u.endswith("pyodide.asm.wasm") for u in seen)
        assert any(u.startswith(cdns[1]) for u in seen) and \
            any(u.startswith(cdns[2]) for u in seen), sorted(seen)[:10]
        # the PWA: the page registered the build's caching service worker for the site
        assert v.page.evaluate("async () => (await navigator.serviceWorker"
                               ".getRegistration())?.scope") == base
    finally:
        v.close()

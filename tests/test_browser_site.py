"""The static site end to end: every page of a real build in headless Chromium, driven as
a user would, on WebGPU (SwiftShader) and again with WebGPU unavailable (the engine then
computes with NumPy and the page says so).

The offline build (from PYODIDE_DIST, the full Pyodide release .ci/run names) must ask no
other host for anything: Chromium resolves no host name but 127.0.0.1, and any request to
another host fails the test, as does a console error, a page error or a failed request.
The hosted (online) build names the CDNs; here each CDN URL is answered from the local
Pyodide release or the installed Panel/Bokeh by request interception, so every URL it
names is proven to resolve to the file it must be. One build of each per test session.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from tests.browser_helpers import CHROMIUM_ARGS, ROOT, chromium
from tests.site_helpers import (
    LOAD_TIMEOUT_MS,
    NO_WEBGPU_ARGS,
    Visit,
    build_site,
    pyodide_release,
    serve,
)
from tests.test_webapp_browser import (
    LOSS_POINTS,
    classify_upload,
    draw,
    rate_films,
    text_of,
    upload_refused,
    wait_text,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STEP_S = 180  # one interaction, in Python in the worker (WebAssembly), on a busy machine
ONLY_LOOPBACK = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


# -- builds and browsers ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def offline(tmp_path_factory) -> Iterator[str]:
    out = build_site(tmp_path_factory.mktemp("site") / "offline", "--offline",
                     "--pyodide-dist", str(pyodide_release()))
    with serve(out) as url:
        yield url


@pytest.fixture(scope="module", params=["webgpu", "numpy"])
def mode(request) -> Iterator[tuple[str, Any]]:
    """(mode, browser context): one Chromium and one context (one HTTP cache) per mode."""
    args = CHROMIUM_ARGS if request.param == "webgpu" else NO_WEBGPU_ARGS
    with chromium(args + [ONLY_LOOPBACK]) as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        yield request.param, context
        context.close()


@pytest.fixture
def visit(offline, mode) -> Iterator[Callable[[str], Visit]]:
    opened: list[Visit] = []

    def open_(path: str) -> Visit:
        v = Visit(mode[1], offline, path)
        opened.append(v)
        return v

    yield open_
    for v in opened:
        v.close()


def ready(v: Visit, mode: str, badge: bool = True) -> None:
    """Wait for the live app; it computes where the mode says, and says so."""
    load = v.ready()
    if mode == "webgpu":
        assert load["webgpu"] is True and load["adapter"], load
        assert v.page.locator(".demystify-notice").count() == 0
        if badge:
            assert text_of(v.page, ".device-badge").startswith("GPU: "), \
                text_of(v.page, ".device-badge")
    else:
        assert load["webgpu"] is False and load["reason"], load
        notice = v.page.locator(".demystify-notice")
        assert notice.is_visible() and "No WebGPU" in notice.inner_text()
        if badge:
            assert "(no GPU)" in text_of(v.page, ".device-badge")


# -- what each page must do ------------------------------------------------------------------

def app_page(v: Visit, tmp_path: Path) -> None:
    cards = v.page.locator(".demo-card")
    hrefs = [cards.nth(i).get_attribute("href") for i in range(cards.count())]
    assert hrefs == [f"./{slug}" for slug in SLUGS[1:]]
    for href in hrefs:  # ./digits works on a static host: a stub redirects to digits.html
        stub = v.page.request.get(v.base + href[2:] + "/")
        assert stub.ok and f"../{href[2:]}.html" in stub.text(), href


def digits_page(v: Visit, tmp_path: Path) -> None:
    v.page.locator("canvas.dc-canvas").wait_for()
    draw(v.page, [(70, 60), (210, 60), (120, 240)])
    wait_text(v.page, ".prediction", r"^7$", STEP_S)


def cifar10_page(v: Visit, tmp_path: Path) -> None:
    wait_text(v.page, ".top5", r"%", STEP_S)  # the first test image is classified on load
    classify_upload(v.page, tmp_path, STEP_S)


def movies_page(v: Visit, tmp_path: Path) -> None:
    rate_films(v.page, STEP_S)


def art_page(v: Visit, tmp_path: Path) -> None:
    v.page.locator(".damage-button button").click()
    damaged = float(wait_text(v.page, ".psnr-damaged", r"\d", STEP_S))
    v.page.locator(".restore-button button").click()
    restored = float(wait_text(v.page, ".psnr-restored", r"\d", STEP_S))
    assert restored > damaged + 3, (damaged, restored)


def playground_page(v: Visit, tmp_path: Path) -> None:
    """Train (the curves grow epoch by epoch), then Cancel: the run stops before its end."""
    v.page.locator(".train-button button").click()
    wait_text(v.page, ".run-status", r"epoch \d+/30", STEP_S)
    # 800 points / 64 per batch = 13 steps per epoch, streamed to the page's curves
    v.page.wait_for_function(f"({LOSS_POINTS})() >= 13", timeout=STEP_S * 1000)
    v.page.locator(".cancel-button button").click()
    done = wait_text(v.page, ".run-status", r"cancelled|finished|failed", STEP_S)
    assert "cancelled" in done, done


def engine_page(v: Visit, tmp_path: Path) -> None:
    v.page.locator("input[type=file]").set_input_files(
        str(ROOT / "webapp" / "models" / "lenet5.onnx"))
    ran = wait_text(v.page, ".onnx-result", r"ran on", STEP_S)
    assert "MNIST" in ran
    assert "every op is supported" in text_of(v.page, ".onnx-report")
    err = upload_refused(v.page, tmp_path / "corrupt.onnx",
                         b"\x08\x07this is not a protobuf" * 20, r"corrupt\.onnx")
    assert "Could not use" in err


def sequences_page(v: Visit, tmp_path: Path) -> None:
    """Draw a 1: the shipped LSTM and attention models read it row by row (training them
    here is the server tests' part: minutes of WebAssembly)."""
    v.page.locator("canvas.dc-canvas").first.wait_for()
    draw(v.page, [(150, 40), (145, 240)])
    result = wait_text(v.page, ".rows-result", r"LSTM.*attention", STEP_S)
    assert "shipped" in result and result.count("1") >= 2, result


def registered_pages() -> list[str]:
    """The pages the site has: the start page and the app's registry, in its order (a
    page added to webapp.common.PAGES is tested here with no change to this file)."""
    from webapp.common import PAGES as REGISTRY

    return ["app"] + [slug for slug, _, _ in REGISTRY]


SLUGS = registered_pages()
# What a user does on each page (a registered page not named here is still opened on
# every build and mode: its app must start with no error, console error or failed or
# foreign request; its own interaction belongs here).
ACTIONS: dict[str, Callable[[Visit, Path], None]] = {
    "app": app_page, "digits": digits_page, "cifar10": cifar10_page, "movies": movies_page,
    "art": art_page, "playground": playground_page, "engine": engine_page,
    "sequences": sequences_page,
}
QUERIES = {  # the largest network for 30 epochs: still running when Cancel lands
    "playground": "?data=moons&epochs=30&width=256&depth=8",
}


def page_path(slug: str) -> str:
    return f"{slug}.html{QUERIES.get(slug, '')}"


def run_page(v: Visit, slug: str, tmp_path: Path, mode: str, badge: bool = True) -> None:
    ready(v, mode, badge)
    action = ACTIONS.get(slug)
    if action is not None:
        action(v, tmp_path)
    v.check(f"{slug}_{mode}")


# -- the offline build -----------------------------------------------------------------------

@pytest.mark.parametrize("slug", SLUGS)
def test_offline_page(visit, mode, slug, tmp_path):
    run_page(visit(page_path(slug)), slug, tmp_path, mode[0])


def test_offline_embed_shows_only_the_demo(visit, mode, tmp_path):
    """?embed=true (what slides use, through the ./digits stub; dark here): the page
    prerendered as only the demo, and the demo works. Drawn on as soon as the canvas
    shows, as a visitor would: the prerendered canvas, a dead picture, stays hidden until
    the live one replaces it (a stroke on it was lost)."""
    v = visit("digits/?embed=true&theme=dark")
    v.page.locator("canvas.dc-canvas").wait_for(timeout=LOAD_TIMEOUT_MS)
    digits_page(v, tmp_path)
    ready(v, mode[0], badge=False)
    v.check(f"digits_embed_{mode[0]}")
    assert v.page.url.split("?")[0].endswith("/digits-embed.html")
    assert v.page.locator("#header").count() == 0
    assert v.page.locator(".embed-button").count() == 0
    assert v.page.evaluate("getComputedStyle(document.documentElement).backgroundColor") \
        == "rgb(18, 18, 18)"


def test_offline_dark_theme(visit, mode, tmp_path):
    """Dark as Panel's own dark page is: the app, and around it the <html> theme and
    background, the template's theme stylesheets and header (pages are prerendered
    light when the site is built)."""
    v = visit("cifar10.html?theme=dark")
    run_page(v, "cifar10", tmp_path, mode[0])
    page = v.page
    assert page.evaluate("document.documentElement.dataset.bsTheme") == "dark"
    assert page.evaluate("getComputedStyle(document.documentElement).backgroundColor") == \
        "rgb(18, 18, 18)"
    assert "navbar-dark" in page.locator("#header").get_attribute("class")
    themes = page.evaluate("[...document.querySelectorAll('link[rel=stylesheet]')]"
                           ".map(l => l.href).filter(h => h.includes('/theme/'))")
    assert themes and all(re.search(r"/theme/(bootstrap_)?dark\.css", t) for t in themes)


# -- the hosted build ------------------------------------------------------------------------

def cdn_files() -> list[tuple[re.Pattern[str], Callable[[re.Match[str]], Path]]]:
    """Which local file answers each CDN URL the hosted build names."""
    import bokeh
    import panel

    release = pyodide_release()
    panel_dist = Path(panel.__file__).parent / "dist"
    bokeh_js = Path(bokeh.__file__).parent / "server" / "static" / "js"
    version = __import__("json").loads((release / "package.json").read_text())["version"]
    return [
        (re.compile(rf"https://cdn\.jsdelivr\.net/pyodide/v{re.escape(version)}/full/"
                    r"([^/?#]+)"), lambda m: release / m.group(1)),
        (re.compile(r"https://cdn\.holoviz\.org/panel/[^/]+/dist/([^?#]+)"),
         lambda m: panel_dist / m.group(1)),
        (re.compile(r"https://cdn\.bokeh\.org/bokeh/release/([^?#]+?)-\d+\.\d+\.\d+"
                    r"((?:\.min)?\.js)"), lambda m: bokeh_js / (m.group(1) + m.group(2))),
    ]


@pytest.fixture(scope="module")
def hosted(tmp_path_factory) -> Iterator[tuple[str, Any, list[str]]]:
    """The online build (Pyodide = the local release's version) and a Chromium context
    whose CDN requests are answered from local files; unknown URLs are refused."""
    release = pyodide_release()
    version = __import__("json").loads((release / "package.json").read_text())["version"]
    out = build_site(tmp_path_factory.mktemp("site") / "online", "--pyodide-version",
                     version)
    rules, answered = cdn_files(), []

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
        run_page(v, slug, tmp_path, "webgpu")
        seen = set(answered)
        assert any(u.startswith(cdns[0]) and u.endswith("pyodide.asm.wasm") for u in seen)
        assert any(u.startswith(cdns[1]) for u in seen) and \
            any(u.startswith(cdns[2]) for u in seen), sorted(seen)[:10]
    finally:
        v.close()

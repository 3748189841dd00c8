"""The static site end to end: every page of a real build in headless Chromium, driven as
a user would, on WebGPU (SwiftShader) and again with WebGPU unavailable (the engine then
computes with NumPy and the page says so).

The offline build (from PYODIDE_DIST, the full Pyodide release .ci/run names) must ask no
other host for anything: Chromium resolves no host name but 127.0.0.1, and any request to
another host fails the test, as does a console error, a page error or a failed request.
The hosted (online) build is tests/test_browser_site_hosted.py (a module of its own: one
Playwright at a time, and this module's last browser closes when the module ends).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser_helpers import CHROMIUM_ARGS, ROOT, chromium
from tests.site_helpers import (
    LOAD_TIMEOUT_MS,
    NO_WEBGPU_ARGS,
    Visit,
    serve,
)
from tests.test_webapp_browser import (
    LOSS_POINTS,
    SEVEN,
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
def offline(offline_site) -> Iterator[str]:
    with serve(offline_site) as url:
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
        # the engine's own DeviceError text, not a Python exception it tripped over
        assert load["reason"].startswith(("navigator.gpu", "this browser has no WebGPU")), load
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
    draw(v.page, SEVEN)
    wait_text(v.page, ".prediction", r"^7$", STEP_S)


def cifar10_first_image(v: Visit, tmp_path: Path) -> None:
    wait_text(v.page, ".top5", r"%", STEP_S)  # the first test image is classified on load


def cifar10_page(v: Visit, tmp_path: Path) -> None:
    cifar10_first_image(v, tmp_path)
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
    wait_text(v.page, ".run-status", r"epoch \d+/300", STEP_S)
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
    # both read the finished stroke as a 1 (on a busy machine a drawing sent mid-stroke,
    # a stub of the line, can show first: the page reads the newest one after it)
    result = wait_text(v.page, ".rows-result", r"LSTM 1\b.*attention 1\b", STEP_S)
    assert "shipped" in result, result


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
QUERIES = {  # the largest network for the most epochs (about 7 minutes of WebAssembly at
    # least; 30 epochs once finished before a Cancel landed on a busy machine)
    "playground": "?data=moons&epochs=300&width=256&depth=8",
}


def page_path(slug: str) -> str:
    return f"{slug}.html{QUERIES.get(slug, '')}"


def run_page(v: Visit, slug: str, tmp_path: Path, mode: str, badge: bool = True,
             actions: dict[str, Callable[[Visit, Path], None]] = ACTIONS,
             shot: str | None = None) -> None:
    """Wait for the live app, do the page's action, check it; its screenshot is `shot`
    (default SLUG_MODE)."""
    ready(v, mode, badge)
    action = actions.get(slug)
    if action is not None:
        try:
            action(v, tmp_path)
        except AssertionError as exc:  # what the page said: a flaky step's only witness
            v.screenshot(f"site_failed_{shot or slug + '_' + mode}")
            raise AssertionError(f"{exc}\n{v.report()}") from exc
    v.check(shot or f"{slug}_{mode}")


# -- the offline build -----------------------------------------------------------------------

# CIFAR-10 on WebGPU classifies its first test image but no upload: the upload's path
# (file -> worker -> Pillow -> the model) is the same in both modes, the NumPy mode drives it, and
# each classification on SwiftShader (a batch of 50 for the saliency map) is slow.
WEBGPU_ACTIONS = {**ACTIONS, "cifar10": cifar10_first_image}


@pytest.mark.parametrize("slug", SLUGS)
def test_offline_page(visit, mode, slug, tmp_path):
    actions = WEBGPU_ACTIONS if mode[0] == "webgpu" else ACTIONS
    run_page(visit(page_path(slug)), slug, tmp_path, mode[0], actions=actions)


def test_offline_embed_shows_only_the_demo(visit, mode, tmp_path):
    """?embed=true (what slides use, through the ./digits stub; dark here): the page
    prerendered as only the demo, and the demo works. Drawn on as soon as the canvas
    shows, as a visitor would: that is the loading screen's quick-start pad (the
    prerendered canvas, a dead picture, stays hidden until the live one replaces it)."""
    v = visit("digits/?embed=true&theme=dark")
    draw_on_quick_pad(v)  # what shows first: the loading screen's pad
    ready(v, mode[0], badge=False)
    wait_text(v.page, ".prediction", r"^7$", STEP_S)  # the drawing handed over
    v.check(f"digits_embed_{mode[0]}")
    assert v.page.url.split("?")[0].endswith("/digits-embed.html")
    assert v.page.locator("#header").count() == 0
    assert v.page.locator(".embed-button").count() == 0
    assert v.page.evaluate("getComputedStyle(document.documentElement).backgroundColor") \
        == "rgb(18, 18, 18)"


QUICK_PAD = "#demystify-quick canvas.dc-canvas"


def draw_on_quick_pad(v: Visit) -> dict[str, Any]:
    """Draw a 7 on the Digits loading screen's pad as soon as it shows; the pad's reading
    of the whole stroke (window.demystifyLoad.quick)."""
    v.page.locator(QUICK_PAD).wait_for(timeout=LOAD_TIMEOUT_MS)
    draw(v.page, SEVEN, QUICK_PAD)
    sent = v.page.evaluate("window.demystifyLoad.quickSent")  # the whole stroke's drawing
    v.page.wait_for_function(f"window.demystifyLoad.quick?.seq >= {sent}",
                             timeout=STEP_S * 1000)
    return v.page.evaluate("window.demystifyLoad.quick")


def test_offline_digits_quick_start_reads_before_panel_and_hands_over(visit, mode):
    """Digits' quick start: a 7 drawn on the loading screen's pad (drawn as soon as it
    shows, long before Panel is imported) is read by the engine before the worker builds
    the page (its reading stops at the hand-over), then the live page shows that drawing
    read and its strokes are the canvas's own (Clear empties it)."""
    v = visit("digits.html")
    quick = draw_on_quick_pad(v)
    assert quick["label"] == "7" and v.page.evaluate(
        "document.documentElement.dataset.demystify") != "ready"
    ready(v, mode[0])
    marks = {text: t for t, _, text in v.page.evaluate("window.demystifyLoad.marks")}
    assert quick["at"] <= marks["quick pad handed over"] <= marks["page built"], marks
    wait_text(v.page, ".prediction", r"^7$", STEP_S)
    ink = ("(c) => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height)"
           ".data; let n = 0; for (let i = 0; i < d.length; i += 4) n += d[i] < 128; "
           "return n; }")
    # the handed-over strokes, drawn on the live canvas
    assert v.page.locator("canvas.dc-canvas").evaluate(ink) > 500
    v.page.locator("button.dc-clear").click()
    wait_text(v.page, ".prediction", r"^–$", STEP_S)
    v.check(f"digits_quick_{mode[0]}")


def test_offline_dark_theme(visit, mode, tmp_path):
    """Dark as Panel's own dark page is: the app, and around it the <html> theme and
    background, the template's theme stylesheets and header (pages are prerendered
    light when the site is built). Movies: a working page with plots and tables that needs
    no SwiftShader convolutions (CIFAR-10 here cost CI 45 s more on WebGPU)."""
    v = visit("movies.html?theme=dark")
    run_page(v, "movies", tmp_path, mode[0], shot=f"movies_dark_{mode[0]}")
    page = v.page
    assert page.evaluate("document.documentElement.dataset.bsTheme") == "dark"
    assert page.evaluate("getComputedStyle(document.documentElement).backgroundColor") == \
        "rgb(18, 18, 18)"
    assert "navbar-dark" in page.locator("#header").get_attribute("class")
    themes = page.evaluate("[...document.querySelectorAll('link[rel=stylesheet]')]"
                           ".map(l => l.href).filter(h => h.includes('/theme/'))")
    assert themes and all(re.search(r"/theme/(bootstrap_)?dark\.css", t) for t in themes)

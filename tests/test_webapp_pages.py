"""The web app's page logic without a browser: what each page computes through the engine
(the Playground's in test_webapp_playground.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from tests.gpu_helpers import gpu_backend_or_skip
from webapp import art, digit_reader, digits, engine_page, movies
from webapp.common import check_upload, png_data_url

ROOT = Path(__file__).resolve().parents[1]



def test_digits_reads_a_drawn_one():
    img = np.full((280, 280), 255, np.uint8)
    img[40:240, 130:150] = 0
    x, probs, layers = digits.read_digit(png_data_url(img))
    assert x.shape == (28, 28) and int(np.argmax(probs)) == 1
    # only the two feature maps the page shows are read back
    assert [(n, o.shape) for n, o in layers] == [("1: ReLU", (1, 6, 28, 28)),
                                                 ("4: ReLU", (1, 16, 10, 10))]
    tiled = digits.tile(layers[0][1][0], 6)
    assert tiled.shape == (28, 6 * 30 - 2)


def hold_first_reading(monkeypatch) -> tuple[list[str], threading.Event, threading.Event]:
    """digits.read_digit recording its calls, the first one held until `release` is set
    (`first_running` says it has started): a reading that takes as long as a test needs."""
    calls: list[str] = []
    first_running, release = threading.Event(), threading.Event()
    real = digits.read_digit

    def read(url: str):
        calls.append(url)
        if len(calls) == 1:
            first_running.set()
            assert release.wait(60), "the first reading was never released"
        return real(url)

    monkeypatch.setattr(digits, "read_digit", read)
    return calls, first_running, release


def test_digits_prime_reads_a_sample_then_the_drawing_that_came_meanwhile(monkeypatch):
    """The static site runs DigitsPage._prime after the page is written (the one-time
    costs of a first reading). A drawing made while it runs is read right after it and
    shown; the sample's own result is never shown."""
    import asyncio

    calls, first_running, release = hold_first_reading(monkeypatch)
    page = digits.DigitsPage()
    img = np.full((280, 280), 255, np.uint8)
    img[40:240, 130:150] = 0
    url = png_data_url(img)

    async def main() -> None:
        task = asyncio.ensure_future(page._prime())
        while not first_running.is_set():
            await asyncio.sleep(0.01)
        assert page.prediction is None
        page.canvas.image = url  # drawn while the sample is being read
        release.set()
        await asyncio.wait_for(task, 60)

    asyncio.run(main())
    assert calls == [digit_reader.sample_drawing(), url]
    assert page.prediction == 1 and not page._reading


def test_quick_start_reads_with_the_pages_own_reading_and_hands_the_drawing_over(
        monkeypatch):
    """The static site's quick start for Digits (webapp.quickstart, read before Panel is
    imported) gives the page's own reading; the drawing handed over seeds the page's
    canvas and is what the page reads after its render, instead of the sample."""
    import asyncio

    from webapp import quickstart

    img = np.full((280, 280), 255, np.uint8)
    img[40:240, 130:150] = 0
    url = png_data_url(img)
    quick = quickstart.QUICK_STARTS["digits"]()
    assert quick.read(quick.prepare(), url)["label"] == "1"
    assert quickstart.QUICK_STARTS.get("movies") is None
    strokes = [[[140.0, 40.0], [140.0, 240.0]]]
    quickstart.hand_over("digits", {"image": url, "strokes": strokes})
    calls, _, release = hold_first_reading(monkeypatch)
    release.set()
    page = digits.DigitsPage()
    assert quickstart.take("digits") is None  # taken once, by the page
    assert page.canvas.seed == strokes and page.canvas.image == url
    assert page.canvas.strokes == 1
    asyncio.run(asyncio.wait_for(page._prime(), 60))
    assert calls == [url] and page.prediction == 1
    assert digits.DigitsPage().canvas.seed == []  # the next page starts empty


def test_after_render_jobs_run_in_order_and_a_failure_stops_none(monkeypatch):
    import asyncio

    from webapp import warmup

    ran: list[str] = []

    async def ok(name: str) -> None:
        ran.append(name)

    async def broken() -> None:
        raise RuntimeError("no GPU")

    monkeypatch.setattr(warmup, "_AFTER_RENDER", [])
    warmup.after_render(broken)  # not in a browser: nothing is queued
    assert warmup._AFTER_RENDER == []
    monkeypatch.setattr(warmup.sys, "platform", "emscripten")
    for job in (lambda: ok("a"), broken, lambda: ok("b")):
        warmup.after_render(job)
    asyncio.run(warmup.run_after_render())
    assert ran == ["a", "b"] and warmup._AFTER_RENDER == []


def test_digits_reads_only_the_newest_drawing(monkeypatch):
    """A stroke sends a drawing every 150 ms: drawings that come while one is being read
    are not each read in turn (in the browser they all ran at once, and the last one's
    result came after all of them); the newest is read next, and shown."""
    import asyncio

    calls, first_running, release = hold_first_reading(monkeypatch)
    page = digits.DigitsPage()
    urls = []
    for width in (4, 8, 12, 20):  # the stroke growing; the last is a 1
        img = np.full((280, 280), 255, np.uint8)
        img[40:240, 140 - width // 2:140 + width // 2] = 0
        urls.append(png_data_url(img))

    async def main() -> None:
        page.canvas.image = urls[0]
        while not first_running.is_set():
            await asyncio.sleep(0.01)
        for url in urls[1:]:  # while the first is still being read
            page.canvas.image = url
        release.set()
        for _ in range(3000):
            if len(calls) == 2 and page.prediction is not None:
                return
            await asyncio.sleep(0.01)

    asyncio.run(main())
    assert calls == [urls[0], urls[-1]]
    assert page.prediction == 1


def test_the_digits_warm_up_builds_every_pipeline_a_drawing_needs(monkeypatch):
    """The static site runs webapp.warmup.digits while Panel loads, so that a drawing's
    GPU pipelines are compiled by then: it must ask for every pipeline (shader, entry
    point, constants) that reading a drawing on the GPU asks for."""
    from webapp import common, warmup

    gpu = gpu_backend_or_skip()
    asked: list[set] = []
    real = type(gpu.dev)._pipeline

    def pipeline(self, k):
        if asked:
            asked[-1].add(k)
        return real(self, k)

    monkeypatch.setattr(type(gpu.dev), "_pipeline", pipeline)
    monkeypatch.setattr(common, "compute_device", lambda: ("gpu", gpu.describe(), ""))
    asked.append(set())
    warmup.digits("gpu")
    asked.append(set())
    img = np.full((280, 280), 255, np.uint8)
    img[40:240, 130:150] = 0
    _, probs, _ = digits.read_digit(png_data_url(img))
    warmed, drawing = asked
    assert int(np.argmax(probs)) == 1 and drawing
    assert drawing <= warmed, sorted(f"{k.shader}.{k.entry}" for k in drawing - warmed)


def test_movies_recommend_with_reasons():
    model = movies.fm()
    cat, _ = movies.catalogue()
    rated = {50: 5, 100: 4, 1: 5}  # Star Wars, Fargo, Toy Story
    recs = model.recommend(rated, k=5)
    assert not set(rated) & {m for m, _ in recs}
    why = movies.because(model, rated, recs[0][0], cat)
    assert why.startswith("because you liked ")
    m = movies.movie_map()
    assert len(m["x"]) == len(m["title"]) == 1682


def test_art_masks_and_painted_strokes():
    img = art.default_painting()
    assert img.shape == (256, 256, 3)
    for kind in art.KINDS:
        mask = art.make_mask(kind, img.shape, 0.5, seed=1)
        assert mask.shape == (256, 256) and 0.01 < mask.mean() < 0.9, kind
    painted = img.copy()
    painted[100:110, :] = (255, 0, 255)
    mask = art.painted_mask(png_data_url(painted), img)
    assert mask[100:110].mean() > 0.9 and mask[:90].sum() == 0


def _restored_psnr(page: art.ArtPage) -> float:
    import re

    return float(re.search(r"psnr-restored'>([\d.]+)", page.scores.object).group(1))


def test_art_restoration_run_shows_the_fm_at_work():
    page = art.ArtPage()
    page._damage(new_seed=True)
    run = art.Run(page.original, page.mask.copy(), "cpu", page.seed)
    page.run = run
    run._main()  # the thread's work, here synchronously; then the page's poller
    page._poll()
    assert page.run is None and not page.restore_btn.disabled
    assert _restored_psnr(page) > page._damaged_psnr + 3
    assert page.loss_src.data["epoch"] == list(range(1, 9))
    for name in ("FM restoration", "FM alone", "patch groups alone", "biharmonic fill"):
        assert name in page.table.object      # random loss (the default): groups are used
    assert len(page.srcs["fm"].data["image"][0]) == 256
    html = page.pixel_html(100, 120)
    assert "pixel (120, 100)" in html and "FM weight" in html and html.count("<td") > 50
    assert "similar-patch groups' fill here" in html


def test_art_run_in_the_browser_yields_and_cancels(monkeypatch):
    """As in Pyodide (no threads): the run is a task that yields after every event, so
    the poller and Cancel run in between; Cancel after the first epoch restores with the
    FM fitted so far."""
    import asyncio
    import threading

    def no_threads(self):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", no_threads)
    monkeypatch.setattr(art, "IN_BROWSER", True)
    page = art.ArtPage()
    run = art.Run(page.original, page.mask.copy(), "cpu", 0)
    page.run = run
    events = []

    async def main():
        run.start()
        for _ in range(3000):
            await asyncio.sleep(0.005)
            while not run.events.empty():
                events.append(run.events.get())
                if events[-1][0] == "epoch":
                    run.cancelled.set()
                if events[-1][0] in ("done", "error"):
                    return

    asyncio.run(main())
    kinds = [k for k, _ in events]
    assert kinds[-1] == "done", events[-1]
    result = events[-1][1]
    # the task ran on between the poller's looks, but stopped well before the 8 epochs
    assert result.cancelled and kinds.count("epoch") == len(result.history) < 8


def test_uploads_are_checked():
    with pytest.raises(ValueError, match="limit"):
        check_upload(b"x" * 11, "big.onnx", 10)
    with pytest.raises(ValueError, match="empty"):
        check_upload(b"", "e.onnx", 10)
    with pytest.raises(Exception, match="not a valid ONNX"):
        engine_page.run_onnx(b"\x08\x07garbage" * 10)
    with pytest.raises(Exception, match="not an image"):
        art.fit_image(b"GIF89a broken" * 5, "broken.gif")


def test_art_upload_is_scaled_to_the_page_side_keeping_its_aspect():
    import io

    from PIL import Image

    big = np.random.default_rng(0).integers(0, 256, (600, 1000, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, "PNG")
    rgb = art.fit_image(buf.getvalue(), "big.png")
    h = round(600 * art.SIDE / 1000)
    assert rgb.shape == (h, art.SIDE, 3) and rgb.dtype == np.uint8
    want = np.asarray(Image.fromarray(big).resize((art.SIDE, h), Image.Resampling.LANCZOS))
    assert np.array_equal(rgb, want)
    small = big[:40, :50]
    buf = io.BytesIO()
    Image.fromarray(small).save(buf, "PNG")
    assert np.array_equal(art.fit_image(buf.getvalue(), "small.png"), small)  # kept as is


def test_profile_step_cpu():
    table, wall, what = engine_page.profile_step("cpu", use_latest=False)
    names = [n for n, _, _ in table]
    assert "conv2d" in names and "adam_step_" in names and wall > 0 and "LeNet-5" in what


@pytest.mark.gpu
def test_profile_step_on_the_gpu():
    gpu_backend_or_skip()
    table, wall, _ = engine_page.profile_step("gpu", use_latest=False)
    assert {"conv2d", "adam_step_"} <= {n for n, _, _ in table}


def test_browser_mode_reads_embed_and_theme_from_the_workers_location(monkeypatch):
    """In the static build there is no request: the page's query reaches the worker's
    own URL (the site build starts the worker with it) and is read from there."""
    import sys
    import types

    from webapp import common

    fake_js = types.SimpleNamespace(location=types.SimpleNamespace(search=""))
    monkeypatch.setitem(sys.modules, "js", fake_js)
    monkeypatch.setattr(common, "IN_BROWSER", True)
    assert not common.is_embed() and not common.is_dark()
    fake_js.location.search = "?embed=true&theme=dark"
    assert common.is_embed() and common.is_dark()
    monkeypatch.setattr(common, "IN_BROWSER", False)
    assert not common.is_embed()  # a server session without the query


def test_a_wanted_gpu_that_fails_shows_on_the_badge(monkeypatch):
    """As in a browser without WebGPU: DEMYSTIFY_DEVICE=auto, the GPU cannot start, the
    demos compute with NumPy and the badge says so (the reason on hover)."""
    from engine import backends
    from webapp import common

    def no_webgpu():
        raise backends.DeviceError("navigator.gpu is missing")

    monkeypatch.setenv("DEMYSTIFY_DEVICE", "auto")
    monkeypatch.setattr(backends, "_backends", {"cpu": backends._backends["cpu"]})
    monkeypatch.setattr(backends, "_factories", {"gpu": no_webgpu})
    monkeypatch.setattr(backends, "_failures", {})
    dev, desc, note = common._found_device.__wrapped__()
    assert dev == "cpu" and "navigator.gpu is missing" in note
    badge = common.badge_html(dev, desc, note)
    assert "(no GPU)" in badge and "navigator.gpu is missing" in badge
    monkeypatch.setenv("DEMYSTIFY_DEVICE", "cpu")  # chose the CPU: nothing to flag
    assert common._found_device.__wrapped__()[2] == ""
    assert "(no GPU)" not in common.badge_html("cpu", desc, "")


BROWSER_LIKE = r"""
import asyncio, sys, threading
sys.modules["onnx"] = None          # Pyodide has no onnx package
sys.modules["onnxruntime"] = None
def no_threads(self):
    raise RuntimeError("can't start new thread")
threading.Thread.start = no_threads  # nor threads
import types
sys.modules["js"] = types.SimpleNamespace(location=types.SimpleNamespace(search="?embed=true"))
from webapp import common
common.IN_BROWSER = True             # before the pages import it
import numpy as np
from webapp import app, art, cifar, digits, engine_page, movies, playground
from webapp.common import png_data_url

for module in (app, digits, cifar, movies, art, playground, engine_page):
    module.page()                    # every page builds (embedded, as from the query)
assert common.is_embed()
img = np.full((280, 280), 255, np.uint8)
img[40:240, 130:150] = 0
print("digit", int(np.argmax(digits.read_digit(png_data_url(img))[1])))

async def main():
    x, _, _ = cifar.samples()
    probs, _ = await common.in_background(cifar.classify, x[0])
    print("cifar", probs.shape)
    data = open("webapp/models/lenet5.onnx", "rb").read()
    report, result = await common.in_background(engine_page.run_onnx, data)
    print("engine", "ran on" in result)
    from engine.mlp import Recipe
    from webapp.playground_run import Run, Settings

    run = Run(1, Settings("circle", Recipe(hidden=(8,), epochs=2), forest=True))
    run.start()
    while run.events.empty() or run.events.queue[-1][0] not in ("done", "error"):
        await asyncio.sleep(0.05)
    kinds = [k for k, _ in run.events.queue]
    print("playground", kinds[-1], "forest" in kinds, run.result.metric > 0.5)
    page = playground.PlaygroundPage()
    page.last = run
    print("script", len(page._script("engine").getvalue()) > 1000)

asyncio.run(main())
print("onnx imported:", sys.modules.get("onnx") is not None)
"""


def test_every_page_works_as_in_pyodide_without_onnx_and_threads():
    """What the static build meets in the browser, simulated on the host: no `onnx`, no
    onnxruntime, Thread.start raising, IN_BROWSER set. Every page builds and the digits,
    CIFAR, Engine (ONNX upload) and Playground paths run."""
    import subprocess
    import sys
    from pathlib import Path

    out = subprocess.run([sys.executable, "-c", BROWSER_LIKE], cwd=Path(__file__).parents[1],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout
    assert "digit 1" in lines and "cifar (10,)" in lines and "engine True" in lines, lines
    assert "playground done True True" in lines and "script True" in lines, lines
    assert "onnx imported: False" in lines, lines


def test_cifar10_classifies_in_the_browser_on_the_cpu_with_the_same_result(monkeypatch):
    """In the browser one image (and its occluded copies) is classified on the CPU, not on
    the demos' device (WebGPU: a Promise per readback, 45 s of the first result on
    SwiftShader); the top-5 and the map are the server's. The demos' model refuses here."""
    from webapp import cifar

    images, _, _ = cifar.samples()
    probs, sal = cifar.classify(images[0])
    monkeypatch.setattr(cifar, "IN_BROWSER", True)

    def refuse() -> object:
        raise AssertionError("the demos' device model was used")

    monkeypatch.setattr(cifar, "classifier", refuse)
    probs_b, sal_b = cifar.classify(images[0])
    np.testing.assert_allclose(probs_b, probs, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(sal_b, sal, rtol=1e-5, atol=1e-7)

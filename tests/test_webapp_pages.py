"""The web app's page logic without a browser: what each page computes through the engine."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from tests.gpu_helpers import gpu_backend_or_skip
from webapp import art, digits, engine_page, movies, playground
from webapp.common import check_upload, png_data_url


def drain(run: playground.Run) -> list[tuple[str, object]]:
    events = []
    while not run.events.empty():
        events.append(run.events.get())
    return events


def config(**kw: object) -> dict:
    cfg = dict(data="moons", activation="ReLU", init="He", reg="none", optimizer="Adam",
               lr=0.01, depth=2, width=16, epochs=1, device="CPU", seed=0)
    cfg.update(kw)
    return cfg


@pytest.mark.parametrize("activation", playground.ACTIVATIONS)
@pytest.mark.parametrize("init", playground.INITS)
def test_every_activation_and_init_builds_and_runs(activation, init):
    model = playground.build_model(config(activation=activation, init=init), 2, 2)
    out = model(engine.Tensor(np.zeros((3, 2), np.float32)))
    assert out.shape == (3, 2)


@pytest.mark.parametrize(("reg", "optimizer"), list(zip(
    playground.REGS, ["batch GD", "momentum", "AdaGrad", "RMSProp", "SGD"])))
def test_a_run_reports_steps_epochs_and_finishes(reg, optimizer):
    run = playground.Run(1, config(reg=reg, optimizer=optimizer))
    run.thread.start()
    run.thread.join(60)
    events = drain(run)
    kinds = [k for k, _ in events]
    assert kinds[-1] == "done" and "finished" in events[-1][1], events[-3:]
    assert "step" in kinds and kinds.count("epoch") == 1
    epoch = next(p for k, p in events if k == "epoch")
    assert 0.0 <= epoch[1]["val_accuracy"] <= 1.0
    assert len(epoch[2]["stats"]) == 2 and epoch[2]["boundary"].shape == (60, 60)


def test_cancel_stops_a_run_and_the_model_exports(tmp_path):
    run = playground.Run(2, config(data="MNIST subset", epochs=20, width=32))
    run.cancelled.set()
    run.thread.start()
    run.thread.join(60)
    assert "cancelled" in drain(run)[-1][1]
    model, example, label = playground.latest_model()
    assert example.shape == (1, 784) and "#2" in label
    data = engine_page.EnginePage()._latest_onnx().getvalue()  # the page's download
    report, result = engine_page.run_onnx(data)
    assert "every op is supported" in report and "ran on" in result
    import engine.onnx

    loaded = engine.onnx.load(data, device="cpu")
    with engine.no_grad():
        want, got = model(engine.Tensor(example)).numpy(), loaded(example).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_export_buttons_explain_a_missing_onnx_package(monkeypatch):
    for module in (engine_page, playground):
        monkeypatch.setattr(module, "onnx_export_available", lambda: False)
    page = engine_page.EnginePage()
    assert page.download.disabled and "needs the onnx package" in page.download.label
    play = playground.PlaygroundPage()
    assert play.download.disabled and "needs the onnx package" in play.download.label


def test_digits_reads_a_drawn_one():
    img = np.full((280, 280), 255, np.uint8)
    img[40:240, 130:150] = 0
    x, probs, layers = digits.read_digit(png_data_url(img))
    assert x.shape == (28, 28) and int(np.argmax(probs)) == 1
    assert [o.shape for n, o in layers if "ReLU" in n][:2] == [(1, 6, 28, 28), (1, 16, 10, 10)]
    tiled = digits.tile(layers[1][1][0], 6)
    assert tiled.shape == (28, 6 * 30 - 2)


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
    for name in ("FM restoration", "FM alone", "biharmonic fill"):
        assert name in page.table.object
    assert len(page.srcs["fm"].data["image"][0]) == 256
    html = page.pixel_html(100, 120)
    assert "pixel (120, 100)" in html and "FM weight" in html and html.count("<td") > 50


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


def test_profile_step_cpu():
    table, wall, what = engine_page.profile_step("cpu", use_latest=False)
    names = [n for n, _, _ in table]
    assert "conv2d" in names and "adam_step_" in names and wall > 0 and "LeNet-5" in what


@pytest.mark.gpu
def test_profile_step_and_training_on_the_gpu():
    gpu_backend_or_skip()
    table, wall, _ = engine_page.profile_step("gpu", use_latest=False)
    assert {"conv2d", "adam_step_"} <= {n for n, _, _ in table}
    run = playground.Run(3, config(device="GPU"))
    run.thread.start()
    run.thread.join(120)
    assert "on gpu" in drain(run)[-1][1]


def test_browser_mode_never_starts_a_thread(monkeypatch):
    """Pyodide has no threads: with IN_BROWSER, background work and Playground runs go
    through the event loop (Thread.start raises here, as it does in Pyodide)."""
    import asyncio
    import threading

    from webapp import common

    def no_threads(self):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", no_threads)
    monkeypatch.setattr(common, "IN_BROWSER", True)
    monkeypatch.setattr(playground, "IN_BROWSER", True)
    run = playground.Run(7, config(epochs=4))
    seen: list[tuple[str, object]] = []

    async def main():
        assert await common.in_background(lambda a, b: a + b, 2, 3) == 5
        run.start()
        for _ in range(600):  # the page's poller: runs between the run's epochs
            await asyncio.sleep(0.01)
            seen.extend(drain(run))
            if any(k == "epoch" for k, _ in seen):
                run.cancelled.set()  # Cancel, as the button does, after the first epoch
            if seen and seen[-1][0] in ("done", "error"):
                return

    asyncio.run(main())
    kinds = [k for k, _ in seen]
    assert kinds[-1] == "done" and "cancelled" in seen[-1][1], seen[-3:]
    assert 1 <= kinds.count("epoch") < 4  # the page saw epoch 1 and stopped the rest
    steps = [p[0] for k, p in seen if k == "step"]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)


def test_browser_mode_reads_embed_and_theme_from_the_workers_location(monkeypatch):
    """In the static build there is no request: the page's query reaches the worker's
    own URL (tools/site.py starts the worker with it) and is read from there."""
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
    run = playground.Run(1, dict(data="moons", activation="ReLU", init="He", reg="none",
                                 optimizer="Adam", lr=0.01, depth=2, width=8, epochs=1,
                                 device="CPU", seed=0))
    run.start()
    while run.events.empty() or run.events.queue[-1][0] not in ("done", "error"):
        await asyncio.sleep(0.05)
    print("playground", run.events.queue[-1])

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
    assert "playground ('done'" in lines and "onnx imported: False" in lines, lines


def test_a_run_numbers_steps_and_epochs_across_its_epochs():
    run = playground.Run(8, config(epochs=3))
    run.thread.start()
    run.thread.join(60)
    events = drain(run)
    assert [p[0] for k, p in events if k == "epoch"] == [0, 1, 2]
    steps = [p[0] for k, p in events if k == "step"]
    assert steps == list(range(len(steps))) and len(steps) % 3 == 0
    assert events[-1][0] == "done" and "finished" in events[-1][1]

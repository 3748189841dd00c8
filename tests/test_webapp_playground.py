"""The Playground page without a browser: its runs (events, cancel, forests, GPU), its
view, its URL settings and experiments, and its browser mode (no threads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.mlp import REGS, Recipe
from tests.gpu_helpers import gpu_backend_or_skip
from webapp import engine_page, playground, playground_run
from webapp.playground_experiments import EXPERIMENTS, result_card, verdict
from webapp.playground_run import GRID, Result, Run, Settings
from webapp.playground_state import LATEST
from webapp.playground_view import RunView

ROOT = Path(__file__).resolve().parents[1]


def drain(run: Run) -> list[tuple[str, object]]:
    events = []
    while not run.events.empty():
        events.append(run.events.get())
    return events


def settings(data: str = "xor", forest: bool = False, device: str = "CPU", **kw: object
             ) -> Settings:
    recipe = dict(features=("x1", "x2"), hidden=(8, 8), lr=0.01, epochs=1)
    recipe.update(kw)
    if data in ("plane", "multigauss"):
        recipe.setdefault("task", "regression")
    if data == "mnist":
        recipe["features"] = ()
    return Settings(data, Recipe(**recipe), device=device, forest=forest)


def finished(run: Run) -> list[tuple[str, object]]:
    run.thread.start()
    run.thread.join(120)
    events = drain(run)
    assert events and events[-1][0] == "done", events[-3:]
    return events


@pytest.mark.parametrize(("reg", "optimizer"), list(zip(
    REGS, ["batch GD", "momentum", "AdaGrad", "RMSProp", "SGD", "Adam"], strict=True)))
def test_a_run_reports_steps_epochs_snapshots_and_finishes(reg, optimizer):
    run = Run(1, settings(reg=reg, optimizer=optimizer, epochs=2))
    events = finished(run)
    kinds = [k for k, _ in events]
    result = events[-1][1]
    assert result.why == "finished" and result.epochs == 2 and 0 <= result.metric <= 1
    assert "step" in kinds and kinds.count("epoch") == 2 and kinds[0] == "begin"
    assert "val_accuracy" in next(p for k, p in events if k == "epoch")[1]
    snap = [p for k, p in events if k == "snapshot"][-1]  # the last: the trained network
    assert [len(layer["low"]) for layer in snap["layers"]] == [8, 8]
    assert snap["layers"][0]["grid"].shape == (GRID * GRID, 8)
    assert snap["output"].shape == (GRID * GRID, 2)
    assert [w.shape for w in snap["weights"]] == [(8, 2), (8, 8), (2, 8)]


def test_a_run_trains_a_forest_beside_the_network_and_the_view_draws_both():
    run = Run(1, settings("circle", forest=True, epochs=10))
    events = finished(run)
    result = events[-1][1]
    assert result.metric > 0.9 and result.forest["metric"] > 0.9
    forest = next(p for k, p in events if k == "forest")
    assert forest["trees"] == 50 and forest["surface"].shape == (GRID * GRID, 2)
    view = RunView()
    for kind, payload in events:
        if kind == "begin":
            view.begin(payload)
        elif kind == "snapshot":
            view.draw(payload)
        elif kind == "forest":
            view.forest(payload, result.short())
    assert view.draws >= 1 and view.forest_pane.visible and view.surface_pane.visible
    tiles = view.network.tiles.data["image"]
    assert len(tiles) == 2 + 8 + 8 + 2  # inputs, both hidden layers, outputs
    assert tiles[2].shape == (GRID // 2, GRID // 2)
    assert len(view.network.links.data["x0"]) == 2 * 8 + 8 * 8 + 8 * 2
    assert "Random forest" in view.forest_note.object and "100.00%" in view.forest_note.object
    view.network.boxes.selected.indices = [3]  # a click on hidden layer 1, unit 4
    assert "hidden layer 1, unit 4" in view.detail.object
    assert "unit 4" in view.surface.fig.title.text


def test_regression_reports_mse_and_mnist_shows_first_layer_weights():
    result = finished(Run(1, settings("plane", epochs=3)))[-1][1]
    assert result.task == "regression" and result.metric_text.startswith("test MSE: ")
    events = finished(Run(2, settings("mnist", hidden=(40,), batch_size=64)))
    snap = [p for k, p in events if k == "snapshot"][-1]
    assert snap["images"].shape == (32, 784) and snap["layers"][0]["grid"] is None
    view = RunView()
    view.begin(events[0][1])
    view.draw(snap)
    assert view.weights_pane.visible and not view.surface_pane.visible
    assert view.weights.image.data["image"][0].shape == (4 * 30, 8 * 30)


def test_cancel_stops_a_run_and_the_engine_page_exports_it(tmp_path):
    run = Run(2, settings("mnist", epochs=20, hidden=(32,)))
    run.cancelled.set()
    result = finished(run)[-1][1]
    assert result.why == "cancelled" and result.epochs == 0
    model, example, label = LATEST.model()
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
    play = playground.PlaygroundPage()
    for button in (page.download, play.downloads[0]):
        assert button.disabled and "needs the onnx package" in button.label
        assert len(button.label) <= 40  # fits its button; the reason is on hover
        assert "in-browser build lacks" in button.description


class Page:
    """A PlaygroundPage driven without a browser: its poller is called by hand."""

    def __init__(self, **params: object) -> None:
        self.page = playground.PlaygroundPage(**params)

    def until_idle(self, timeout_s: float = 300) -> None:
        import time

        deadline = time.monotonic() + timeout_s
        self.page._poll()  # the click's pending work
        while self.page.active is not None or self.page.pending:
            assert time.monotonic() < deadline, "the run did not finish"
            time.sleep(0.05)
            self.page._poll()

    def text(self) -> str:
        return self.page.status.object

    def error(self) -> str:
        import html

        return html.unescape(self.page.error.object) if self.page.error.visible else ""


def test_the_page_trains_and_exports_scripts_that_print_its_accuracy(tmp_path):
    import subprocess
    import sys

    p = Page(data="xor", epochs=8, features=["x1", "x2", "x1x2"], forest=False)
    p.page._start()
    p.until_idle()
    run = p.page.last
    assert run is not None and "test accuracy: " in p.text()
    assert not any(d.disabled for d in p.page.downloads[1:])
    script = tmp_path / "model.py"
    script.write_bytes(p.page._script("engine").getvalue())
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == run.result.metric_text and run.result.metric_text in p.text()


def test_a_drawing_that_fails_is_shown_and_the_run_still_ends(monkeypatch):
    """In the browser a periodic callback that raises is never called again: the page
    would freeze on its last status line. A failed drawing is shown, polling goes on and
    the run's end still lands (here, though every snapshot's drawing fails)."""
    p = Page(data="xor", epochs=3, forest=False)
    calls = {"n": 0}

    def broken(view, snap):
        calls["n"] += 1
        raise ValueError("a broken snapshot")

    monkeypatch.setattr(RunView, "draw", broken)
    p.page._start()
    p.until_idle()  # calls the poller by hand, as Panel does: it must not raise
    assert calls["n"] >= 1
    assert "a broken snapshot" in p.error() and "Drawing the run failed" in p.error()
    assert p.page.last is not None and "test accuracy: " in p.text()
    assert not p.page.train_btn.disabled  # ready for the next run


def test_the_page_takes_a_csv_file(tmp_path):
    import asyncio

    rng = np.random.default_rng(0)
    names = ["setosa", "versicolor", "virginica"]
    rows = [f"{rng.normal(3 * (i % 3), 0.5):.3f},{rng.normal(-2 * (i % 3), 0.5):.3f},"
            f"{rng.normal(0, 1):.3f},{names[i % 3]}" for i in range(150)]
    data = ("sepal,petal,noise,species\n" + "\n".join(rows) + "\n").encode()
    p = Page(epochs=20, forest=True)
    csv = p.page._on_csv  # the upload's handler, a session task (here: run to its end)
    asyncio.run(csv(data, "flowers.csv"))
    assert p.page.data == "csv" and "3 classes" in p.page.csv_info.object
    assert p.page.feature_buttons.disabled  # three columns: no input plane
    p.page._start()
    p.until_idle()
    result = p.page.last.result
    assert result.metric > 0.9 and result.forest["metric"] > 0.9, result
    assert p.page.label_select.options == ["sepal", "petal", "noise", "species"]
    p.page.label_select.value = "noise"  # text is left among the features: refused
    assert "row 2, column 'species': 'setosa' is not a number" in p.error()
    rows = [f"{a:.3f},{b:.3f},{a - 2 * b + rng.normal(0, 0.05):.4f}"
            for a, b in rng.uniform(-1, 1, (200, 2))]
    asyncio.run(csv(("a,b,target\n" + "\n".join(rows)).encode(), "prices.csv"))
    assert p.page.table.task == "regression" and "regression" in p.page.csv_info.object
    assert not p.page.error.visible and not p.page.feature_buttons.disabled  # 2-D: a plane
    p.page.task = "classification"  # the switch: 200 different values are too many classes
    assert "more than 50 classes" in p.error() and p.page.table is None
    p.page.task = "auto"
    assert p.page.table.task == "regression" and not p.page.error.visible
    p.page._start()
    p.until_idle()
    result = p.page.last.result
    assert result.task == "regression" and "test MSE: " in p.text() and result.metric < 0.1
    assert p.page.train_curves.metric.title.text.startswith("validation loss (MSE)")
    assert result.forest is not None and result.forest["surface"] is not None
    asyncio.run(csv(b"1,2,3\n4,5,6\n", "numbers.csv"))
    assert "Could not use numbers.csv: no header" in p.error()


def test_result_cards_are_written_from_the_measured_numbers():
    exp = EXPERIMENTS["activation"]

    def result(metric, secs=1.0, dead=0.0, saturated=0.0, device="cpu"):
        return Result("classification", metric, secs, device, device.upper(), 40, "finished",
                      dead, saturated)

    card = result_card(exp, result(0.716, 2.3, saturated=0.81), result(0.978, 2.1, 0.23), 0)
    assert "97.8% test accuracy in 2.1 s" in card and "71.6% test accuracy in 2.3 s" in card
    assert "81.0% saturated" in card and "23.0% of hidden units dead" in card
    assert "modern recipe is 26.2 points more accurate" in card
    assert "traditional recipe won by 5.0 points" in result_card(exp, result(0.9),
                                                                 result(0.85), 1)
    assert "same accuracy" in result_card(exp, result(0.9), result(0.902), 1)
    dev = EXPERIMENTS["device"]
    assert "GPU was 3.0× faster" in verdict(dev, result(0.9, 3.0), result(0.9, 1.0,
                                                                          device="gpu"))
    assert "CPU was 2.0× faster" in verdict(dev, result(0.9, 1.0), result(0.9, 2.0,
                                                                          device="gpu"))
    assert "no GPU here" in verdict(dev, result(0.9), result(0.9))


def test_an_experiment_runs_both_recipes_on_the_same_data_and_ends_with_a_card():
    p = Page(seed=3)
    p.page._run_experiment("init")
    p.until_idle()
    trad, modern = p.page.runs[-2:]
    assert trad.recipe.init == "constant" and modern.recipe.init == "He"
    assert trad.recipe.replace(init="He") == modern.recipe and modern.recipe.seed == 3
    np.testing.assert_array_equal(trad.dataset.x_train, modern.dataset.x_train)
    card = p.page.cards["init"]
    assert "data-experiment='init'" in card and "seed 3" in card
    assert f"{100 * modern.result.metric:.1f}% test accuracy" in card
    assert p.page.experiment == "init" and not p.page.exp_buttons[0].disabled


def test_every_setting_is_in_the_url():
    assert set(playground.URL) == set(playground.PlaygroundPage.param) - {"name"}


@pytest.mark.parametrize("old, now", [("moons", "moons"), ("spirals", "spiral"),
                                      ("circles", "circle"), ("MNIST subset", "mnist")])
def test_links_from_before_name_a_data_set_that_exists(old, now):
    """The data names of links made before the 2-D sets were reworked still work."""
    page = playground.PlaygroundPage()
    page.data = old
    assert page.data == now and page.data_select.value == now
    assert page.settings_now().data == now


def test_throttle():
    from webapp.playground_run import Throttle

    slow, always = Throttle(1e9), Throttle(0.0)
    assert slow.ready() and not slow.ready() and not slow.ready()
    assert always.ready() and always.ready()
    always.spent(1e9)  # the last drawing took "forever": wait 4x that before the next
    assert not always.ready()


@pytest.mark.gpu
def test_a_run_trains_on_the_gpu():
    gpu_backend_or_skip()
    result = finished(Run(3, settings(device="GPU")))[-1][1]
    assert result.device == "gpu" and result.device_name.startswith("GPU (")


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
    monkeypatch.setattr(playground_run, "IN_BROWSER", True)
    run = Run(7, settings(epochs=4, forest=True))
    seen: list[tuple[str, object]] = []

    async def main():
        assert await common.in_background(lambda a, b: a + b, 2, 3) == 5
        run.start()
        # The page's poller. It yields without a timer, so it runs exactly once between
        # two of the run's epochs (the run yields after each; asyncio runs ready tasks in
        # turn): no clock decides what it sees.
        for _ in range(10_000):
            await asyncio.sleep(0)
            seen.extend(drain(run))
            if any(k == "epoch" for k, _ in seen):
                run.cancelled.set()  # Cancel, as the button does, after the first epoch
            if seen and seen[-1][0] in ("done", "error"):
                return

    asyncio.run(main())
    kinds = [k for k, _ in seen]
    assert kinds[-1] == "done" and seen[-1][1].why == "cancelled", seen[-3:]
    assert 1 <= kinds.count("epoch") < 4  # the page saw epoch 1 and stopped the rest
    assert "snapshot" in kinds and "forest" not in kinds  # no forest for a cancelled run
    steps = [p[0] for k, p in seen if k == "step"]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)


def test_a_run_numbers_steps_and_epochs_across_its_epochs():
    events = finished(Run(8, settings(epochs=3)))
    assert [p[0] for k, p in events if k == "epoch"] == [0, 1, 2]
    steps = [p[0] for k, p in events if k == "step"]
    assert steps == list(range(len(steps))) and len(steps) % 3 == 0
    assert events[-1][1].why == "finished"


@pytest.mark.parametrize("busy", [True, False])
def test_a_poller_counts_as_the_page_being_busy_only_when_asked(busy):
    """The Playground's poller runs from page load on: if each idle call counted as busy,
    the template's spinner would never stop turning. Driven as in the browser build (an
    asyncio loop, no server session)."""
    import asyncio

    import panel as pn

    from webapp.common import start_poller

    seen: list[bool] = []

    async def main() -> None:
        poller = start_poller(lambda: seen.append(pn.state.busy), 10, busy=busy)
        try:
            while len(seen) < 2:
                await asyncio.sleep(0.01)
        finally:
            poller.stop()

    asyncio.run(asyncio.wait_for(main(), 60))
    assert seen == [busy, busy]
    assert not pn.state.busy  # and nothing is left counted once it stopped


def test_the_playground_poller_does_not_spin_the_busy_indicator():
    p = Page(data="xor", epochs=1, forest=False)
    p.page._start_polling()
    try:
        assert p.page.poller._background
    finally:
        p.page.poller.stop()

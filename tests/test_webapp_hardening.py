"""The web app against careless or hostile visitors: error text that cannot inject markup,
sessions whose work ends with them, uploads decoded off the event loop, seeds that give
the same run whatever other sessions do, a lost GPU that the pages stop using."""

from __future__ import annotations

import asyncio
import gc
import html.parser
import logging
import threading
import types
import weakref

import numpy as np
import panel as pn
import pytest
from bokeh.document import Document
from onnx import TensorProto, helper, numpy_helper
from panel.io.state import set_curdoc

import engine
from engine.mlp import Recipe
from webapp import art, common, digits, engine_page, playground
from webapp.common import png_data_url
from webapp.playground_run import MAX_CONCURRENT_RUNS, Run, Settings
from webapp.playground_state import LATEST

INJECTIONS = [
    "![x](http://127.0.0.2/leak.png)",
    "[click](http://127.0.0.2/phish)",
    "<img src=http://127.0.0.2/x.png onerror=alert(1)>",
    "<script>alert(1)</script>",
    "http://127.0.0.2/autolink and www.example.com",
    "$$\\href{http://127.0.0.2}{x}$$ **bold** `code` &amp; &lt;b&gt;",
]


class Elements(html.parser.HTMLParser):
    """The tags, attributes and text of an HTML fragment."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text = ""
        self.feed(source)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text += data


def config(data: str = "xor", **kw: object) -> Settings:
    recipe = dict(features=() if data == "mnist" else ("x1", "x2"), hidden=(16, 16),
                  lr=0.01, epochs=1, seed=0)
    recipe.update(kw)
    return Settings(data, Recipe(**recipe), forest=False)


def drain(run: Run) -> list[tuple[str, object]]:
    events = []
    while not run.events.empty():
        events.append(run.events.get())
    return events


# -- finding 3: error text is plain text -------------------------------------------------

@pytest.mark.parametrize("payload", INJECTIONS)
def test_error_messages_are_plain_text(payload):
    alert = common.error_alert()
    common.show_error(alert, f"Could not use {payload}: it failed")
    parsed = Elements(alert.object)
    assert parsed.tags == [("div", {"class": "error-text", "role": "alert"})], parsed.tags
    assert parsed.text == f"Could not use {payload}: it failed"  # exactly, as text
    assert isinstance(alert, pn.pane.HTML) and alert.disable_math and alert.visible
    common.show_error(alert, "")
    assert not alert.visible


def test_error_messages_are_bounded():
    alert = common.error_alert()
    common.show_error(alert, "x" * 1_000_000)
    assert len(alert.object) < 5000 and "996,000 more characters" in alert.object


def _onnx_with_initializer(name: str) -> bytes:
    w = numpy_helper.from_array(np.ones((4,), np.float32), name)
    w.raw_data = w.raw_data[:-4]  # truncated: the error names the initializer
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", name], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w])
    return helper.make_model(graph).SerializeToString()


@pytest.mark.parametrize("payload", INJECTIONS[:3])
def test_engine_page_shows_hostile_names_as_text(payload):
    """The probe's injection: an initializer named ![x](http://host/leak.png) became an
    <img> the browser fetched. Now the alert holds the name as text and nothing else."""
    page = engine_page.EnginePage()
    asyncio.run(page._on_file(_onnx_with_initializer(payload), f"{payload}.onnx"))
    parsed = Elements(page.error.object)
    assert [t for t, _ in parsed.tags] == ["div"], parsed.tags
    assert parsed.text.startswith(f"Could not use {payload}.onnx: ")
    assert repr(payload) in parsed.text and "bytes of data" in parsed.text


# -- finding 4: a closed tab's work is cancelled and freed --------------------------------

class FakeSession:
    """Stands in for Bokeh's SessionContext: what a document of a live session has."""

    request = types.SimpleNamespace(arguments={}, cookies={}, headers={})  # no query


@pytest.fixture
def session():
    """(a document of a server session, end()): end() runs the callbacks registered with
    pn.state.on_session_destroyed, as Bokeh's DocumentLifecycleHandler does."""
    doc, ctx = Document(), FakeSession()
    doc._session_context = weakref.ref(ctx)

    def end() -> None:
        callbacks = doc.session_destroyed_callbacks
        doc.session_destroyed_callbacks = set()
        for cb in callbacks:
            cb(ctx)

    with set_curdoc(doc):
        yield doc, end


LONG = config(data="mnist", hidden=(128,) * 4, epochs=30)


def _page_with_a_long_run(number: int) -> tuple[playground.PlaygroundPage, Run]:
    page = playground.PlaygroundPage()
    run = Run(number, LONG)
    page.runs.append(run)
    page.active = run
    run.start()
    while not any(k == "step" for k, _ in list(run.events.queue)):  # it is training
        run.thread.join(0.05)
    return page, run


def test_closed_playground_tabs_release_their_training_slots():
    """Finding 4: two closed tabs with long runs held both training slots and the next
    visitor waited. Ending each session cancels its run; the slots are free at once."""
    runs = []
    for i in range(MAX_CONCURRENT_RUNS):
        doc, ctx = Document(), FakeSession()
        doc._session_context = weakref.ref(ctx)
        with set_curdoc(doc):
            page, run = _page_with_a_long_run(40 + i)
        assert len(doc.session_destroyed_callbacks) == 1
        runs.append((doc, ctx, page, run))
    model = weakref.ref(runs[0][3].model)
    for doc, ctx, _, _ in runs:  # the tabs close: Bokeh destroys their sessions
        for cb in doc.session_destroyed_callbacks:
            cb(ctx)
    for _, _, page, run in runs:
        run.thread.join(60)
        assert not run.thread.is_alive() and run.cancelled.is_set()
        assert page.runs == [] and page.active is None
        assert drain(run)[-1][1].why == "cancelled"
    nxt = Run(50, config())
    nxt.start()
    nxt.thread.join(60)
    events = drain(nxt)
    assert not any("waiting for a free training slot" in str(p) for _, p in events), events
    assert events[-1][0] == "done" and events[-1][1].why == "finished"
    del runs, page, run
    LATEST.clear()  # the Engine page's "latest model" holds a host copy only
    gc.collect()
    assert model() is None  # the closed session's model is freed


def test_a_run_stops_soon_after_its_tab_disconnects(session):
    """Bokeh ends a closed tab's session only a minute later (server.py); the Playground's
    poller sees the session has no connection left and cancels the run after 5 s."""
    doc, _ = session
    ctx = doc.session_context
    ctx.session = types.SimpleNamespace(connection_count=1)
    page, run = _page_with_a_long_run(45)
    page.train_curves.add(run)  # what the Train button sets up before the run starts
    page.view, page.curves = page.train_view, page.train_curves
    for _ in range(3 * playground.CLOSED_TAB_POLLS):  # connected: polls change nothing
        page._poll()
    assert not run.cancelled.is_set()
    ctx.session.connection_count = 0  # the tab closed
    for _ in range(playground.CLOSED_TAB_POLLS - 1):
        page._poll()
    assert not run.cancelled.is_set()  # a reload reconnects within this grace
    page._poll()
    assert run.cancelled.is_set() and page.active is None
    run.thread.join(60)
    assert not run.thread.is_alive()


def test_session_tasks_are_cancelled_and_their_errors_logged(session, caplog):
    doc, end = session
    started, never = asyncio.Event(), asyncio.Event()
    results = []

    async def work():
        started.set()
        await never.wait()
        results.append("pushed to a closed session")

    async def broken():
        raise RuntimeError("boom")

    async def main():
        task = common.session_task(work())
        failing = common.session_task(broken())
        await started.wait()
        await asyncio.sleep(0)
        end()  # the tab closed
        await asyncio.sleep(0)
        return task, failing

    with caplog.at_level(logging.ERROR, logger="demystify.webapp"):
        task, failing = asyncio.run(main())
    assert task.cancelled() and results == []
    assert failing.done() and "boom" in caplog.text  # logged, not "never retrieved"


def test_outside_a_session_nothing_is_registered():
    calls = []
    common.on_session_end(lambda: calls.append(1))
    assert not pn.state._on_session_destroyed or all(
        getattr(cb, "__name__", "") != "destroyed" for cb in pn.state._on_session_destroyed)


@pytest.mark.parametrize("name", ["bokeh.server.views.ws", "panel.io.document"])
def test_closed_connection_warnings_are_filtered(caplog, name):
    common.configure_logging()
    logger = logging.getLogger(name)
    with caplog.at_level(logging.WARNING, logger=name):
        logger.warning("Failed sending message as connection was closed")
        logger.warning("something else")
    assert "connection was closed" not in caplog.text and "something else" in caplog.text


def test_writes_to_a_closed_websocket_are_not_logged_as_errors(caplog):
    """Panel dispatches a page's updates as tasks; one writing to a tab that closed
    meanwhile fails with WebSocketClosedError, which asyncio logs as never retrieved."""
    from tornado.websocket import WebSocketClosedError

    common.configure_logging()
    logger = logging.getLogger("asyncio")
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        for exc in (WebSocketClosedError(), RuntimeError("a real bug")):
            logger.error("Task exception was never retrieved", exc_info=(type(exc), exc, None))
    assert "WebSocketClosedError" not in caplog.text and "a real bug" in caplog.text


# -- finding 8: off the event loop, reproducible per session -------------------------------

def test_uploads_and_drawings_are_decoded_off_the_event_loop(monkeypatch):
    """A large Art upload stalled every session for ~0.5 s; now the decode runs in a
    worker thread (inline only in the browser, where there are no threads)."""
    seen = []
    real_fit, real_read = art.fit_image, digits.read_digit
    monkeypatch.setattr(art, "fit_image", lambda *a: seen.append(
        ("art", threading.current_thread())) or real_fit(*a))
    monkeypatch.setattr(digits, "read_digit", lambda *a: seen.append(
        ("digits", threading.current_thread())) or real_read(*a))
    page = art.ArtPage()
    img = np.random.default_rng(0).integers(0, 256, (300, 200, 3), np.uint8)
    drawn = np.full((280, 280), 255, np.uint8)
    drawn[40:240, 130:150] = 0
    dpage = digits.DigitsPage()

    async def main():
        upload = page.upload  # the widget calls on_file; an async one becomes a task
        page_data = png_data_url(img).split(",", 1)[1]
        upload.filename, upload.value = "big.png", page_data
        upload.uploads += 1
        dpage.canvas.image = png_data_url(drawn)
        for _ in range(400):
            await asyncio.sleep(0.01)
            if page.original.shape == (256, 171, 3) and dpage.prediction is not None:
                return

    asyncio.run(main())
    assert page.original.shape == (256, 171, 3) and dpage.prediction == 1
    assert {w for w, _ in seen} == {"art", "digits"}
    assert all(t is not threading.main_thread() for _, t in seen), seen


def _losses(run: Run) -> list[float]:
    return [p[1] for k, p in drain(run) if k == "step"]


def test_a_seed_gives_the_same_run_whatever_other_sessions_do():
    """All sessions shared one random generator, so the same settings and seed gave
    different runs while others trained. Each run now draws from a stream of its own."""
    cfg = config(reg="dropout", epochs=2, seed=5)
    alone = Run(60, cfg)
    alone.start()
    alone.thread.join(60)
    want = _losses(alone)
    assert len(want) > 10

    stop = threading.Event()

    def noisy_neighbour():  # another session seeding and drawing all the time
        while not stop.is_set():
            engine.manual_seed(123)
            engine.random.generator().random(1000)

    others = [threading.Thread(target=noisy_neighbour, daemon=True) for _ in range(2)]
    for t in others:
        t.start()
    try:
        again, other = Run(61, cfg), Run(62, config(seed=6, epochs=2))
        again.start()
        other.start()
        again.thread.join(60)
        other.thread.join(60)
    finally:
        stop.set()
        for t in others:
            t.join(10)
    assert _losses(again) == want


def test_seeded_streams_are_private_to_their_thread():
    engine.manual_seed(0)
    outside = engine.random.generator()
    with engine.random.seeded(7) as g:
        assert engine.random.generator() is g and g is not outside
        engine.manual_seed(8)  # reseeds this private stream only
        assert engine.random.generator() is not outside
        seen = []
        t = threading.Thread(target=lambda: seen.append(engine.random.generator()))
        t.start()
        t.join()
        assert seen == [outside]  # another thread: the process's stream
    assert engine.random.generator() is outside


def test_a_lost_gpu_is_no_longer_the_pages_device(monkeypatch):
    from engine import backends

    monkeypatch.setattr(common, "_found_device", lambda: ("gpu", "Test GPU", ""))
    monkeypatch.setattr(backends, "_lost", {"gpu": ["device lost (test)", False]})
    dev, desc, note = common.compute_device()
    assert dev == "cpu" and "the GPU was lost (device lost (test))" in note
    assert common.device_lock() is not common.GPU_LOCK


def test_models_are_cached_per_device_so_a_lost_gpu_is_left_behind(monkeypatch):
    built = []

    @common.once_per_device
    def model(device):
        built.append(device)
        return f"model on {device}"

    monkeypatch.setattr(common, "compute_device", lambda: ("gpu", "Test GPU", ""))
    assert model() == model() == "model on gpu"
    monkeypatch.setattr(common, "compute_device", lambda: ("cpu", "NumPy", "GPU lost"))
    assert model() == "model on cpu" and built == ["gpu", "cpu"]
    assert digits.lenet() is digits.lenet()  # the pages' models go through it

"""What every page shares: the page shell (template or embed), the device badge, the
"copy embed code" button, friendly errors, shipped files and the once-per-process caches.

The shell is Panel's BootstrapTemplate: served entirely by the Panel server (no fonts or
scripts from a CDN) and with a light/dark toggle. `?embed=true` drops the template and
shows only the demo, for iframes in slides.

Hardening every page relies on: error messages are plain text (`show_error` escapes
whatever a file name, node name or exception says, so nothing becomes markup, a link or a
request); a session's background work is cancelled when the session ends
(`session_task`, `on_session_end`); uploads are decoded off the event loop
(`file_input` with an async handler, `in_background`).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import html
import io
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import panel as pn

WEBAPP = Path(__file__).resolve().parent
ASSETS = WEBAPP / "assets"
MODELS = WEBAPP / "models"

MAX_IMAGE_BYTES = 8 * 2**20
MAX_ONNX_BYTES = 20 * 2**20
MAX_MESSAGE_CHARS = 4000  # an error alert shows at most this much of a message

# (slug, title, one-line description)
PAGES = [
    ("digits", "Digits", "Draw a digit and watch a small convolutional network read it, "
     "layer by layer."),
    ("cifar10", "CIFAR-10", "Classify photos into ten classes and see what the network "
     "looked at."),
    ("movies", "Movies", "Rate a few films and get recommendations from a factorization "
     "machine."),
    ("art", "Art restoration", "Damage a painting and restore it from the pixels that are "
     "left."),
    ("playground", "Playground", "Change one idea at a time (activation, initialisation, "
     "optimizer) and see why modern deep learning works."),
    ("engine", "Engine", "Look inside the engine: devices, per-op timings, ONNX import and "
     "export."),
    ("sequences", "Sequences", "Train an RNN, an LSTM and attention live and see why gates "
     "and attention carry information across time."),
]

ALERT_CSS = """
.error-text {color: #842029; background: #f8d7da; border: 1px solid #f5c2c7;
             border-radius: 6px; padding: 10px 14px; margin: 0; white-space: pre-wrap;
             overflow-wrap: anywhere; font-size: 0.95em;}
"""

CSS = """
.badge {display: inline-block; border-radius: 12px; padding: 3px 12px; font-size: 0.9em;
        white-space: nowrap;}
.badge-gpu {background: #dafbe1; color: #116329;}
.badge-cpu {background: #ddf4ff; color: #0a3069;}
.badge-off {background: #fff1e5; color: #953800;}
.nav a {display: block; padding: 6px 4px; text-decoration: none; color: inherit;}
.nav a.current {font-weight: bold;}
.muted {opacity: 0.75; font-size: 0.9em;}
.big {font-size: 2.2em; font-weight: bold;}
"""

T = TypeVar("T")
IN_BROWSER = sys.platform == "emscripten"  # Pyodide: Python in a Web Worker, no threads
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def once(fn: Callable[[], T]) -> Callable[[], T]:
    """Compute fn() once per process (thread-safe); every session shares the result."""
    cache: list[T] = []

    @functools.wraps(fn)
    def wrapper() -> T:
        if cache:
            return cache[0]
        with _locks_guard:
            lock = _locks.setdefault(fn.__qualname__, threading.Lock())
        with lock:
            if not cache:
                cache.append(fn())
        return cache[0]

    return wrapper


def once_per_device(fn: Callable[[str], T]) -> Callable[[], T]:
    """fn(device) once per process for each device the demos compute on (a model placed
    on it): after the GPU is lost, `compute_device()` says "cpu" and a CPU copy is built,
    instead of the model on the dead device failing every call."""
    made: dict[str, Callable[[], T]] = {}

    @functools.wraps(fn)
    def wrapper() -> T:
        dev = compute_device()[0]
        with _locks_guard:
            if dev not in made:
                one = functools.partial(fn, dev)
                one.__qualname__ = f"{fn.__qualname__}[{dev}]"  # type: ignore[attr-defined]
                made[dev] = once(one)
        return made[dev]()

    return wrapper


async def in_background(fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) without holding up the session: a thread on a server; in the browser
    (Pyodide has no threads) inline, after yielding once so the "busy" state is shown;
    the page stays responsive there because Python runs in a Web Worker."""
    if IN_BROWSER:
        await asyncio.sleep(0)
        return fn(*args)
    return await asyncio.to_thread(fn, *args)


# -- session lifecycle ---------------------------------------------------------------------

log = logging.getLogger("demystify.webapp")


def _session_doc() -> Any:
    """The Bokeh document of the current server session, or None (a test, a script, the
    browser build: there the tab's worker ends with the tab)."""
    doc = pn.state.curdoc
    return doc if doc is not None and doc.session_context is not None else None


def on_session_end(fn: Callable[[], None]) -> None:
    """Call fn() once when this session ends (its tab closed or reloaded), through
    Panel's `pn.state.on_session_destroyed`; outside a server session nothing happens."""
    doc = _session_doc()
    if doc is None:
        return

    def destroyed(_: Any) -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001  (one page's clean-up must not stop the others)
            log.exception("clean-up at the end of a session failed")

    pn.state.on_session_destroyed(destroyed)


def session_connected() -> bool | None:
    """Whether this server session's tab is connected right now (None outside a server
    session). Bokeh ends a session only a while after its tab closed (webapp/server.py),
    so long work (a Playground run) polls this to stop sooner."""
    doc = _session_doc()
    session = getattr(doc.session_context, "session", None) if doc is not None else None
    return None if session is None else session.connection_count > 0


_TASKS: dict[int, set[asyncio.Task]] = {}


def session_task(coro: Any) -> asyncio.Task | None:
    """Run a coroutine as this session's work: cancelled when the session ends (so a
    closed tab's result is never pushed to a closed connection), and its errors logged
    here instead of "Task exception was never retrieved"."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # a script or test: no session, no loop; just run it
        asyncio.run(coro)
        return None
    task = loop.create_task(coro)
    doc = _session_doc()
    key = id(doc)
    if doc is not None and key not in _TASKS:
        _TASKS[key] = set()
        on_session_end(lambda: _cancel_tasks(key))
    tasks = _TASKS.get(key)
    if tasks is not None:
        tasks.add(task)
    task.add_done_callback(lambda t: _task_done(t, tasks))
    return task


def _task_done(task: asyncio.Task, tasks: set | None) -> None:
    if tasks is not None:
        tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        log.error("a page's background task failed: %s: %s", type(exc).__name__, exc,
                  exc_info=exc)


def _cancel_tasks(key: int) -> None:
    for task in _TASKS.pop(key, set()):
        task.cancel()


# where a write to a closed tab is reported: Bokeh's websocket handler, Panel's document
# writer (panel.io.document._run_write_futures), and asyncio for a task never awaited
CLOSED_CONNECTION_LOGGERS = ("bokeh.server.views.ws", "panel.io.document", "asyncio")


class _ClosedConnectionFilter(logging.Filter):
    """A tab that closes while the server sends it an update is normal, not an error:
    "Failed sending message as connection was closed" (Bokeh's websocket and Panel's
    document writer both say it) is kept out of the log, and
    so is asyncio's "Task exception was never retrieved" for a write Panel dispatched to a
    websocket that closed meanwhile (WebSocketClosedError)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and type(exc).__name__ in ("WebSocketClosedError",
                                                      "StreamClosedError"):
            return False
        return "connection was closed" not in record.getMessage()


def configure_logging() -> None:
    """The server's logging, once: the closed-connection filter on Bokeh's websocket
    logger, and this app's own notes (a session ended, its run was cancelled) at INFO."""
    for name in CLOSED_CONNECTION_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _ClosedConnectionFilter) for f in logger.filters):
            logger.addFilter(_ClosedConnectionFilter())
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: "
                                               "%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


# -- devices -------------------------------------------------------------------------------

def compute_device() -> tuple[str, str, str]:
    """(device the demos compute on, its description, a note about a fallback or ''):
    found once per process; a GPU lost since then (retired by the engine) means the CPU."""
    from engine import backends

    dev, desc, note = _found_device()
    lost = backends.lost_reason("gpu") if dev == "gpu" else None
    if lost is not None:
        return "cpu", backends.get("cpu").describe(), f"the GPU was lost ({lost}); " \
            "computing with NumPy"
    return dev, desc, note


@once
def _found_device() -> tuple[str, str, str]:
    import engine
    from engine import backends

    try:
        dev = engine.default_device()
        note = ""
    except engine.DeviceError as exc:
        dev, note = "cpu", f"fell back to the CPU: {exc}"
    wanted = backends.requested_default() in ("auto", "gpu")
    if dev == "cpu" and wanted and not note and backends.unavailable_reason("gpu"):
        note = f"no GPU, computing with NumPy: {backends.unavailable_reason('gpu')}"
    try:
        desc = backends.get(dev).describe()
    except Exception as exc:  # a broken driver must not take the page down
        dev, desc, note = "cpu", backends.get("cpu").describe(), f"GPU failed ({exc})"
    return dev, desc, note


GPU_LOCK = threading.RLock()


def device_lock(device: str | None = None) -> Any:
    """Serialises GPU work across sessions and threads (one queue, one device); CPU work
    needs no lock. `device` defaults to the device the demos compute on."""
    import contextlib

    dev = device or compute_device()[0]
    return GPU_LOCK if dev == "gpu" else contextlib.nullcontext()


def available_devices() -> list[dict[str, str]]:
    import engine

    try:
        return engine.devices()
    except Exception:  # noqa: BLE001  (listing devices must never fail a page)
        return [{"name": "cpu", "adapter": "NumPy"}]


def device_badge() -> pn.pane.HTML:
    """A badge naming the device the demos compute on (GPU name or CPU)."""
    try:
        text = badge_html(*compute_device())
    except Exception as exc:  # noqa: BLE001
        reason = html.escape(f"{type(exc).__name__}: {exc}")
        text = f'<span class="badge badge-off" title="{reason}">engine unavailable</span>'
    return pn.pane.HTML(text, stylesheets=[CSS], margin=(5, 10))


def badge_html(dev: str, desc: str, note: str) -> str:
    """The badge's text; a GPU that was wanted but failed shows as "(no GPU)", its reason
    on hover."""
    label = ("GPU: " if dev == "gpu" else "CPU: ") + desc
    if note and dev == "cpu":
        label += " (no GPU)"
    title = html.escape(note or f"the demos compute on the {dev}")
    css = "badge-gpu" if dev == "gpu" else "badge-cpu"
    return (f'<span class="badge {css} device-badge" title="{title}">'
            f"{html.escape(label)}</span>")


# -- the shell -----------------------------------------------------------------------------

def session_args() -> dict[str, list[bytes]]:
    """The page's query arguments. On a server: the session's request. In the browser
    build Python runs in a Web Worker with no request: the site build starts the worker
    with the page's query string, so it is read from the worker's own location."""
    args = pn.state.session_args or {}
    if not args and IN_BROWSER:
        from urllib.parse import parse_qs

        import js  # Pyodide's bridge to the worker's global scope

        query = str(js.location.search).lstrip("?")
        args = {k: [v.encode() for v in vs] for k, vs in parse_qs(query).items()}
    return args


def is_embed() -> bool:
    return any(v.lower() in (b"true", b"1", b"yes") for v in session_args().get("embed", []))


def is_dark() -> bool:
    """?theme=dark (what the template's light/dark toggle sets)."""
    return any(v.lower() == b"dark" for v in session_args().get("theme", []))


def embed_button(slug: str) -> pn.widgets.Button:
    """Copies an <iframe> of this page (its own URL plus ?embed=true, so it works under
    any path: the Panel server, or a static build in a subfolder) to the clipboard."""
    btn = pn.widgets.Button(label="Copy embed code", color="light", width=160,
                            css_classes=["embed-button"])
    btn.js_on_click(args={"btn": btn}, code=f"""
const page = new URL(window.location.href);  // served (/{slug}) or static ({slug}.html)
page.hash = "";
page.searchParams.set("embed", "true");
const url = page.href;
const code = `<iframe src="${{url}}" width="100%" height="720" style="border:0"></iframe>`;
window.__demystifyEmbed = code;
const done = () => {{
  btn.label = "Copied!";
  setTimeout(() => btn.label = "Copy embed code", 1500);
}};
if (navigator.clipboard && window.isSecureContext) {{
  navigator.clipboard.writeText(code).then(done, () => window.prompt("Embed code:", code));
}} else {{ window.prompt("Embed code:", code); }}
""")
    return btn


def nav(current: str) -> pn.pane.HTML:
    links = ['<a href="./app">Home</a>'] + [
        f'<a href="./{slug}" class="{"current" if slug == current else ""}">'
        f"{html.escape(title)}</a>" for slug, title, _ in PAGES]
    return pn.pane.HTML('<nav class="nav">' + "".join(links) + "</nav>", stylesheets=[CSS])


def shell(slug: str, title: str, make_demo: Callable[[], Any], intro: str = ""
          ) -> pn.viewable.Viewable:
    """The full page (template, nav, badge, embed button) or, with ?embed=true, the demo.

    `make_demo` is called after the session's theme is known (?theme=dark)."""
    if is_embed():
        if is_dark():
            pn.config.theme = "dark"  # this session only
            if pn.state.curdoc is not None:  # the template does this for full pages
                from bokeh.themes import built_in_themes

                pn.state.curdoc.theme = built_in_themes["dark_minimal"]
        return pn.Column(make_demo(), sizing_mode="stretch_width", css_classes=["embedded"])
    demo = make_demo()
    # HTML, not Markdown: a page without a Markdown pane never imports markdown-it, its
    # plugins and Python-Markdown (0.1-0.15 s of a static page's start)
    header = pn.Row(pn.pane.HTML(f"<p>{html.escape(intro)}</p>", sizing_mode="stretch_width",
                                 margin=(0, 10))
                    if intro else pn.Spacer(sizing_mode="stretch_width"),
                    embed_button(slug), sizing_mode="stretch_width")
    template = pn.template.BootstrapTemplate(
        title=f"Demystify · {title}", sidebar=[nav(slug), device_badge()],
        main=[header, demo], sidebar_width=230)
    return template


def bokeh_update(fn: Callable[[], Any]) -> None:
    """Run fn (which changes Bokeh models) under the session's document lock.

    Needed after an `await` in an async callback: Panel widgets and panes handle that
    themselves, raw Bokeh models (ColumnDataSource, ranges) do not."""
    doc = pn.state.curdoc
    if doc is None or doc.session_context is None:
        fn()
    else:
        doc.add_next_tick_callback(fn)


# -- ONNX export ---------------------------------------------------------------------------

def onnx_export_available() -> bool:
    """Exporting needs the `onnx` package, which the browser build (Pyodide) lacks;
    loading models works everywhere."""
    import importlib.util

    return importlib.util.find_spec("onnx") is not None


NO_ONNX_EXPORT = "ONNX export needs the onnx package, which the in-browser build lacks"
NO_ONNX_LABEL = "ONNX export needs the onnx package"  # fits a button; the rest on hover


def onnx_limits() -> Any:
    """What an uploaded ONNX file may cost this server (or this browser tab): tighter than
    the library's defaults, as 20 visitors may upload at once. A model the demos can run
    (LeNet-5, the CIFAR-10 net, small ResNets) fits with room to spare."""
    from engine.onnx import Limits

    return Limits(max_bytes=MAX_ONNX_BYTES, max_messages=200_000, max_values=1_000_000,
                  max_nodes=10_000, max_elements=1 << 24, max_const_bytes=96 << 20,
                  max_run_bytes=256 << 20)


def onnx_file(model: Any, example: Any) -> io.BytesIO:
    """The model exported to ONNX, as a download."""
    import engine.onnx

    return io.BytesIO(engine.onnx.export(model, example).SerializeToString())


# -- errors and images ---------------------------------------------------------------------

def error_alert() -> pn.pane.HTML:
    """Where a page shows what went wrong (as plain text: see `show_error`)."""
    return pn.pane.HTML("", visible=False, sizing_mode="stretch_width", disable_math=True,
                        css_classes=["error-alert"], stylesheets=[ALERT_CSS])


def plain_text(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """A message as HTML that shows exactly its characters, cut to `limit`: whatever a
    file name, node name or exception holds (Markdown, HTML, a URL) stays text."""
    text = str(message)
    if len(text) > limit:
        text = text[:limit] + f"… ({len(text) - limit:,} more characters)"
    return html.escape(text, quote=True)


def show_error(alert: pn.pane.HTML, message: str) -> None:
    """Show `message` (plain text, never escaped by the caller) in an `error_alert`, or
    hide the alert for ''."""
    alert.object = (f'<div class="error-text" role="alert">{plain_text(message)}</div>'
                    if message else "")
    alert.visible = bool(message)


def run_poll(drain: Callable[[], None], alert: pn.pane.HTML | None, what: str) -> None:
    """One call of a page's poller (a periodic callback). In the browser Panel never calls
    a periodic callback again once it raised (the page froze on its last state), so a
    failure is logged and shown in `alert`, and polling goes on."""
    try:
        drain()
    except Exception as exc:  # noqa: BLE001  (logged and shown)
        log.exception("%s failed", what)
        if alert is not None:
            show_error(alert, f"{what} failed: {type(exc).__name__}: {exc}")


def start_poller(poll: Callable[[], None], period_ms: int, busy: bool = True) -> Any:
    """A page's poller: poll() every period_ms (wrap the work in `run_poll`), as a Panel
    periodic callback, which holds the document's lock as new Bokeh renderers need. Each
    call counts as the page being busy (the template's spinner turns) unless busy=False:
    a poller that runs from page load on, idle most of the time, would keep it turning.
    Panel's flag for such a callback is PeriodicCallback's `background`, which
    `add_periodic_callback` does not pass on, so it is set here before the first call."""
    poller = pn.state.add_periodic_callback(poll, period=period_ms, start=False)
    poller._background = not busy
    poller.start()
    return poller


def file_input(accept: str, max_bytes: int, on_file: Callable[[bytes, str], Any],
               alert: pn.pane.HTML) -> Any:
    """An upload limited to max_bytes in the browser; calls on_file(data, name) for each
    accepted file and shows a refused one's reason in `alert`. An async `on_file` runs as
    the session's task (cancelled if the tab closes): decode the file in it with
    `in_background`, off the event loop."""
    from webapp.upload import UploadInput

    widget = UploadInput(accept=accept, max_bytes=max_bytes)

    def uploaded(_: Any) -> None:
        name = widget.filename or "the file"
        try:
            data = check_upload(widget.data(), name, max_bytes)
        except ValueError as exc:
            show_error(alert, f"Could not use {name}: {exc}")
            return
        result = on_file(data, name)
        if asyncio.iscoroutine(result):
            session_task(result)

    widget.param.watch(uploaded, "uploads")
    widget.param.watch(lambda e: e.new and show_error(alert, e.new), "error")
    return widget


def check_upload(data: bytes | None, name: str | None, max_bytes: int) -> bytes:
    if not data:
        raise ValueError("the file is empty; choose another one")
    if len(data) > max_bytes:
        raise ValueError(f"{name or 'the file'} is {len(data) / 2**20:.1f} MB; the limit is "
                         f"{max_bytes // 2**20} MB")
    return data


def png_data_url(rgb: np.ndarray) -> str:
    """A uint8 (H, W[, 3]) array as a PNG data URL (for the canvas background)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, np.uint8)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def rgba(img: np.ndarray) -> np.ndarray:
    """uint8 (H, W) or (H, W, 3) -> (H, W) uint32 RGBA, flipped for Bokeh's y-up images."""
    a = np.asarray(img, np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    out = np.empty(a.shape[:2] + (4,), np.uint8)
    out[..., :3] = a
    out[..., 3] = 255
    return out.view(np.uint32)[:, :, 0][::-1].copy()


def image_figure(title: str, size: int = 256, **kw: Any) -> Any:
    """A square Bokeh figure for showing an image, no axes."""
    from bokeh.plotting import figure

    fig = figure(title=title, width=size, height=size, x_range=(0, 1), y_range=(0, 1),
                 toolbar_location=None, match_aspect=True, **kw)
    fig.axis.visible = False
    fig.grid.visible = False
    return fig

"""Runs in a page's Web Worker (Pyodide) before the page's own code: the site build puts
this file's source in front of it. Starts the engine's WebGPU device (NumPy, with a notice,
where there is none), points Panel's run-time resources at the site's own copies in an
offline build, and reports progress to the page."""

import os
import sys


def _demystify_progress(stage: str, text: str, **extra: object) -> None:
    """A progress line for the page's loading panel (tools/site/assets/loader.js)."""
    import js
    from pyodide.ffi import to_js

    js.demystifyReport(stage, text, to_js(extra, dict_converter=js.Object.fromEntries))


def _demystify_lazy_http_patch() -> None:
    """Panel's Pyodide module calls pyodide-http's patch_all() when it is imported, and
    patching requests imports requests and urllib3: about a second of every page's start,
    for pages that fetch nothing with requests. urllib is patched at once, as before;
    requests when code first imports it (the same patch, later)."""
    import importlib.abc
    import importlib.util
    import types

    import pyodide_http

    class PatchRequestsOnImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: object = None, target: object = None):
            if name != "requests":
                return None
            sys.meta_path.remove(self)  # once; requests itself is found as always
            spec = importlib.util.find_spec(name)
            if spec is None or spec.loader is None:
                return spec
            exec_module = spec.loader.exec_module

            def exec_then_patch(module: types.ModuleType) -> None:
                exec_module(module)
                pyodide_http.patch_requests(continue_on_import_error=True)

            spec.loader.exec_module = exec_then_patch
            return spec

    def patch_all() -> None:
        pyodide_http.patch_urllib(continue_on_import_error=True)
        sys.meta_path.insert(0, PatchRequestsOnImport())

    pyodide_http.patch_all = patch_all


def _demystify_later_packages() -> None:
    """The packages the site writes only once the page is drawn (tools/site/bundle.py:
    LATER): the first import of one before that writes them at once (waiting for their
    tar if it is still on its way), then Python finds it as any other."""
    import importlib
    import importlib.abc

    import js

    names = set(js.demystifyLaterNames.to_py())
    if not names:
        return

    class WriteLaterOnImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: object = None, target: object = None):
            if name.partition(".")[0] not in names:
                return None
            sys.meta_path.remove(self)
            if not js.demystifyWriteLater():
                from pyodide.ffi import run_sync

                run_sync(js.demystifyLaterReady())
            importlib.invalidate_caches()
            return None  # the usual finders find it now

    sys.meta_path.insert(0, WriteLaterOnImport())


async def _demystify_write_later() -> None:
    """Write the packages held back from the start (the finder above writes them sooner
    if an import asks): once the page is drawn and its first result came, so neither
    waits for their files."""
    import importlib

    import js

    if not getattr(js, "demystifyWriteLater", None) or not js.demystifyLaterNames.length:
        return
    if not js.demystifyWriteLater():
        await js.demystifyLaterReady()
    importlib.invalidate_caches()


def _demystify_quiet_cancelled_tasks() -> None:
    """Pyodide 0.28's event loop calls `fut.exception()` on every finished task, which
    raises CancelledError for a cancelled one (Panel cancels its throttled busy-indicator
    timers): a traceback on the console for nothing. A cancelled task is no error."""
    from pyodide import webloop

    original = webloop.WebLoop._decrement_in_progress

    def decrement(self: object, fut: object = None) -> None:
        if fut is not None and getattr(fut, "cancelled", lambda: False)():
            fut = None
        original(self, fut)

    webloop.WebLoop._decrement_in_progress = decrement


def _demystify_apply_query() -> None:
    """?theme=dark in a static page: Panel takes its theme from the request's arguments,
    and a worker has no request (webapp.common reads the query from the worker's own
    location); one worker serves one page view, so the worker-wide setting is the
    session's. (early.js darkens the prerendered page around it.)"""
    from urllib.parse import parse_qs

    import js
    import panel as pn

    query = parse_qs(str(js.location.search).lstrip("?"))
    if query.get("theme", [""])[-1].lower() == "dark":
        pn.config.theme = "dark"


def _demystify_forget_held_events() -> None:
    """Once the page's document is serialised for its first render, drop the changes Bokeh
    held while the page was built: the render already shows them, and sent afterwards
    (Panel sends them when it links the worker to the page) some name models that are no
    longer in the document ("reference ... isn't known" in the page)."""
    from panel.io.state import state

    callbacks = getattr(state.curdoc, "callbacks", None)
    if callbacks is not None and hasattr(callbacks, "_held_events"):
        callbacks._held_events = []


def _demystify_after_render() -> None:
    """Start the jobs the page queued for after its render (webapp.warmup.after_render):
    they run once this code has handed the document over and the worker has posted it,
    while the browser draws the page."""
    import asyncio

    async def run() -> None:
        await asyncio.sleep(0)  # the worker posts the document first
        try:
            from webapp.warmup import run_after_render
        except ImportError:
            run_after_render = None
        try:
            if run_after_render is not None:
                _demystify_progress("mark", "after-render warm-up started")
                await run_after_render()
                _demystify_progress("mark", "after-render warm-up done")
        finally:
            await _demystify_write_later()

    global _demystify_after_render_task  # held, so the task is not collected
    _demystify_after_render_task = asyncio.ensure_future(run())


def _demystify_warm_up(slug: str) -> None:
    """Encode the page's first GPU work now (webapp.warmup), so the browser compiles its
    pipelines while Python goes on importing Panel; a failure costs only the head start."""
    import js

    try:
        from webapp.warmup import WARM_UPS
    except ImportError:
        return
    warm = WARM_UPS.get(slug)
    if warm is None:
        return
    _demystify_progress("gpu", "Compiling the GPU kernels of the demo")
    try:
        warm("gpu")
    except Exception as exc:  # noqa: BLE001  (the page computes as before, a bit later)
        js.console.warn(f"Demystify: the {slug} warm-up failed: {type(exc).__name__}: {exc}")


# Panel's import, step by step when a quick start reads drawings meanwhile (each step a
# few tenths of a second at most; a drawing waits for one, not for the whole import)
_DEMYSTIFY_PANEL_STEPS = ("param", "bokeh.core.properties", "bokeh.models",
                          "bokeh.plotting", "panel", "panel.io.pyodide")


async def _demystify_quick_start(slug: str) -> bool:
    """The page's quick start (webapp.quickstart), if it declares one: its model loaded on
    the CPU, then the newest drawing of the loading screen's pad is read whenever Python
    waits (worker.js calls `serve`), until the full page takes it over."""
    import js
    from pyodide.ffi import create_proxy

    try:
        from webapp.quickstart import QUICK_STARTS
    except ImportError:
        return False
    make = QUICK_STARTS.get(slug)
    if make is None or not getattr(js, "demystifyQuickServe", None):
        return False
    quick = make()
    state = quick.prepare()

    def serve(image: str, seq: int) -> None:
        if not image:
            result = {"label": "–", "detail": "draw to start"}
        else:
            try:
                result = quick.read(state, str(image))
            except Exception as exc:  # noqa: BLE001  (shown on the pad; the page goes on)
                import traceback

                js.console.warn("Demystify: the quick start's reading failed: "
                                + "".join(traceback.format_exception(exc)))
                result = {"label": "?", "detail": f"could not read it: {exc}"[:160]}
        _demystify_progress("quick", result["detail"], label=result["label"], seq=int(seq),
                            panel="panel" in sys.modules)

    global _demystify_quick_serve  # held: JS calls it until the hand-over
    _demystify_quick_serve = create_proxy(serve)
    js.demystifyQuickServe(_demystify_quick_serve)
    _demystify_progress("mark", "quick start ready")
    # a drawing already made is read now (a timer's turn): `await gpu.init()` next can
    # resolve without one, and the GPU warm-up and Panel's first step come before any
    import asyncio

    await asyncio.sleep(0)
    return True


async def _demystify_import_panel(quick: bool) -> None:
    """Import Panel; with a quick start in steps, yielding between them so the pad's
    drawings are read meanwhile. Before each step a stroke under way ends and is read
    first (3 s at most in all): a step can take seconds on a busy machine, and the
    reading of a stroke that ended during one came only after it."""
    import importlib
    import time

    import js

    budget = 3.0
    for name in _DEMYSTIFY_PANEL_STEPS if quick else ():
        t = time.monotonic()
        await js.demystifyQuickSettle(int(1000 * budget))
        budget = max(0.0, budget - (time.monotonic() - t))
        importlib.import_module(name)


async def _demystify_quick_hand_over(slug: str, quick: bool) -> None:
    """Stop reading the pad and keep its last drawing for the full page (which takes it
    with webapp.quickstart.take); the pad says the page takes over. A stroke under way
    ends and is read first (for at most 3 s): the pad answers what was drawn on it."""
    import js

    if not quick:
        return
    await js.demystifyQuickSettle(3000)
    drawing = js.demystifyQuickStop()
    if drawing:
        from webapp.quickstart import hand_over

        hand_over(slug, drawing.to_py())
    _demystify_progress("quick-done", "the full page takes over the drawing",
                        drawn=bool(drawing))


async def _demystify_boot(panel_cdn_root: str | None, slug: str) -> bool:
    """Start the engine (and the page's quick start); whether the page has one."""
    if panel_cdn_root:  # offline: Panel's run-time CSS from the site, not its CDN
        import js

        os.environ["PANEL_CDN_ROOT"] = str(js.URL.new(panel_cdn_root, js.location.href).href)
    os.environ.setdefault("DEMYSTIFY_DEVICE", "auto")
    _demystify_later_packages()
    _demystify_quiet_cancelled_tasks()
    _demystify_lazy_http_patch()
    _demystify_progress("gpu", "Starting the engine on WebGPU")
    import engine.backends.gpu.browser as gpu

    _demystify_progress("mark", "engine GPU module imported")
    quick = await _demystify_quick_start(slug)
    ok = await gpu.init()
    status = gpu.status()
    _demystify_progress("gpu", f"GPU: {status['adapter']}" if ok else
                        f"No WebGPU: computing with NumPy ({status['reason']})",
                        webgpu=bool(ok), adapter=status["adapter"], reason=status["reason"])
    if ok:
        _demystify_warm_up(slug)
        _demystify_progress("mark", "GPU warm-up encoded")
    if "panel" in sys.modules:
        raise RuntimeError("Panel was imported before the site's settings were applied")
    return quick

"""A page's Web Worker and its loading panel.

Panel's conversion writes a worker that loads Pyodide, then micropip, then asks micropip to
resolve and install the packages one after the other. The site keeps that worker's message
protocol with the page (`sendPatch`, `self.onmessage`) and puts its own start-up in place
of Panel's (assets/worker.js): every download at once while the runtime boots, the data
files the page opens, progress messages; and assets/boot.py before the page's code."""

from __future__ import annotations

import json
import re
from typing import Any

from .common import ASSETS, BuildError

START = "async function startApplication() {"
HANDLER = "self.onmessage = async (event) =>"
SEND_PATCH = "function sendPatch("
# Panel's code around the page (panel.io.convert.PRE / POST), with progress lines between
PANEL_IMPORT = "import asyncio\n\nfrom panel.io.pyodide import init_doc, write_doc\n"
PANEL_INIT = "init_doc()"
PANEL_POST = "await write_doc()"


def python_code(slug: str, page_module: str, title: str, panel_cdn_root: str | None) -> str:
    """What the worker runs: boot.py (the engine, and the page's quick start if it has one:
webapp.quickstart), Panel's import (in steps with a quick start), the hand-over of the quick
pad's drawing, Panel's document set-up, the page, Panel's render, then the page's
after-render warm-ups (webapp.warmup)."""
    return "\n".join([
        (ASSETS / "boot.py").read_text(encoding="utf-8"),
        f"_demystify_quick = await _demystify_boot({panel_cdn_root!r}, {slug!r})",
        '_demystify_progress("imports", "Loading Panel, Bokeh and the engine")',
        "await _demystify_import_panel(_demystify_quick)",
        PANEL_IMPORT,
        '_demystify_progress("mark", "Panel imported")',
        PANEL_INIT,
        '_demystify_progress("mark", "Panel document set up")',
        "_demystify_apply_query()",
        '_demystify_progress("page", "Building the page")',
        f"await _demystify_quick_hand_over({slug!r}, _demystify_quick)",
        f"from {page_module} import page",
        '_demystify_progress("mark", "page module imported")',
        "_demystify_page = page()",
        '_demystify_progress("mark", "page built")',
        f"_demystify_page.servable(title={title!r})",
        f"_demystify_rendered = {PANEL_POST}",
        '_demystify_progress("mark", "document written")',
        "_demystify_forget_held_events()",
        "_demystify_after_render()",
        "_demystify_rendered"])


def worker_script(panel_worker: str, config: dict[str, Any]) -> str:
    """Panel's worker with our start-up (CONFIG + assets/worker.js) instead of its own."""
    start, handler = panel_worker.find(START), panel_worker.find(HANDLER)
    patch = panel_worker.find(SEND_PATCH)
    if min(start, handler, patch) < 0 or not patch < start < handler:
        raise BuildError("Panel's worker template changed (no sendPatch / startApplication "
                         "/ self.onmessage in that order); update tools/site/worker.py")
    tail = panel_worker[handler:]
    if not tail.rstrip().endswith("startApplication()"):
        raise BuildError("Panel's worker template changed (it no longer ends by calling "
                         "startApplication()); update tools/site/worker.py")
    return ("// Demystify page worker, written by `python build.py site` (tools/site).\n"
            f"const CONFIG = {json.dumps(config, indent=1)};\n\n"
            + panel_worker[patch:start]
            + (ASSETS / "worker.js").read_text(encoding="utf-8") + "\n" + tail)


def quick_start(slug: str) -> dict[str, Any] | None:
    """The page's quick start (webapp.quickstart) for its loading screen: the pad's title
    and settings, and the page's own canvas code (webapp.canvas.DrawCanvas: its ESM's
    render function and stylesheet), run there with a stand-in for Panel's model."""
    from webapp.quickstart import QUICK_STARTS

    make = QUICK_STARTS.get(slug)
    if make is None:
        return None
    from webapp.canvas import DrawCanvas

    quick, esm = make(), DrawCanvas._esm
    if esm.count("export function render(") != 1:
        raise BuildError("webapp.canvas.DrawCanvas's code no longer exports one render "
                         "function; update tools/site/worker.py (quick_start)")
    return {"title": quick.title, "canvas": quick.canvas,
            "render": esm.replace("export function render(", "function render(", 1),
            "css": "\n".join(DrawCanvas._stylesheets)}


def _quick_script(quick: dict[str, Any]) -> str:
    """The pad's stylesheet and window.demystifyQuick (settings, and the canvas's render
    function) for loader.js."""
    settings = json.dumps({"title": quick["title"], "canvas": quick["canvas"]})
    return (f"<style>\n{quick['css']}</style>\n<script>\nwindow.demystifyQuick = "
            f"{{...{settings}, render: (() => {{\n{quick['render']}\nreturn render;\n}})()}};"
            "\n</script>\n")


_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S)
_SRC = re.compile(r'\ssrc="([^"]+)"')


def _defer_bokeh(page_html: str) -> tuple[str, list[dict[str, str]]]:
    """The page with Bokeh's and Panel's scripts (src) turned into preloads and Bokeh's
    log level taken out, and those scripts in their order, for assets/defer.js to run
    later; and without the prerendered page's embedding. That page is hidden while the
    pad is up (loader.css), its layout took seconds of the main thread, and embedded
    late it would land over the live page. Panel's worker handler stays: it calls Bokeh
    only for messages early.js holds meanwhile."""
    deferred: list[dict[str, str]] = []

    def take(m: re.Match[str]) -> str:
        attrs, text = m.group(1), m.group(2)
        src = _SRC.search(attrs)
        if src and not text.strip() and 'type="text/javascript"' in attrs:
            deferred.append({"src": src.group(1)})
            return f'<link rel="preload" as="script" href="{src.group(1)}">'
        if not src and "pyodideWorker" not in text and "Bokeh.safely(" in text:
            return ""
        if not src and "pyodideWorker" not in text and "Bokeh.set_log_level(" in text:
            deferred.append({"text": text})
            return ""
        return m.group(0)

    return _SCRIPT.sub(take, page_html), deferred


def with_loader(page_html: str, slug: str, embed: bool = False,
                quick: dict[str, Any] | None = None) -> str:
    """The page with its worker started first of all (assets/early.js, with the page's
    query: Python reads ?embed=true and ?theme=dark from the worker's own location) and
    the loading panel (assets/loader.css and loader.js), all inline. `embed`: the page
    prerendered as ?embed=true shows it (SLUG-embed.html; early.js goes to the variant
    the query asks for). `quick` (quick_start's): the loading panel offers its pad, and
    Bokeh's scripts run only after its first reading (assets/defer.js)."""
    head = page_html.find("<head>")
    if head < 0 or "</head>" not in page_html or "</body>" not in page_html:
        raise BuildError("Panel's page template changed (no <head>, </head> or </body>)")
    early = (ASSETS / "early.js").read_text(encoding="utf-8").replace(
        "WORKER_URL", json.dumps(f"./{slug}.js")).replace(
        "PAGES", json.dumps({"full": f"./{slug}.html", "embed": f"./{slug}-embed.html",
                             "this": "embed" if embed else "full"}))
    if quick:  # the pad is drawn on while the page loads: Bokeh runs after (defer.js)
        page_html, deferred = _defer_bokeh(page_html)
        early += (ASSETS / "defer.js").read_text(encoding="utf-8").replace(
            "DEFERRED_SCRIPTS", json.dumps(deferred).replace("</", "<\\/"))
    css = (ASSETS / "loader.css").read_text(encoding="utf-8")
    js = (ASSETS / "loader.js").read_text(encoding="utf-8")
    head += len("<head>")
    page_html = (page_html[:head] + f"\n<script>\n{early}</script>" + page_html[head:])
    page_html = page_html.replace("</head>", f"<style>\n{css}</style>\n</head>", 1)
    i = page_html.rindex("</body>")
    pad = _quick_script(quick) if quick else ""
    return page_html[:i] + pad + f"<script>\n{js}</script>\n" + page_html[i:]

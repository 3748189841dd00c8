"""The pages of the static site: every page of webapp/ converted by Panel's
Pyodide-worker conversion (the engine of `panel convert --to pyodide-worker`), run here
once to prerender it, which also records the data files it opens (so its worker can fetch
exactly those while Python boots)."""

from __future__ import annotations

import html
import importlib.util
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import ROOT, BuildError

REDIRECT = """<!doctype html><meta charset="utf-8"><title>Demystify</title>
<script>location.replace({target!r} + location.search + location.hash)</script>
<noscript><meta http-equiv="refresh" content="0; url={target_attr}"></noscript>
<a href="{target_attr}">Demystify</a>
"""


@dataclass
class Page:
    slug: str
    module: str
    title: str
    html: str = ""
    embed_html: str = ""  # prerendered as ?embed=true shows it (only the demo)
    worker: str = ""  # Panel's worker script (its message protocol is kept)
    opened: list[str] = field(default_factory=list)  # data files the prerender read


def discover() -> list[Page]:
    """Every page the web app has now: the start page (webapp.app), then each page of the
    app's registry (webapp.common.PAGES, in its order), in the module webapp.server routes
    it to (or webapp.SLUG); a page added there is in the site with no change here."""
    from webapp.common import PAGES

    try:
        from webapp.server import MODULES
    except ImportError:
        MODULES = {}
    pages = [Page("app", "webapp.app", "Demystify")]
    for slug, title, _ in PAGES:
        module = f"webapp.{MODULES.get(slug, slug)}"
        if importlib.util.find_spec(module) is None:
            raise BuildError(f"webapp.common.PAGES lists {slug!r}, but {module} does not "
                             "exist")
        pages.append(Page(slug, module, f"Demystify · {title}"))
    return pages


class _OpenedFiles:
    """Records the project data files opened while a page is prerendered (a process-wide
    audit hook, installed once: audit hooks cannot be removed)."""

    roots = tuple(str(ROOT / p) for p in ("webapp/models", "webapp/assets"))
    current: list[str] | None = None
    installed = False

    @classmethod
    def hook(cls, event: str, args: tuple[Any, ...]) -> None:
        if event != "open" or cls.current is None or not args:
            return
        path = args[0]
        if isinstance(path, bytes):
            path = path.decode(errors="replace")
        if not isinstance(path, str):
            return
        full = str(Path(path).resolve())
        if full.startswith(cls.roots):
            rel = Path(full).relative_to(ROOT).as_posix()
            if rel not in cls.current:
                cls.current.append(rel)

    @classmethod
    def install(cls) -> None:
        if not cls.installed:
            sys.addaudithook(cls.hook)
            cls.installed = True


def convert(pages: list[Page], manifest: str | None = None) -> None:
    """Panel's conversion of each page, in this process (Panel's own process pool hangs
    here, and the pages are quick to convert one by one)."""
    _OpenedFiles.install()
    with tempfile.TemporaryDirectory() as tmp:
        for page in pages:
            _OpenedFiles.current = page.opened
            try:
                page.html, page.worker = _convert(page, Path(tmp), manifest, embed=False)
                page.embed_html, _ = _convert(page, Path(tmp), manifest, embed=True)
            finally:
                _OpenedFiles.current = None


def _convert(page: Page, tmp: Path, manifest: str | None, embed: bool) -> tuple[str, str]:
    """(page HTML, worker script) of one page, prerendered as a full page or, with
    `embed`, as ?embed=true shows it (the worker script is the same)."""
    from panel.io.convert import script_to_html
    from panel.io.resources import set_resource_mode

    import webapp.common

    script = tmp / f"page_{page.slug}.py"  # not engine.py: it would shadow the engine
    script.write_text(f"from {page.module} import page\n\n"
                      f"page().servable(title={page.title!r})\n")
    query = webapp.common.session_args
    if embed:  # the query a static page's worker reads from its own location
        webapp.common.session_args = lambda: {"embed": [b"true"]}
    try:
        with set_resource_mode("cdn"):  # as Panel's convert_app: rewritten offline
            html, worker = script_to_html(
                str(script), requirements=[], runtime="pyodide-worker", prerender=True,
                panel_version="auto", compiled=False, manifest=manifest)
    except Exception as exc:
        raise BuildError(f"Panel could not convert the {page.slug} page: "
                         f"{type(exc).__name__}: {exc}") from exc
    finally:
        webapp.common.session_args = query
    if not worker:
        raise BuildError(f"{page.slug}: Panel wrote no worker script")
    created = f'new Worker("./{script.stem}.js")'
    if created not in html:
        raise BuildError(f"{page.slug}: Panel's page template changed (no {created}); "
                         "update tools/site/pages.py")
    # started by the page's first script (assets/early.js, see worker.with_loader)
    return html.replace(created, "window.demystifyWorker", 1), worker


def write_redirect(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(REDIRECT.format(target=target, target_attr=html.escape(target)))

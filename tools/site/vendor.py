"""Offline builds: Panel's and Bokeh's JS, CSS, fonts and images from the installed
packages instead of their CDNs. Every CDN URL in the files the build writes is rewritten to
a copy in static/, and the build fails if any absolute URL is left.

Panel also names stylesheets at run time (each component's CSS, the template's theme),
computed from its CDN root; the worker points that root at static/panel/ (boot.py sets
PANEL_CDN_ROOT), so static/panel/ mirrors the CDN's layout (VERSION/dist/...) and holds the
folders those run-time names come from."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from .common import URL, BuildError, absolute_urls

PANEL_PREFIX = "static/panel"  # + /<version>/dist/..., as on cdn.holoviz.org/panel/
BOKEH_PREFIX = "static/bokeh"
# Panel's dist folders its run-time stylesheet names point into (small; the test that
# refuses every request to another host and every 404 proves nothing else is asked for)
PANEL_RUNTIME = ("css", "bundled/theme", "assets")


def _roots() -> tuple[Path, Path, str]:
    import bokeh
    import panel
    from panel.io.resources import JS_VERSION

    return (Path(panel.__file__).parent / "dist",
            Path(bokeh.__file__).parent / "server" / "static" / "js", JS_VERSION)


def panel_cdn_root() -> str:
    """The worker's PANEL_CDN_ROOT, relative to the site (see boot.py)."""
    return PANEL_PREFIX + "/"


def _copy(src: Path, dst: Path) -> None:
    if dst.exists():
        return
    if not src.is_file():
        raise BuildError(f"{src} is missing from the installed package")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)
    if dst.suffix == ".css":
        _copy_css_refs(src, dst)


def _copy_css_refs(src: Path, dst: Path) -> None:
    """Copy the relative url(...) files a vendored stylesheet uses (fonts, images)."""
    text = src.read_text("utf-8", "replace")
    for ref in re.findall(r"url\(\s*['\"]?([^'\")]+)['\"]?\s*\)", text):
        if ref.startswith(("data:", "http:", "https:", "#", "/")):
            continue
        ref = ref.split("?")[0].split("#")[0]
        s = (src.parent / ref).resolve()
        if s.is_file():
            _copy(s, (dst.parent / ref).resolve())


def vendor_runtime(out: Path) -> None:
    """The Panel folders its run-time stylesheet URLs point into."""
    panel_dist, _, version = _roots()
    for sub in PANEL_RUNTIME:
        for src in sorted((panel_dist / sub).rglob("*")):
            if src.is_file() and src.suffix != ".map":
                _copy(src, out / PANEL_PREFIX / version / "dist" / src.relative_to(panel_dist))


def favicon(out: Path) -> None:
    _copy(_roots()[0] / "images" / "favicon.ico", out / "favicon.ico")


def local_path(url: str, out: Path) -> str | None:
    """Copy the file a CDN URL names from the installed packages; its path in the site."""
    panel_dist, bokeh_js, _ = _roots()
    url = url.split("#")[0].split("?")[0]
    m = re.fullmatch(r"https://cdn\.holoviz\.org/panel/([^/]+)/dist/(.+)", url)
    if m:
        _copy(panel_dist / m.group(2), out / PANEL_PREFIX / m.group(1) / "dist" / m.group(2))
        return f"{PANEL_PREFIX}/{m.group(1)}/dist/{m.group(2)}"
    m = re.fullmatch(r"https://cdn\.bokeh\.org/bokeh/(?:release|dev)/(.+)", url)
    if m:  # the CDN's names carry the version, the package's do not
        rel = re.sub(r"-\d+\.\d+\.\d+[^/]*?((?:\.min)?\.js)$", r"\1", m.group(1))
        _copy(bokeh_js / rel, out / BOKEH_PREFIX / rel)
        return f"{BOKEH_PREFIX}/{rel}"
    return None


def rewrite_offline(out: Path, files: list[Path]) -> None:
    """Point every CDN URL in `files` at a vendored copy; fail on any absolute URL left."""
    for path in files:
        text = path.read_text(encoding="utf-8")
        up = "../" * (len(path.relative_to(out).parts) - 1) or "./"

        def sub(m: re.Match[str], up: str = up) -> str:
            local = local_path(m.group(0), out)
            return up + local if local else m.group(0)

        path.write_text(URL.sub(sub, text), encoding="utf-8")
    left = {str(p.relative_to(out)): absolute_urls(p.read_text(encoding="utf-8"))
            for p in files}
    left = {k: v for k, v in left.items() if v}
    if left:
        raise BuildError("absolute URLs left in the offline build: "
                         + "; ".join(f"{k}: {', '.join(v[:5])}" for k, v in left.items()))

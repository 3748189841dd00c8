"""Static browser build of the web app (`python build.py site`) and the slide deck
(`python build.py slides`). Runs inside .venv (it needs Panel); build.py calls it.

site: every page of webapp/ becomes a Pyodide-worker page (Panel's `convert_apps`, the
engine of `panel convert --to pyodide-worker`), the project becomes one wheel (engine with
shaders/*.wgsl, webapp with models/ and assets/), and the folder works from any static
file server. The page starts the engine's WebGPU device before the app runs (NumPy with a
visible notice when there is none).

  online  (default): Pyodide, Panel and Bokeh come from their public CDNs.
  --offline: nothing is fetched from another host. The Pyodide runtime and its packages
             are copied from a full Pyodide distribution (--pyodide-dist or PYODIDE_DIST),
             Bokeh/Panel JS and CSS from the installed packages, and every other wheel is
             repacked from .venv; the CDN URLs are rewritten to relative ones and the build
             fails if any absolute URL is left in the files it wrote.

slides: a reveal.js deck (vendored from node_modules/reveal.js) embedding two demos as
iframes (`?embed=true`) from the static site or a served app (--base).
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import html
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MARKER = ".demystify-build"
PLACEHOLDER = "http://demystify.invalid/"  # wheel URLs Panel passes through, made relative
PYODIDE_VERSION = "0.29.3"  # must match panel.io.convert.PYODIDE_VERSION and package.json
# Absolute URLs a page never fetches (XML namespaces, licence and doc links in comments).
HARMLESS = re.compile(r"https?://(www\.w3\.org|www\.apache\.org/licenses|opensource\.org"
                      r"|github\.com|bokeh\.org/?[\"'<\s]|holoviz\.org/?[\"'<\s])")
URL = re.compile(r"""https?://[^\s"'`<>()\\]+""")

# Run in the worker before the page's own code: WebGPU device (or a NumPy notice) first.
BROWSER_INIT = """import os
os.environ.setdefault("DEMYSTIFY_DEVICE", "auto")
import engine.backends.gpu.browser as _demystify_gpu
await _demystify_gpu.init()
"""


class BuildError(RuntimeError):
    """A problem the user can fix; printed without a traceback."""


def say(msg: str) -> None:
    print(f"build.py: {msg}", file=sys.stderr, flush=True)


def prepare_out(out: Path) -> None:
    """Create `out`, or empty it when it is one of our builds (never a foreign folder)."""
    if out.exists():
        if any(out.iterdir()) and not (out / MARKER).exists():
            raise BuildError(f"{out} exists and is not a Demystify build (no {MARKER}); "
                             "choose another --out or empty it yourself")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("built by `python build.py`; the whole folder is replaced on "
                              "the next build\n")


# --------------------------------------------------------------------------- pages


def discover_pages() -> dict[str, str]:
    """{slug: module} for every page the web app has now: the start page (webapp.app) and
    the demo pages webapp.server routes to (whichever of them exist)."""
    pages = {"app": "webapp.app"}
    try:
        from webapp.server import MODULES
    except ImportError:
        MODULES = {}
    for slug, mod in MODULES.items():
        if importlib.util.find_spec(f"webapp.{mod}") is not None:
            pages[slug] = f"webapp.{mod}"
    return pages


def page_titles() -> dict[str, str]:
    try:
        from webapp.common import PAGES
    except ImportError:
        return {}
    return {slug: title for slug, title, _ in PAGES}


def stage_pages(pages: dict[str, str], folder: Path) -> list[Path]:
    """One tiny script per page (what runs in the worker): import the page, make it
    servable. The page modules themselves come from the project's wheel."""
    titles = page_titles()
    scripts = []
    for slug, module in pages.items():
        title = "Demystify" + (f" · {titles[slug]}" if slug in titles else "")
        src = (f"from {module} import page\n\n"
               f"page().servable(title={title!r})\n")
        path = folder / f"page_{slug}.py"  # not `engine.py`: it would shadow the engine
        path.write_text(src)
        scripts.append(path)
    return scripts


# --------------------------------------------------------------------------- wheels


def build_wheel(dest: Path) -> Path:
    """`pip wheel . --no-deps`; checks that the shaders and the demo files are inside."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
               "--no-build-isolation", "--disable-pip-version-check", "-q", "-w", tmp]
        rc = subprocess.call(cmd, cwd=ROOT)
        if rc:
            raise BuildError(f"`pip wheel . --no-deps` failed (exit code {rc}); see above")
        built = list(Path(tmp).glob("demystify-*.whl"))
        if not built:
            raise BuildError("pip wheel produced no demystify-*.whl")
        wheel = dest / built[0].name
        shutil.move(built[0], wheel)
    names = zipfile.ZipFile(wheel).namelist()
    shaders = sorted(p.name for p in (ROOT / "shaders").glob("*.wgsl"))
    missing = [f"engine/shaders/{s}" for s in shaders if f"engine/shaders/{s}" not in names]
    for folder in ("models", "assets"):
        for p in sorted((ROOT / "webapp" / folder).glob("*")):
            if p.is_file() and f"webapp/{folder}/{p.name}" not in names:
                missing.append(f"webapp/{folder}/{p.name}")
    if missing:
        raise BuildError(f"the wheel {wheel.name} lacks {', '.join(missing[:8])}; rebuild "
                         "after checking setup.py / pyproject.toml package-data")
    return wheel


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_closure(roots: list[str], provided: set[str]) -> list[str]:
    """Distribution names needed by `roots` in Pyodide (markers evaluated for Emscripten),
    from the metadata of what is installed here. Names in `provided` (the Pyodide
    distribution's packages) are included but not descended into: Pyodide resolves their
    dependencies itself."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement

    env = {"sys_platform": "emscripten", "platform_system": "Emscripten", "os_name": "posix",
           "platform_machine": "wasm32", "implementation_name": "cpython", "extra": ""}
    seen: dict[str, str] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if _norm(name) in seen:
            continue
        if _norm(name) in provided:
            seen[_norm(name)] = name
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError as exc:
            raise BuildError(f"{name} is needed in the browser but not installed in .venv; "
                             "run `python build.py serve` once to install it") from exc
        seen[_norm(name)] = dist.metadata["Name"]
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate(env):
                todo.append(req.name)
    return sorted(seen.values(), key=str.lower)


# Folders of installed packages that the browser never needs (served as static files, or
# server-only); dropping them keeps the repacked wheels small.
STRIP = {"panel": ("panel/dist/", "panel/tests/", "panel/examples/"),
         "bokeh": ("bokeh/server/static/", "bokeh/sampledata/")}


def repack_installed(name: str, dest: Path) -> Path:
    """A py3-none-any wheel of an installed pure-Python distribution, from its RECORD (so
    offline builds need no package index)."""
    from importlib.metadata import distribution

    dist = distribution(name)
    wheel_meta = dist.read_text("WHEEL") or ""
    if "Root-Is-Purelib: true" not in wheel_meta:
        raise BuildError(f"{name} is not pure Python, and the Pyodide distribution does not "
                         "have it either; it cannot run in the browser")
    site = Path(str(dist.locate_file("")))
    version = dist.version
    stem = f"{re.sub(r'[-.]+', '_', dist.metadata['Name'])}-{version}"
    wheel = dest / f"{stem}-py3-none-any.whl"
    strip = STRIP.get(_norm(name), ())
    records = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        info_dir = None
        for f in dist.files or []:
            rel = f.as_posix()
            if rel.startswith("..") or "__pycache__" in rel or rel.endswith(".pyc"):
                continue
            if any(rel.startswith(s) for s in strip):
                continue
            src = site / rel
            if not src.is_file():
                continue
            if rel.endswith(".dist-info/RECORD"):
                info_dir = rel.rsplit("/", 1)[0]
                continue
            if rel.endswith(("INSTALLER", "direct_url.json", "REQUESTED")):
                continue
            data = src.read_bytes()
            zf.writestr(rel, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            records.append((rel, f"sha256={digest.decode()}", str(len(data))))
        if info_dir is None:
            raise BuildError(f"{name} has no RECORD; cannot repack it")
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(records + [(f"{info_dir}/RECORD", "",
                                                                    "")])
        zf.writestr(f"{info_dir}/RECORD", buf.getvalue())
    return wheel


# --------------------------------------------------------------------------- pyodide dist


def find_pyodide_dist(given: str | None) -> Path:
    """A full Pyodide distribution (runtime + pyodide-lock.json + package wheels)."""
    raw = given or os.environ.get("PYODIDE_DIST")
    if not raw:
        raise BuildError(
            "--offline needs a full Pyodide distribution: pass --pyodide-dist PATH or set "
            f"PYODIDE_DIST (pyodide-{PYODIDE_VERSION}.tar.bz2 from "
            "github.com/pyodide/pyodide/releases, unpacked; the npm `pyodide` package has "
            "only the core runtime, without numpy)")
    dist = Path(raw).expanduser().resolve()
    need = ["pyodide.js", "pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip",
            "pyodide-lock.json"]
    missing = [n for n in need if not (dist / n).is_file()]
    if missing:
        raise BuildError(f"{dist} is not a Pyodide distribution: missing {', '.join(missing)}")
    return dist


def lock_packages(dist: Path) -> dict[str, dict[str, Any]]:
    return {_norm(k): v for k, v in
            json.loads((dist / "pyodide-lock.json").read_text())["packages"].items()}


def copy_pyodide(dist: Path, packages: list[str], out: Path) -> list[str]:
    """Copy the runtime and the wheels of `packages` (with their lock dependencies);
    fail naming the package files the distribution lacks (e.g. numpy in the npm core)."""
    lock = lock_packages(dist)
    dest = out / "pyodide"
    dest.mkdir()
    for name in ("pyodide.js", "pyodide.mjs", "pyodide.asm.js", "pyodide.asm.wasm",
                 "python_stdlib.zip", "pyodide-lock.json", "package.json"):
        if (dist / name).is_file():
            shutil.copy2(dist / name, dest / name)
    todo, done, missing = list(packages), set(), []
    while todo:
        name = _norm(todo.pop())
        if name in done:
            continue
        done.add(name)
        entry = lock[name]
        src = dist / entry["file_name"]
        if not src.is_file():
            missing.append(f"{entry['file_name']} ({name})")
        else:
            shutil.copy2(src, dest / entry["file_name"])
        todo.extend(entry.get("depends", []))
    if missing:
        raise BuildError(f"the Pyodide distribution {dist} lacks {', '.join(sorted(missing))}"
                         "; --offline needs the full distribution (pyodide-"
                         f"{PYODIDE_VERSION}.tar.bz2), not the npm core runtime")
    return sorted(done)


# --------------------------------------------------------------------------- rewriting


def _vendor_url(url: str, out: Path) -> str | None:
    """Copy the file a CDN URL names from the installed packages; its relative path."""
    import bokeh
    import panel
    from panel.io.convert import PYODIDE_VERSION as PANEL_PYODIDE

    url = url.split("#")[0].split("?")[0]
    panel_dist = Path(panel.__file__).parent / "dist"
    bokeh_static = Path(bokeh.__file__).parent / "server" / "static"
    rules = [(re.compile(r"https://cdn\.holoviz\.org/panel/[^/]+/dist/(.+)"), panel_dist,
              "static/panel"),
             (re.compile(r"https://cdn\.bokeh\.org/bokeh/(?:release|dev)/(.+)"),
              bokeh_static / "js", "static/bokeh"),
             (re.compile(rf"https://cdn\.jsdelivr\.net/pyodide/{re.escape(PANEL_PYODIDE)}"
                         r"/(?:full|pyc)/(.+)"), None, "pyodide")]
    for pattern, src_root, prefix in rules:
        m = pattern.fullmatch(url)
        if not m:
            continue
        rel = m.group(1)
        if prefix == "static/bokeh":  # the CDN names carry the version, the package not
            rel = re.sub(r"-\d+\.\d+\.\d+[^/]*?((?:\.min)?\.js)$", r"\1", rel)
        if src_root is not None:
            src = src_root / rel
            if not src.is_file():
                raise BuildError(f"{url} is not in the installed package ({src} missing)")
            dst = out / prefix / rel
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
                if dst.suffix == ".css":
                    _vendor_css_refs(src, dst)
        return f"{prefix}/{rel}"
    return None


def _vendor_css_refs(src: Path, dst: Path) -> None:
    """Copy the relative url(...) files a vendored stylesheet uses (fonts, images)."""
    for ref in re.findall(r"url\(\s*['\"]?([^'\")]+)['\"]?\s*\)", src.read_text("utf-8",
                                                                                 "replace")):
        if ref.startswith(("data:", "http:", "https:", "#", "/")):
            continue
        ref = ref.split("?")[0].split("#")[0]
        s, d = (src.parent / ref).resolve(), (dst.parent / ref)
        if s.is_file() and not d.exists():
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, d)


def absolute_urls(text: str) -> list[str]:
    return sorted({u for u in URL.findall(text) if not HARMLESS.match(u)})


def rewrite_offline(out: Path, files: list[Path]) -> None:
    """Point every CDN URL in the files we wrote at a vendored copy; fail on any absolute
    URL that is left."""
    for path in files:
        text = path.read_text(encoding="utf-8")
        depth = len(path.relative_to(out).parts) - 1
        up = "../" * depth or "./"

        def sub(m: re.Match[str], up: str = up) -> str:
            local = _vendor_url(m.group(0), out)
            return up + local if local else m.group(0)

        text = URL.sub(sub, text)
        path.write_text(text, encoding="utf-8")
    left = {str(p.relative_to(out)): absolute_urls(p.read_text(encoding="utf-8"))
            for p in files}
    left = {k: v for k, v in left.items() if v}
    if left:
        raise BuildError("absolute URLs left in the offline build: "
                         + "; ".join(f"{k}: {', '.join(v[:5])}" for k, v in left.items()))


# --------------------------------------------------------------------------- site


def _escape_for_worker(code: str) -> str:
    """How Panel embeds Python source in the worker's JS template literal."""
    return code.encode("unicode_escape").decode("utf-8").replace("`", r"\`")


def patch_worker(js: Path, env: list[str] | None, wheel_urls: dict[str, str]) -> None:
    """Start WebGPU before the app; make wheel URLs relative; in offline builds install
    exactly `env` (no package index is asked: deps=False)."""
    text = js.read_text(encoding="utf-8")
    anchor = _escape_for_worker("from panel.io.pyodide import init_doc, write_doc\n")
    if anchor not in text:
        raise BuildError(f"{js.name}: Panel's worker template changed (no init_doc import); "
                         "update tools/site.py")
    text = text.replace(anchor, _escape_for_worker(BROWSER_INIT) + anchor, 1)
    for old, new in wheel_urls.items():
        text = text.replace(old, new)
    if env is not None:
        m = re.search(r"await micropip\.install\(\[(.*?)\]\);", text, re.S)
        if not m:
            raise BuildError(f"{js.name}: no micropip.install([...]) in the worker")
        spec = ", ".join(repr(e) for e in env)
        text = text[:m.start()] + f"await micropip.install([{spec}], deps=False);" + \
            text[m.end():]
    js.write_text(text, encoding="utf-8")


REDIRECT = """<!doctype html><meta charset="utf-8"><title>Demystify</title>
<script>location.replace({target!r} + location.search + location.hash)</script>
<noscript><meta http-equiv="refresh" content="0; url={target_attr}"></noscript>
<a href="{target_attr}">Demystify</a>
"""


def write_redirect(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(REDIRECT.format(target=target, target_attr=html.escape(target)))


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def convert_pages(scripts: list[Path], out: Path, reqs: list[str], pwa: bool,
                  title: str) -> None:
    """`panel convert --to pyodide-worker` for each page, in this process (Panel's own
    process pool hangs here, and the pages are quick to convert one by one)."""
    from panel.io.convert import (
        PWA_IMAGES,
        SERVICE_WORKER_TEMPLATE,
        build_pwa_manifest,
        convert_app,
    )

    files = {}
    for script in scripts:
        slug = script.stem.removeprefix("page_")
        res = convert_app(str(script), out, requirements=reqs, runtime="pyodide-worker",
                          prerender=True, manifest="site.webmanifest" if pwa else None,
                          verbose=False)
        if res is None:
            raise BuildError(f"Panel could not convert the {slug} page (its message is "
                             "above)")
        page = out / f"{slug}.html"
        text = (out / f"{script.stem}.html").read_text(encoding="utf-8")
        worker = f'new Worker("./{script.stem}.js")'
        if worker not in text:
            raise BuildError(f"{slug}: Panel's page template changed (no {worker}); update "
                             "tools/site.py")
        # the worker gets the page's query (?embed=true, ?theme=dark): Python reads it
        # from its own location (webapp.common.session_args)
        page.write_text(text.replace(worker, f'new Worker("./{slug}.js" + location.search)'),
                        encoding="utf-8")
        (out / f"{script.stem}.html").unlink()
        (out / f"{script.stem}.js").replace(out / f"{slug}.js")
        files[slug] = page.name
    if not pwa:
        return
    (out / "images").mkdir(exist_ok=True)
    for img in PWA_IMAGES:
        shutil.copy2(img, out / "images" / img.name)
    (out / "site.webmanifest").write_text(build_pwa_manifest(files, title=title),
                                          encoding="utf-8")
    pre = ", ".join(repr(f"images/{img.name}") for img in PWA_IMAGES)
    (out / "serviceWorker.js").write_text(SERVICE_WORKER_TEMPLATE.render(
        uuid=uuid.uuid4().hex, name=title, pre_cache=pre),  # new cache per build
        encoding="utf-8")


def build_site(args: argparse.Namespace) -> dict[str, Any]:
    from panel.io.convert import BOKEH_CDN_WHL, PANEL_CDN_WHL
    from panel.io.convert import PYODIDE_VERSION as PANEL_PYO

    if PANEL_PYO.lstrip("v") != PYODIDE_VERSION:
        say(f"warning: Panel uses Pyodide {PANEL_PYO}, tools/site.py expects "
            f"{PYODIDE_VERSION}")
    t0 = time.perf_counter()
    out = Path(args.out).resolve()
    dist = find_pyodide_dist(args.pyodide_dist) if args.offline else None
    prepare_out(out)
    wheels = out / "wheels"
    say("building the project wheel (pip wheel . --no-deps)")
    wheel = build_wheel(wheels)
    pages = discover_pages()
    say(f"converting {len(pages)} page(s) for Pyodide: {', '.join(pages)}")
    wheel_urls = {PLACEHOLDER + f"wheels/{wheel.name}": f"./wheels/{wheel.name}"}
    env: list[str] | None = None
    if dist is not None:
        lock = lock_packages(dist)
        # Panel and Bokeh come from .venv, as online from Panel's CDN: the versions must
        # match the JS the pages load (Pyodide's own bokeh is older).
        provided = set(lock) - {"panel", "bokeh"}
        closure = requirement_closure(["panel", "bokeh", "demystify"], provided)
        in_dist = [n for n in closure if _norm(n) in provided] + ["micropip", "pyodide-http"]
        local = [n for n in closure if _norm(n) not in provided and _norm(n) != "demystify"]
        say(f"offline: {len(in_dist)} packages from the Pyodide distribution, "
            f"{len(local)} repacked from .venv ({', '.join(local)})")
        copied = copy_pyodide(dist, in_dist, out)
        repacked = [repack_installed(n, wheels) for n in local]
        env = sorted(set(in_dist)) + [f"./wheels/{w.name}" for w in repacked] + \
            [f"./wheels/{wheel.name}"]
        wheel_urls.update({PANEL_CDN_WHL: "./wheels/" + next(
            w.name for w in repacked if w.name.lower().startswith("panel-")),
            BOKEH_CDN_WHL: "./wheels/" + next(
            w.name for w in repacked if w.name.lower().startswith("bokeh-"))})
    else:
        copied = []
    with tempfile.TemporaryDirectory() as tmp:
        scripts = stage_pages(pages, Path(tmp))
        reqs = ["numpy", "pillow", PLACEHOLDER + f"wheels/{wheel.name}"]
        convert_pages(scripts, out, reqs, pwa=args.pwa, title=args.title)
    missing = [s for s in pages if not (out / f"{s}.html").is_file()
               or not (out / f"{s}.js").is_file()]
    if missing:
        raise BuildError(f"Panel did not convert page(s) {', '.join(missing)} (see its "
                         "messages above)")
    for slug in pages:
        patch_worker(out / f"{slug}.js", env, wheel_urls)
        write_redirect(out / slug / "index.html", f"../{slug}.html")  # ./digits links
    write_redirect(out / "index.html", "./app.html")
    written = [out / f"{s}.{ext}" for s in pages for ext in ("html", "js")]
    written += [out / "index.html"] + [out / s / "index.html" for s in pages]
    written += [p for p in (out / "site.webmanifest", out / "serviceWorker.js") if p.exists()]
    if args.offline:
        rewrite_offline(out, written)
    info = {"mode": "offline" if args.offline else "online", "pages": list(pages),
            "wheels": sorted(p.name for p in wheels.glob("*.whl")),
            "pyodide_packages": copied, "pwa": bool(args.pwa),
            "bytes": folder_size(out), "seconds": round(time.perf_counter() - t0, 1)}
    (out / "site.json").write_text(json.dumps(info, indent=1))
    say(f"wrote {out} ({info['bytes'] / 2**20:.1f} MiB, {len(pages)} pages, "
        f"{info['mode']}) in {info['seconds']} s; serve it with any static file server, "
        f"e.g. python -m http.server -d {os.path.relpath(out)}")
    return info


# --------------------------------------------------------------------------- slides

SLIDES = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demystify: deep learning you can touch</title>
<link rel="stylesheet" href="reveal/reveal.css">
<link rel="stylesheet" href="reveal/theme/white.css">
<style>
.reveal iframe.demo {{width: 100%; height: 600px; border: 0; background: #fff;}}
.reveal .small {{font-size: 0.55em; opacity: 0.7;}}
</style></head>
<body><div class="reveal"><div class="slides">
<section><h2>Demystify</h2><p>Deep learning you can touch</p>
<p class="small">Every number on the next slides is computed live, by a small engine whose
GPU kernels are WGSL compute shaders (WebGPU in this browser, NumPy without it).</p></section>
{demos}
<section><h3>How it runs</h3><ul>
<li>Python in the browser (Pyodide), the engine's kernels on WebGPU</li>
<li>The same code and shaders on a server through wgpu</li>
<li><code>python build.py site</code>: a static folder for any host</li></ul></section>
</div></div>
<script src="reveal/reveal.js"></script>
<script>Reveal.initialize({{hash: true, width: 1280, height: 800, margin: 0.02}});</script>
</body></html>
"""

DEMO_SLIDE = """<section><h3>{title}</h3>
<iframe class="demo" data-src="{url}" loading="lazy" title="{title} demo"></iframe>
<p class="small">{desc} · <a href="{url}" target="_blank">open</a></p></section>"""


def build_slides(args: argparse.Namespace) -> dict[str, Any]:
    reveal = ROOT / "node_modules" / "reveal.js" / "dist"
    if not (reveal / "reveal.js").is_file():
        raise BuildError(f"reveal.js is not installed ({reveal} missing); run `npm ci` in "
                         f"{ROOT}")
    out = Path(args.out).resolve()
    prepare_out(out)
    dest = out / "reveal"
    dest.mkdir()
    for name in ("reveal.js", "reveal.css", "reset.css"):
        shutil.copy2(reveal / name, dest / name)
    (dest / "theme").mkdir()
    shutil.copy2(reveal / "theme" / "white.css", dest / "theme" / "white.css")
    if (reveal / "theme" / "fonts").is_dir():
        shutil.copytree(reveal / "theme" / "fonts", dest / "theme" / "fonts")
    for lic in ("LICENSE",):
        if (reveal.parent / lic).is_file():
            shutil.copy2(reveal.parent / lic, dest / lic)
    descs = {}
    try:
        from webapp.common import PAGES
        descs = {slug: (title, d) for slug, title, d in PAGES}
    except ImportError:
        pass
    base = args.base if args.base.endswith("/") else args.base + "/"
    slides = []
    for slug in args.demos:
        title, desc = descs.get(slug, (slug.title(), ""))
        url = f"{base}{slug}?embed=true"
        slides.append(DEMO_SLIDE.format(title=html.escape(title), desc=html.escape(desc),
                                        url=html.escape(url)))
    (out / "index.html").write_text(SLIDES.format(demos="\n".join(slides)), encoding="utf-8")
    say(f"wrote {out / 'index.html'} (demos from {base}); serve the parent folder, e.g. "
        f"python -m http.server -d {os.path.relpath(out.parent)}")
    return {"demos": args.demos, "base": base}


# --------------------------------------------------------------------------- main


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python build.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    site = sub.add_parser("site", help="static browser build of the web app")
    site.add_argument("--out", default=str(ROOT / "dist" / "site"),
                      help="output folder (default dist/site; replaced on every build)")
    site.add_argument("--offline", action="store_true",
                      help="vendor everything: no URL of another host is left")
    site.add_argument("--pyodide-dist", default=None,
                      help="full Pyodide distribution folder for --offline (or PYODIDE_DIST)")
    site.add_argument("--pwa", action="store_true",
                      help="also write a web-app manifest and a caching service worker")
    site.add_argument("--title", default="Demystify")
    slides = sub.add_parser("slides", help="reveal.js deck embedding two demos")
    slides.add_argument("--out", default=str(ROOT / "dist" / "slides"))
    slides.add_argument("--base", default="../site/",
                        help="where the demos are: the static site (default ../site/, i.e. "
                        "dist/site next to dist/slides) or a served app, e.g. "
                        "http://localhost:5006/")
    slides.add_argument("--demos", nargs=2, default=["digits", "movies"], metavar="SLUG")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    sys.path.insert(0, str(ROOT))
    try:
        build_site(args) if args.command == "site" else build_slides(args)
    except BuildError as exc:
        say(f"error: {exc}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

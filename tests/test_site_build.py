"""`python build.py site` and `slides`: the static browser build and its output.

The online build (Pyodide/Panel/Bokeh from their CDNs) is built and checked file by file.
The offline build is checked against a stand-in Pyodide distribution (the npm core runtime
plus empty placeholder wheels): every reference it writes is relative and resolves to a
vendored file, and no absolute URL is left. With a real full distribution (PYODIDE_DIST),
an end-to-end test serves the offline build on loopback and has the digits page read a
drawn digit on WebGPU; without one it skips, saying so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.browser_helpers import NODE_PYODIDE, ROOT, chromium, require, webgpu_adapter

SITE_TOOL = ROOT / "tools" / "site.py"


def load_tool():
    """tools/site.py as a module (its name clashes with the stdlib's `site`)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("demystify_site_tool", SITE_TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


tool = load_tool()


def build(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(SITE_TOOL), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def written_text_files(out: Path) -> list[Path]:
    """The files the build writes itself (vendored libraries excluded)."""
    return [p for p in out.rglob("*") if p.is_file()
            and p.suffix in (".html", ".js", ".json", ".webmanifest", ".css")
            and p.relative_to(out).parts[0] not in ("static", "pyodide", "images")]


@pytest.fixture(scope="module")
def online(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "online"
    build("site", "--out", str(out), "--pwa")
    return out


def test_online_build_has_every_page_wheel_and_asset(online):
    info = json.loads((online / "site.json").read_text())
    pages = tool.discover_pages()
    assert info["mode"] == "online" and info["pages"] == list(pages)
    assert set(pages) >= {"app"}
    for slug in pages:
        html = (online / f"{slug}.html").read_text()
        worker = (online / f"{slug}.js").read_text()
        assert f'new Worker("./{slug}.js" + location.search)' in html, slug  # ?embed
        assert "_demystify_gpu.init()" in worker, f"{slug}: WebGPU is not started first"
        assert "./wheels/demystify-" in worker and "demystify.invalid" not in worker
        assert "cdn.jsdelivr.net/pyodide/" in worker  # online: Pyodide from its CDN
        stub = (online / slug / "index.html").read_text()  # ./digits links of the app
        assert f"../{slug}.html" in stub and "location.search" in stub
    assert "./app.html" in (online / "index.html").read_text()
    for name in ("site.webmanifest", "serviceWorker.js", "images/favicon.ico"):
        assert (online / name).is_file(), f"--pwa did not write {name}"
    (wheel,) = online.glob("wheels/demystify-*-py3-none-any.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for p in sorted((ROOT / "shaders").glob("*.wgsl")):
        assert f"engine/shaders/{p.name}" in names
    for folder in ("models", "assets"):
        for p in sorted((ROOT / "webapp" / folder).iterdir()):
            if p.is_file():
                assert f"webapp/{folder}/{p.name}" in names
    assert "engine/backends/gpu/browser.py" in names
    assert info["bytes"] == sum(p.stat().st_size for p in online.rglob("*") if p.is_file()) \
        - (online / "site.json").stat().st_size


def test_offline_needs_a_full_pyodide_distribution(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYODIDE_DIST"}
    proc = subprocess.run([sys.executable, str(SITE_TOOL), "site", "--offline", "--out",
                           str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 2 and "PYODIDE_DIST" in proc.stderr, proc.stderr
    require((NODE_PYODIDE / "pyodide.js").is_file(), "npm pyodide missing (run `npm ci`)")
    proc = build("site", "--offline", "--pyodide-dist", str(NODE_PYODIDE), "--out",
                 str(tmp_path / "o"), check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "numpy-" in proc.stderr and "full distribution" in proc.stderr, proc.stderr[-2000:]


def fake_full_dist(folder: Path) -> Path:
    """The npm core runtime plus an empty file for every package in its lock file."""
    folder.mkdir()
    for p in NODE_PYODIDE.iterdir():
        if p.is_file():
            shutil.copy2(p, folder / p.name)
    lock = json.loads((folder / "pyodide-lock.json").read_text())["packages"]
    for entry in lock.values():
        (folder / entry["file_name"]).write_bytes(b"")
    return folder


def test_offline_build_leaves_no_absolute_url(tmp_path):
    require((NODE_PYODIDE / "pyodide.js").is_file(), "npm pyodide missing (run `npm ci`)")
    out = tmp_path / "offline"
    build("site", "--offline", "--pyodide-dist", str(fake_full_dist(tmp_path / "dist")),
          "--out", str(out))
    info = json.loads((out / "site.json").read_text())
    assert info["mode"] == "offline" and "numpy" in info["pyodide_packages"]
    files = written_text_files(out)
    assert files
    for path in files:
        text = path.read_text()
        assert tool.absolute_urls(text) == [], f"{path.relative_to(out)} fetches from the web"
        # every relative static/, pyodide/ and wheels/ reference resolves to a vendored file
        for ref in re.findall(r"""["'(](\.{1,2}/(?:\.\./)*(?:static|pyodide|wheels)/[^"'?#)]+)""",
                              text):
            assert (path.parent / ref).resolve().is_file(), f"{path.name}: {ref} missing"
    for slug in info["pages"]:
        worker = (out / f"{slug}.js").read_text()
        assert 'importScripts("./pyodide/pyodide.js")' in worker
        assert "deps=False" in worker  # installs exactly the vendored set, asks no index
        for whl in re.findall(r"\./wheels/[^'\"]+\.whl", worker):
            assert (out / whl).is_file(), whl
    assert (out / "static" / "bokeh" / "bokeh.min.js").is_file()
    assert (out / "static" / "panel" / "panel.min.js").is_file()
    assert (out / "pyodide" / "pyodide.asm.wasm").is_file()


def test_slides_embed_two_demos_and_vendor_reveal(tmp_path):
    require((ROOT / "node_modules" / "reveal.js" / "dist" / "reveal.js").is_file(),
            "npm reveal.js missing (run `npm ci`)")
    out = tmp_path / "slides"
    build("slides", "--out", str(out))
    html = (out / "index.html").read_text()
    frames = re.findall(r'<iframe class="demo" data-src="([^"]+)"', html)
    assert frames == ["../site/digits?embed=true", "../site/movies?embed=true"]
    assert tool.absolute_urls(html) == []
    for ref in re.findall(r'(?:src|href)="(reveal/[^"]+)"', html):
        assert (out / ref).is_file(), ref


@pytest.mark.browser
@pytest.mark.slow
def test_offline_site_reads_a_drawn_digit_on_webgpu(tmp_path):
    """End to end: offline build, loopback server, Chromium on SwiftShader WebGPU."""
    dist = os.environ.get("PYODIDE_DIST")
    if not dist:
        pytest.skip("PYODIDE_DIST is not set: the end-to-end offline test needs a full "
                    "Pyodide distribution (numpy, pandas, ...); the npm package has only "
                    "the core runtime")
    from tests.data_helpers import LocalServer
    from tests.test_webapp_browser import draw, wait_text

    out = tmp_path / "offline"
    build("site", "--offline", "--pyodide-dist", dist, "--out", str(out))
    server = LocalServer(out)
    try:
        with chromium() as browser:
            page = browser.new_page()
            foreign: list[str] = []
            page.route("**/*", lambda r: (r.continue_() if r.request.url.startswith(
                server.url) else (foreign.append(r.request.url), r.abort())))
            page.goto(server.url + "index.html")
            adapter = webgpu_adapter(page)
            t0 = time.perf_counter()
            page.goto(server.url + "digits")
            page.locator("canvas.dc-canvas").wait_for(timeout=300_000)
            draw(page, [(70, 60), (210, 60), (120, 240)])
            wait_text(page, ".prediction", r"^7$", timeout_s=300)
            cold = time.perf_counter() - t0
            badge = page.locator(".device-badge").first.inner_text()
    finally:
        server.close()
    assert not foreign, f"the offline site fetched {foreign[:5]}"
    assert badge.startswith("GPU"), f"not on WebGPU ({adapter}): {badge}"
    print(f"\noffline site: first prediction {cold:.1f} s after opening the page ({adapter})")

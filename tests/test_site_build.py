"""`python build.py site` and `slides`: the static build's files, checked without a browser
(tests/test_browser_site.py drives every page of a real build in Chromium).

The online build is checked file by file. Offline builds run against stand-in Pyodide
releases made from the npm core runtime plus a one-module wheel for every wheel its lock
file lists (an empty file for its other archives): the build must read the release's
version from the folder, vendor exactly that folder's runtime and wheels, leave no
absolute URL, and stop naming a wheel it lacks or one that is not the lock's.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.browser_helpers import NODE_PYODIDE, ROOT, require
from tests.site_helpers import online_version
from tools.site import build_site, bundle, bytecode, pyodide_dist, wheels
from tools.site.common import BuildError, absolute_urls


def build(*args: str, check: bool = True, env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "tools.site", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env=env)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def worker_config(site: Path, slug: str) -> dict:
    text = (site / f"{slug}.js").read_text()
    m = re.search(r"^const CONFIG = (\{.*?\n\});$", text, re.S | re.M)
    assert m, f"{slug}.js has no CONFIG"
    return json.loads(m.group(1))


def written_text_files(out: Path) -> list[Path]:
    """The files the build writes itself (vendored libraries excluded)."""
    return [p for p in out.rglob("*") if p.is_file()
            and p.suffix in (".html", ".js", ".json", ".webmanifest", ".css")
            and p.relative_to(out).parts[0] not in ("static", "pyodide", "images", "data")]


def stand_in_release(folder: Path, version: str | None = None) -> Path:
    """The npm core runtime plus an empty file for every package in its lock file."""
    require((NODE_PYODIDE / "pyodide.js").is_file(), "npm pyodide missing (run `npm ci`)")
    folder.mkdir()
    for p in NODE_PYODIDE.iterdir():
        if p.is_file():
            shutil.copy2(p, folder / p.name)
    data = json.loads((folder / "pyodide-lock.json").read_text())
    for entry in data["packages"].values():
        path = folder / entry["file_name"]
        if path.suffix != ".whl":
            path.write_bytes(b"")
            continue
        stem = "-".join(path.name.split("-")[:2])
        top = entry.get("imports") or [path.name.split("-")[0].lower()]
        wheels.rewrite_wheel({f"{top[0]}/__init__.py": b"", f"{stem}.dist-info/METADATA":
                              f"Name: {entry['name']}\n".encode()}.__getitem__,
                             [f"{top[0]}/__init__.py", f"{stem}.dist-info/METADATA",
                              f"{stem}.dist-info/RECORD"], path)
        entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (folder / "pyodide-lock.json").write_text(json.dumps(data))
    if version is not None:
        pkg = json.loads((folder / "package.json").read_text())
        (folder / "package.json").write_text(json.dumps({**pkg, "version": version}))
    return folder


def test_online_build_has_every_page_wheel_and_data_file(online_site):
    online = online_site
    info = json.loads((online / "site.json").read_text())
    from tools.site import pages

    slugs = [p.slug for p in pages.discover()]
    assert info["mode"] == "online" and info["pages"] == slugs and "digits" in slugs
    assert info["pyodide"] == online_version()  # --pyodide-version
    assert "pandas" not in info["from_release"] + info["repacked"]
    assert "scipy" not in info["from_release"] + info["repacked"]
    for slug in slugs:
        html = (online / f"{slug}.html").read_text()
        # the worker starts first, with the page's query (?embed, ?theme), before the
        # page's scripts are fetched (a quick-start page preloads them: defer.js runs them)
        fetches = [i for i in (html.find(' src="'), html.find('rel="preload"')) if i >= 0]
        assert fetches, slug
        assert html.index(f'new Worker("./{slug}.js" + location.search)') < min(fetches), slug
        assert "demystify-loading" in html  # the loading panel
        config = worker_config(online, slug)
        assert config["indexURL"] == \
            f"https://cdn.jsdelivr.net/pyodide/v{online_version()}/full/"
        # online, the release's wheels come from the CDN through Pyodide's loader
        assert "numpy" in config["packages"] and "pyodide-http" in config["packages"]
        assert all("/" not in pkg for pkg in config["packages"])
        assert config["sitePackages"] == info["site_packages"]
        assert {"demystify", "panel", "bokeh"} <= set(config["bundled"])
        for rel, url in config["data"]["prefetch"] + config["data"]["lazy"]:
            assert (online / url).is_file() and url == f"./data/{rel}", url
        assert "_demystify_boot" in config["code"] and "_demystify_gpu" not in config["code"]
        stub = (online / slug / "index.html").read_text()  # ./digits links of the app
        assert f"../{slug}.html" in stub and "location.search" in stub
    assert "./app.html" in (online / "index.html").read_text()
    for name in ("site.webmanifest", "serviceWorker.js", "images/favicon.ico", "favicon.ico"):
        assert (online / name).is_file(), f"the build did not write {name}"
    (tar,) = online.glob("wheels/site-packages-*.tar.gz")  # every page's own packages
    # the wheels and the bytecode overlay are in the tar (the stdlib's bytecode is not)
    assert not list(online.glob("wheels/*.whl")) and not list(online.glob("bytecode/pyodide-*"))
    with tarfile.open(tar) as tf:
        names = set(tf.getnames())
    lower = {n.lower() for n in names}
    for wheel in info["wheels"]:  # each wheel's files, with its metadata
        stem = "-".join(wheel.split("-")[:2]).lower()
        assert f"{stem}.dist-info/metadata" in lower, wheel
    for p in sorted((ROOT / "shaders").glob("*.wgsl")):
        assert f"engine/shaders/{p.name}" in names
    assert "engine/backends/gpu/browser.py" in names
    for rel in wheels.data_files():  # served as files, fetched by the pages that open them
        assert rel not in names and (online / "data" / rel).is_file(), rel
    assert info["bytes"] == sum(p.stat().st_size for p in online.rglob("*") if p.is_file()) \
        - (online / "site.json").stat().st_size


def test_the_online_default_is_the_release_panel_targets():
    from panel.io.convert import PYODIDE_VERSION

    assert build_site.pyodide_version(None, None) == PYODIDE_VERSION.lstrip("v")
    assert build_site.pyodide_version("v0.27.7", None) == "0.27.7"


def test_offline_needs_a_full_pyodide_release(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYODIDE_DIST"}
    proc = build("site", "--offline", "--out", str(tmp_path / "o"), check=False, env=env)
    assert proc.returncode == 2 and "PYODIDE_DIST" in proc.stderr, proc.stderr
    require((NODE_PYODIDE / "pyodide.js").is_file(), "npm pyodide missing (run `npm ci`)")
    proc = build("site", "--offline", "--pyodide-dist", str(NODE_PYODIDE), "--out",
                 str(tmp_path / "o"), check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "numpy-" in proc.stderr and "full release" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "o").exists()  # nothing written before the check


def test_offline_build_vendors_the_folders_own_release_and_no_url(tmp_path):
    dist = stand_in_release(tmp_path / "dist", version="0.29.1")
    out = tmp_path / "offline"
    build("site", "--offline", "--pyodide-dist", str(dist), "--out", str(out), "--no-bytecode")
    info = json.loads((out / "site.json").read_text())
    assert info["mode"] == "offline" and info["pyodide"] == "0.29.1"  # read from the folder
    # the release's plain wheels are in the site's tar, any other the folder's own file
    assert "numpy" in info["bundled_packages"] and "pandas" not in info["bundled_packages"]
    lock = json.loads((dist / "pyodide-lock.json").read_text())["packages"]
    for name in info["pyodide_packages"]:
        assert (out / "pyodide" / lock[name]["file_name"]).is_file(), name
    for name in info["bundled_packages"]:
        assert not (out / "pyodide" / lock[name]["file_name"]).exists(), name
    for name in ("pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json"):
        assert hashlib.sha256((out / "pyodide" / name).read_bytes()).digest() == \
            hashlib.sha256((dist / name).read_bytes()).digest(), name
    files = written_text_files(out)
    assert files
    for path in files:
        text = path.read_text()
        assert absolute_urls(text) == [], f"{path.relative_to(out)} fetches from the web"
        # every relative static/, pyodide/, wheels/ and data/ reference resolves
        for ref in re.findall(r"""["'(](\.{1,2}/(?:\.\./)*(?:static|pyodide|wheels|data)/"""
                              r"""[^"'?#)]+)""", text):
            assert (path.parent / ref).resolve().exists(), f"{path.name}: {ref} missing"
    for slug in info["pages"]:
        config = worker_config(out, slug)
        assert config["indexURL"] == "./pyodide/" and config["pyodideVersion"] == "0.29.1"
        # offline, every wheel is in the site's tar (checked against the lock's sha256)
        assert config["packages"] == [] and {"numpy", "panel"} <= set(config["bundled"])
        with tarfile.open(out / config["sitePackages"]) as tf:
            names = set(tf.getnames())
        assert {"numpy/__init__.py", "demystify-0.1.0.dist-info/METADATA"} <= names
        assert config["totalBytes"] == sum(n for _, n in config["downloads"]) > 0
    from panel.io.resources import JS_VERSION

    panel_dist = out / "static" / "panel" / JS_VERSION / "dist"  # PANEL_CDN_ROOT's layout
    assert (panel_dist / "panel.min.js").is_file() and (panel_dist / "css").is_dir()
    assert (out / "static" / "bokeh" / "bokeh.min.js").is_file()


def test_the_tar_holds_back_the_later_packages_and_leaves_out_stubs(tmp_path):
    def wheel(name: str, files: list[str]) -> Path:
        path = tmp_path / f"{name}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as zf:
            for rel in files + [f"{name}-1.0.dist-info/METADATA"]:
                zf.writestr(rel, f"# {rel}")
        return path

    panel = wheel("panel", ["panel/__init__.py", "panel/__init__.pyi", "panel/py.typed",
                            "panel/models/card.ts"])
    narwhals = wheel("narwhals", ["narwhals/__init__.py", "narwhals/stable/v1.py"])
    ext = wheel("typing_extensions", ["typing_extensions.py"])
    numpy = wheel("numpy", ["numpy/__init__.py", "numpy/_core/include/numpy/npy.h"])
    overlay = tmp_path / "overlay.zip"
    with zipfile.ZipFile(overlay, "w") as zf:  # the release's bytecode, in its own zip
        for rel in ("narwhals/__pycache__/__init__.cpython-313.pyc",
                    "__pycache__/typing_extensions.cpython-313.pyc",
                    "numpy/__pycache__/__init__.cpython-313.pyc"):
            zf.writestr(rel, b"pyc")
    start, later = bundle.write([panel, narwhals, ext, numpy], overlay, tmp_path / "out")
    assert start.name.startswith("site-packages-") and later.name.startswith("later-")
    with tarfile.open(start) as tf:
        first = set(tf.getnames())
    with tarfile.open(later) as tf:
        rest = set(tf.getnames())
    assert first == {"panel/__init__.py", "panel/models/card.ts", "numpy/__init__.py",
                     "numpy/__pycache__/__init__.cpython-313.pyc",
                     # every package's metadata from the start
                     "panel-1.0.dist-info/METADATA", "narwhals-1.0.dist-info/METADATA",
                     "typing_extensions-1.0.dist-info/METADATA", "numpy-1.0.dist-info/METADATA"}
    assert rest == {"narwhals/__init__.py", "narwhals/stable/v1.py",
                    "narwhals/__pycache__/__init__.cpython-313.pyc", "typing_extensions.py",
                    "__pycache__/typing_extensions.cpython-313.pyc"}
    start2, later2 = bundle.write([panel, numpy], None, tmp_path / "out2")
    assert later2 is None and start2.is_file()


def test_a_wheel_the_release_lacks_stops_the_build_naming_it(tmp_path):
    dist = stand_in_release(tmp_path / "dist")
    lock = json.loads((dist / "pyodide-lock.json").read_text())["packages"]
    (dist / lock["pillow"]["file_name"]).unlink()
    proc = build("site", "--offline", "--pyodide-dist", str(dist), "--out",
                 str(tmp_path / "o"), "--no-bytecode", check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert lock["pillow"]["file_name"] in proc.stderr, proc.stderr[-2000:]
    dist = stand_in_release(tmp_path / "dist2")  # a wheel that is not the one the lock names
    with (dist / lock["numpy"]["file_name"]).open("ab") as f:
        f.write(b"\0")
    proc = build("site", "--offline", "--pyodide-dist", str(dist), "--out",
                 str(tmp_path / "o"), "--no-bytecode", check=False)
    assert proc.returncode == 2 and "sha256" in proc.stderr, proc.stderr[-2000:]
    assert lock["numpy"]["file_name"] in proc.stderr, proc.stderr[-2000:]
    proc = build("site", "--offline", "--pyodide-dist", str(dist), "--pyodide-version",
                 "0.27.0", "--out", str(tmp_path / "o"), check=False)
    assert proc.returncode == 2 and "holds Pyodide 0.29.3" in proc.stderr, proc.stderr


def test_the_plan_takes_the_release_wheel_only_when_it_fits(tmp_path):
    dist = stand_in_release(tmp_path / "dist")
    release = pyodide_dist.Release.open(str(dist))
    have = release.lock["narwhals"]["version"]
    needs = {"narwhals": wheels.Need("narwhals", [f">{have}"], "9.0", pure=True),
             "numpy": wheels.Need("numpy", [">=1.26"], "2.4", pure=False),
             "demystify": wheels.Need("demystify", [""], "0.1.0", pure=True)}
    assert pyodide_dist.plan(needs, release) == (["numpy"], ["narwhals"])
    needs["numpy"].specifiers.append(">=99")
    with pytest.raises(BuildError, match=r"numpy>=1.26,>=99 \(Pyodide 0.29.3 has"):
        pyodide_dist.plan(needs, release)
    needs = wheels.requirement_closure(["demystify", "panel"], set(release.lock))
    assert {"pandas", "panel-material-ui", "scipy"}.isdisjoint(needs)  # never in a page
    assert {"numpy", "bokeh", "param"} <= set(needs)


def test_bytecode_comes_from_the_releases_own_python(tmp_path):
    """The .pyc files match the interpreter the pages run (its magic number), not this
    one, and a compiled wheel keeps every file it had."""
    from tests.site_helpers import pyodide_release

    release = pyodide_release()
    require(bytecode.node(), "no node on PATH (CI installs npm, which brings it)")
    wheel = wheels.rewrite_wheel({"tiny/__init__.py": b"X = 1\n",
                                  "tiny-1.0.dist-info/METADATA": b"Name: tiny\n",
                                  "tiny-1.0.dist-info/RECORD": b""}.__getitem__,
                                 ["tiny/__init__.py", "tiny-1.0.dist-info/METADATA",
                                  "tiny-1.0.dist-info/RECORD"],
                                 tmp_path / "tiny-1.0-py3-none-any.whl")
    bytecode.compile_wheels([wheel], release)
    names = zipfile.ZipFile(wheel).namelist()
    assert {"tiny/__init__.py", "tiny-1.0.dist-info/METADATA"} <= set(names)
    (pyc,) = [n for n in names if n.endswith(".pyc")]
    assert re.fullmatch(r"tiny/__pycache__/__init__\.cpython-3\d+\.pyc", pyc), pyc
    magic = subprocess.run(
        ["node", "-e", "import(process.argv[1]).then(async ({loadPyodide}) => {"
         "const py = await loadPyodide({indexURL: process.argv[2]});"
         "console.log(py.runPython('import importlib.util; importlib.util.MAGIC_NUMBER.hex()'"
         "));})", str(release / "pyodide.mjs"), str(release) + "/"],
        capture_output=True, text=True, timeout=300).stdout.strip().splitlines()[-1]
    data = zipfile.ZipFile(wheel).read(pyc)
    assert data[:4].hex() == magic and data[4:8] == b"\x01\x00\x00\x00"  # unchecked hash


def test_slides_embed_two_demos_and_vendor_reveal(tmp_path):
    require((ROOT / "node_modules" / "reveal.js" / "dist" / "reveal.js").is_file(),
            "npm reveal.js missing (run `npm ci`)")
    out = tmp_path / "slides"
    build("slides", "--out", str(out))
    html = (out / "index.html").read_text()
    frames = re.findall(r'<iframe class="demo" data-src="([^"]+)"', html)
    assert frames == ["../site/digits?embed=true", "../site/movies?embed=true"]
    assert absolute_urls(html) == []
    for ref in re.findall(r'(?:src|href)="(reveal/[^"]+)"', html):
        assert (out / ref).is_file(), ref


def test_a_foreign_output_folder_is_never_emptied(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    from tools.site.common import prepare_out

    with pytest.raises(BuildError, match="not a Demystify build"):
        prepare_out(tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_the_project_wheel_is_built_from_a_copy_of_the_sources(tmp_path):
    """Never from the tree itself: setuptools' build/ there keeps modules that left the
    sources, and two builds at once (the suite's workers) collided in it."""
    stale = ROOT / "build" / "lib" / "engine" / "left_the_sources.py"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("raise ImportError\n")
    try:
        wheel = wheels.build_project_wheel(tmp_path)
        assert stale.is_file()  # the tree's build/ was left alone (another build's)
    finally:
        stale.unlink()
    names = zipfile.ZipFile(wheel).namelist()
    assert "engine/__init__.py" in names and "engine/left_the_sources.py" not in names


def test_a_page_with_a_quick_start_gets_a_pad_running_the_pages_canvas_code():
    """Digits declares a quick start (webapp.quickstart): its loading screen gets the
    pad, the DrawCanvas's own render function (no longer an ES module export) defined
    before loader.js runs; a page without one gets none."""
    from tools.site import worker

    quick = worker.quick_start("digits")
    assert quick is not None and quick["canvas"]["pixels"] == 280
    assert "export " not in quick["render"] and "function render(" in quick["render"]
    shell = "<html><head></head><body><div id='x'></div></body></html>"
    page = worker.with_loader(shell, "digits", quick=quick)
    assert page.index("window.demystifyQuick =") < page.index("const STEPS")
    assert worker.quick_start("movies") is None
    assert "window.demystifyQuick =" not in worker.with_loader(shell, "movies")


def test_a_quick_start_page_runs_bokeh_only_after_the_pad_and_others_at_once():
    """With a quick start, Bokeh's and Panel's scripts (seconds of the main thread, while
    the pad is drawn on) are preloaded and run later by assets/defer.js, in the page's
    order, with Bokeh's log level; the hidden prerendered page is not embedded (late, it
    landed over the live page); Panel's worker handler stays. A page without a quick
    start keeps its scripts as they were."""
    from tools.site import worker

    handler = "<script>\nconst pyodideWorker = window.demystifyWorker;\n" \
        "Bokeh.embed.embed_items(docs_json, render_items)\n</script>"
    shell = ('<html><head><script type="text/javascript" src="./static/bokeh/bokeh.min.js">'
             '</script><script type="text/javascript" src="./static/panel/panel.min.js">'
             '</script><script type="text/javascript">\n  Bokeh.set_log_level("info");\n'
             '</script></head><body><div id="x"></div>' + handler +
             '<script>Bokeh.safely(function() { embed_document(window) })</script>'
             '</body></html>')
    page = worker.with_loader(shell, "digits", quick=worker.quick_start("digits"))
    assert '<script type="text/javascript" src=' not in page
    assert page.count('<link rel="preload" as="script" href="./static/') == 2
    assert handler in page and "Bokeh.safely(" not in page  # no prerendered layout
    listed = re.search(r"const scripts = (\[.*?\]);", page).group(1)
    order = [m.group(1) for m in re.finditer(r'"(src|text)"', listed)]
    assert order == ["src", "src", "text"]
    assert listed.index("bokeh.min.js") < listed.index("panel.min.js") \
        < listed.index("set_log_level")
    plain = worker.with_loader(shell, "movies")
    assert plain.count('<script type="text/javascript" src=') == 2
    assert "<script>Bokeh.safely(" in plain and "demystifyDeferred =" not in plain


def test_panel_is_imported_in_steps_each_after_a_stroke_under_way_is_read(monkeypatch):
    """The quick start's import of Panel (assets/boot.py, run here with a stand-in for the
    worker's `js`): before each step the worker is asked to let a stroke under way end and
    be read (worker.js: demystifyQuickSettle), within one 3 s budget for all steps; a
    step can take seconds, and a stroke that ended during one was read only after it."""
    import asyncio
    import importlib
    import types

    from tools.site.common import ASSETS

    calls: list[tuple[str, object]] = []

    async def settle(ms: int) -> None:
        calls.append(("settle", ms))
        await asyncio.sleep(0.05)

    monkeypatch.setitem(sys.modules, "js", types.SimpleNamespace(demystifyQuickSettle=settle))
    monkeypatch.setattr(importlib, "import_module", lambda name: calls.append(("import", name)))
    scope: dict[str, object] = {}
    exec(compile((ASSETS / "boot.py").read_text(encoding="utf-8"), "boot.py", "exec"), scope)
    asyncio.run(scope["_demystify_import_panel"](True))
    steps = scope["_DEMYSTIFY_PANEL_STEPS"]
    assert [c[0] for c in calls] == ["settle", "import"] * len(steps)
    assert [c[1] for c in calls if c[0] == "import"] == list(steps)
    budgets = [c[1] for c in calls if c[0] == "settle"]
    assert budgets[0] == 3000 and budgets == sorted(budgets, reverse=True) \
        and budgets[-1] < budgets[0]
    calls.clear()
    asyncio.run(scope["_demystify_import_panel"](False))  # no quick start: Panel at once
    assert calls == []

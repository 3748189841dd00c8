"""`python build.py site`: the whole web app as a static folder (Pyodide + WebGPU).

online  (default): the Pyodide runtime and its compiled packages come from the jsDelivr CDN
        (release --pyodide-version, default the one Panel targets), Bokeh's and Panel's JS
        and CSS from their CDNs; the site holds the pages, the project's wheel, the
        pure-Python dependencies (repacked from .venv) and the demo files.
offline (--offline): nothing from another host. The runtime and the release's wheels come
        from a Pyodide release folder (--pyodide-dist or PYODIDE_DIST; its version is read
        from it), Bokeh/Panel JS and CSS from the installed packages; the build fails if an
        absolute URL is left in what it wrote or the release lacks a wheel the app needs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from . import bundle, bytecode, pwa, vendor, worker
from . import pages as pages_mod
from .common import ROOT, BuildError, folder_size, norm, prepare_out, say
from .pyodide_dist import Release, cdn_url, panel_pyodide_version, plan
from .wheels import (
    BROWSER_EXCLUDED,
    BROWSER_EXTRA,
    browser_wheel,
    build_project_wheel,
    data_files,
    repack_installed,
    requirement_closure,
)


def _downloads(release: Release | None, index: str, names: list[str],
               data: list[tuple[str, str]], out: Path, own: list[str]
               ) -> list[tuple[str, int]]:
    """(URL, bytes) of everything a page downloads before its app runs, for the progress
    bar; sizes of CDN files are known only when a local release of the version is given."""
    items: list[tuple[str, int]] = []
    if release is not None:
        files = ["pyodide.asm.js", "pyodide.asm.wasm", "pyodide-lock.json"]
        files += [] if "./bytecode/python_stdlib.zip" in own else ["python_stdlib.zip"]
        files += [release.lock[n]["file_name"] for n in release.depends(names)]
        items += [(index + f, (release.path / f).stat().st_size) for f in files]
    items += [(url, (out / url).stat().st_size) for url in own]
    items += [(url, (out / url).stat().st_size) for _, url in data]
    return items


def _tarred(release: Release, names: list[str], asked: list[str]) -> list[str]:
    """The lock names among `names` whose wheels can go in the site's tar: plain wheels
    that no package left to Pyodide's loader depends on."""
    def plain(n: str) -> bool:
        name = release.lock[n]["file_name"]
        return name.endswith(".whl") and bundle.plain(release.path / name)

    candidates = {n for n in names if plain(n)}
    kept = set(release.depends([n for n in asked if n not in candidates]))
    return [n for n in names if n in candidates and n not in kept]


def pyodide_version(asked: str | None, release: Release | None) -> str:
    """The release a build uses: an offline build's folder decides; online, the one asked
    for, else the one the installed Panel targets."""
    asked = asked.lstrip("v") if asked else None
    if release is None:
        return asked or panel_pyodide_version()
    if asked and asked != release.version:
        raise BuildError(f"--pyodide-version {asked}, but {release.path} holds Pyodide "
                         f"{release.version}; an offline build vendors the folder's own "
                         "release")
    return release.version


def local_release(version: str) -> Release | None:
    """PYODIDE_DIST when it holds `version` (an online build can use it for bytecode)."""
    try:
        release = Release.open(None)
    except BuildError:
        return None
    return release if release.version == version else None


def build_site(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    out = Path(args.out).resolve()
    release = Release.open(args.pyodide_dist) if args.offline else None
    version = pyodide_version(args.pyodide_version, release)
    provided = set(release.lock) if release else {norm(n) for n in BROWSER_EXTRA}
    needs = requirement_closure(["demystify", "panel", "bokeh", *BROWSER_EXTRA], provided)
    from_release, repack = plan(needs, release)
    copied = release.files_for(from_release) if release else []
    prepare_out(out)
    say(f"Pyodide {version} ({'from ' + str(release.path) if release else 'CDN'}): "
        f"{len(from_release)} packages from the release, {len(repack)} repacked from .venv "
        f"({', '.join(repack)}); left out: {', '.join(sorted(BROWSER_EXCLUDED))}")
    if release is not None:
        release.copy(copied, out / "pyodide")
    wheels_dir = out / "wheels"
    say("building the project wheel (pip wheel . --no-deps)")
    with tempfile.TemporaryDirectory() as tmp:
        wheel = browser_wheel(build_project_wheel(Path(tmp)), wheels_dir)
    wheels = [repack_installed(n, wheels_dir) for n in repack] + [wheel]
    index = "./pyodide/" if release else cdn_url(version)
    compiler = release or local_release(version)  # bytecode only from the very release
    stdlib = overlay = None
    if args.bytecode and compiler is None:
        say(f"no local Pyodide {version} (--pyodide-dist or PYODIDE_DIST) to compile "
            "bytecode with: the site ships sources only (pages start slower)")
    elif args.bytecode and bytecode.available():
        bytecode.compile_wheels(wheels, compiler.path)
        names = [compiler.lock[n]["file_name"] for n in compiler.depends(from_release)]
        stdlib, overlay = "./bytecode/python_stdlib.zip", f"./bytecode/pyodide-{version}.zip"
        bytecode.compile_release(compiler.path, [n for n in names if n.endswith(".whl")],
                                 out / stdlib, out / overlay)
        if release is not None:  # the pages load the compiled copy instead
            (out / "pyodide" / "python_stdlib.zip").unlink()

    # offline, the release's plain wheels go in the same tar (bundle.py); online they come
    # from the CDN through Pyodide's loader, as do other archives and their dependencies
    tarred = _tarred(release, copied, from_release) if release is not None else []
    loader = [n for n in from_release if n not in tarred]
    start, later = bundle.write(wheels + [release.verified_wheel(n) for n in tarred],
                                out / overlay if overlay else None, wheels_dir)
    gone = [out / "pyodide" / release.lock[n]["file_name"] for n in tarred] if release else []
    for done in wheels + ([out / overlay] if overlay else []) + gone:  # in the tar now
        done.unlink()
    copied = [n for n in copied if n not in tarred]
    start_url = f"./wheels/{start.name}"
    later_url = f"./wheels/{later.name}" if later else None
    for rel in data_files():
        (out / "data" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, out / "data" / rel)
    pages = pages_mod.discover()
    say(f"converting {len(pages)} page(s): {', '.join(p.slug for p in pages)}")
    pages_mod.convert(pages, "site.webmanifest" if args.pwa else None)
    cdn_root = vendor.panel_cdn_root() if release else None
    written = []
    for page in pages:
        prefetch = [(rel, f"./data/{rel}") for rel in page.opened]
        lazy = [(rel, f"./data/{rel}") for rel in data_files() if rel not in page.opened]
        own = [u for u in (stdlib, start_url, later_url) if u]
        downloads = _downloads(release or compiler, index, loader, prefetch, out, own)
        config = {"page": page.slug, "pyodideVersion": version, "indexURL": index,
                  "packages": loader, "expect": loader, "sitePackages": start_url,
                  "laterPackages": later_url, "later": list(bundle.LATER),
                  "bundled": tarred + [w.name.split("-")[0] for w in wheels],
                  "data": {"prefetch": prefetch, "lazy": lazy}, "stdLibURL": stdlib,
                  "downloads": downloads, "totalBytes": sum(n for _, n in downloads),
                  "code": worker.python_code(page.slug, page.module, page.title, cdn_root)}
        (out / f"{page.slug}.js").write_text(worker.worker_script(page.worker, config),
                                             encoding="utf-8")
        quick = worker.quick_start(page.slug)
        (out / f"{page.slug}.html").write_text(
            worker.with_loader(page.html, page.slug, quick=quick), encoding="utf-8")
        (out / f"{page.slug}-embed.html").write_text(
            worker.with_loader(page.embed_html, page.slug, embed=True, quick=quick),
            encoding="utf-8")
        pages_mod.write_redirect(out / page.slug / "index.html", f"../{page.slug}.html")
        written += [out / f"{page.slug}.js", out / f"{page.slug}.html",
                    out / f"{page.slug}-embed.html", out / page.slug / "index.html"]
    pages_mod.write_redirect(out / "index.html", "./app.html")
    vendor.favicon(out)  # browsers ask every host for /favicon.ico
    written.append(out / "index.html")
    if args.pwa:
        written += pwa.write(out, [p.slug for p in pages], args.title)
    if release is not None:
        vendor.vendor_runtime(out)
        vendor.rewrite_offline(out, written)
    info = {"mode": "offline" if release else "online", "pyodide": version,
            "pages": [p.slug for p in pages], "wheels": sorted(w.name for w in wheels),
            "site_packages": start_url, "later_packages": later_url, "bundled_packages": tarred,
            "pyodide_packages": copied, "from_release": from_release, "repacked": repack,
            "excluded": sorted(BROWSER_EXCLUDED), "pwa": bool(args.pwa),
            "prefetch": {p.slug: p.opened for p in pages},
            "bytes": folder_size(out), "seconds": round(time.perf_counter() - t0, 1)}
    (out / "site.json").write_text(json.dumps(info, indent=1))
    say(f"wrote {out} ({info['bytes'] / 2**20:.1f} MiB, {len(pages)} pages, {info['mode']}, "
        f"Pyodide {version}) in {info['seconds']} s; serve it with any static file server, "
        f"e.g. python -m http.server -d {os.path.relpath(out)}")
    return info

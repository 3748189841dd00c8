"""`python build.py slides`: a reveal.js deck (vendored from node_modules/reveal.js)
embedding two demos as iframes (`?embed=true`) from the static site or a served app."""

from __future__ import annotations

import argparse
import html
import os
import shutil
from pathlib import Path
from typing import Any

from .common import ROOT, BuildError, prepare_out, say

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

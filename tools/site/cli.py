"""Command line of `python -m tools.site` (what `python build.py site|slides` runs)."""

from __future__ import annotations

import argparse
import sys

from . import build_site as site_mod
from .common import ROOT, BuildError, say


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python build.py", description=site_mod.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    site = sub.add_parser("site", help="static browser build of the web app",
                          description=site_mod.__doc__,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    site.add_argument("--out", default=str(ROOT / "dist" / "site"),
                      help="output folder (default dist/site; replaced on every build)")
    site.add_argument("--offline", action="store_true",
                      help="vendor everything: no URL of another host is left")
    site.add_argument("--pyodide-dist", default=None,
                      help="Pyodide release folder for --offline (or PYODIDE_DIST); its "
                      "version is read from it")
    site.add_argument("--pyodide-version", default=None,
                      help="Pyodide release the online build loads from the CDN (default: "
                      "the one the installed Panel targets)")
    site.add_argument("--pwa", action="store_true",
                      help="also write a web-app manifest and Panel's caching service worker")
    site.add_argument("--no-bytecode", dest="bytecode", action="store_false",
                      help="ship the wheels without precompiled bytecode (made with the "
                      "Pyodide release's own Python under Node; pages then start slower)")
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
        if args.command == "site":
            site_mod.build_site(args)
        else:
            from .slides import build_slides

            build_slides(args)
    except BuildError as exc:
        say(f"error: {exc}")
        return 2
    return 0

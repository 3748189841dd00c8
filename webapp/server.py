"""Serve every page of the web app: `python -m webapp.server [--port N] [--show]`.

One Panel server, one URL per page (/app is the start page, /digits, /cifar10, /movies,
/art, /playground, /engine); models load once per process and are shared by all sessions.
Resources come from the Panel server itself, so nothing is fetched from the internet.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

import panel as pn
from tornado.web import RedirectHandler

from webapp.common import PAGES

MODULES = {"digits": "digits", "cifar10": "cifar", "movies": "movies", "art": "art",
           "playground": "playground", "engine": "engine_page"}


def page_factory(slug: str) -> Callable[[], pn.viewable.Viewable]:
    module = importlib.import_module(f"webapp.{MODULES[slug]}")
    return module.page


def routes() -> dict[str, Callable[[], pn.viewable.Viewable]]:
    from webapp.app import page as start_page

    out: dict[str, Callable[[], pn.viewable.Viewable]] = {"app": start_page}
    for slug, _, _ in PAGES:
        out[slug] = page_factory(slug)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m webapp.server", description=__doc__)
    parser.add_argument("--port", type=int, default=5006)
    parser.add_argument("--address", default="127.0.0.1",
                        help="interface to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--show", action="store_true", help="open a browser")
    parser.add_argument("--allow-websocket-origin", action="append", default=[],
                        help="extra host[:port] allowed to connect (e.g. when proxied)")
    args = parser.parse_args(argv)
    pn.extension()
    origins = [f"{h}:{args.port}" for h in ("127.0.0.1", "localhost", args.address)]
    if args.address in ("0.0.0.0", "::", ""):  # listening on every interface: any host name
        origins = ["*"]
    titles = {"app": "Demystify"} | {slug: f"Demystify · {t}" for slug, t, _ in PAGES}
    pn.serve(routes(), port=args.port, address=args.address, show=args.show,
             title=titles, websocket_origin=sorted(set(origins + args.allow_websocket_origin)),
             start=True, print_url=True,
             extra_patterns=[(r"/", RedirectHandler, {"url": "/app"})],
             websocket_max_message_size=64 * 2**20)


if __name__ == "__main__":
    main()

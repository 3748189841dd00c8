"""Serve every page of the web app: `python -m webapp.server [--port N] [--show]`.

One Panel server, one URL per page (/app is the start page, /digits, /cifar10, /movies,
/art, /playground, /engine, /sequences); models load once per process and are shared by
all sessions.
Resources come from the Panel server itself, so nothing is fetched from the internet.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import panel as pn
from tornado.web import RedirectHandler

from webapp.common import PAGES, configure_logging

MODULES = {"digits": "digits", "cifar10": "cifar", "movies": "movies", "art": "art",
           "playground": "playground", "engine": "engine_page", "sequences": "sequences"}


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
    configure_logging()
    pn.extension()
    origins = [f"{h}:{args.port}" for h in ("127.0.0.1", "localhost", args.address)]
    if args.address in ("0.0.0.0", "::", ""):  # listening on every interface: any host name
        origins = ["*"]
    titles = {"app": "Demystify"} | {slug: f"Demystify · {t}" for slug, t, _ in PAGES}
    pn.serve(routes(), port=args.port, address=args.address, show=args.show,
             title=titles, websocket_origin=sorted(set(origins + args.allow_websocket_origin)),
             start=True, print_url=True,
             extra_patterns=[(r"/", RedirectHandler, {"url": "/app"})],
             websocket_max_message_size=64 * 2**20,
             # Bokeh discards a session its tab has not connected to for 15 s; a loaded
             # machine can take longer to open the websocket, and the session Bokeh then
             # makes for it never got the page's local stylesheet paths (it asks the
             # CDN). A closed tab's Playground run stops sooner: see session_connected.
             unused_session_lifetime_milliseconds=60_000)


@dataclass
class Running:
    """A server started by `subprocess_server`: its base URL, process and log."""

    base: str
    proc: subprocess.Popen
    log_file: Any

    def log(self, tail: int = 6000) -> str:
        self.log_file.seek(0)
        return self.log_file.read().decode(errors="replace")[-tail:]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def subprocess_server(timeout_s: float = 90, env: dict[str, str] | None = None
                      ) -> Iterator[Running]:
    """`python -m webapp.server` on a free loopback port, answered /app before it yields
    (for tests and benchmarks); stopped afterwards. RuntimeError (with the server's log)
    when it exits or does not answer in time."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([sys.executable, "-m", "webapp.server", "--port", str(port)],
                                cwd=root, stdout=log, stderr=subprocess.STDOUT,
                                env=env if env is not None else dict(os.environ))
        running = Running(base, proc, log)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the server exited with code {proc.returncode}:\n"
                                       f"{running.log()}")
                try:
                    with urllib.request.urlopen(base + "/app", timeout=30):
                        break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{base}/app did not answer within {timeout_s:g} "
                                           f"s:\n{running.log()}") from None
                    time.sleep(0.5)
            yield running
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


if __name__ == "__main__":
    main()

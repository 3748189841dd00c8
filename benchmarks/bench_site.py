"""Cold start of the static site: how long each page takes to become usable in a browser.

Builds the offline site (from PYODIDE_DIST, or --site DIR for an existing build), serves it
on loopback and opens each page in headless Chromium on WebGPU (Debian's /usr/bin/chromium
through Playwright; only 127.0.0.1 resolves, so nothing can come from another host). Per
page, twice in one fresh browser profile: cold (empty cache) and warm (second visit, cache
filled). The profile has a disk cache, as a browser's own; a private window's in-memory
cache keeps no file over about 6 MiB, so there the runtime's .wasm and standard library
come again and V8 keeps no compiled code for them (--private measures that). It reports
seconds from page open to interactive (the loading panel gone, the live app drawn) and to
the first result (digits: a drawn 7 read; CIFAR-10: the first top-5; movies:
recommendations after one rating; art: a restored painting; playground: the first epoch of
curves; engine: an uploaded ONNX model's op report), the bytes transferred, and the
loading panel's stages. A page with a quick start (webapp.quickstart: Digits) is drawn on
as soon as its loading screen's pad shows; then "first" is the pad's reading of the whole
stroke (the engine's, before Panel) and "full" the live page's own reading of the drawing
handed over (without one, both are the live page's). The peer is Pyodide itself: the
same browser booting the same release's bare runtime (and loading NumPy) from the same
server, the floor any page built on it starts from; the ratio says what the app adds.

    python build.py bench site [--site DIR [--site DIR2]] [--pages digits,cifar10] [--runs 1]
                               [--private]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS, chromium  # noqa: E402
from tests.site_helpers import READY, Visit, build_site, serve  # noqa: E402
from tests.test_webapp_browser import (  # noqa: E402
    LOSS_POINTS,
    SEVEN,
    draw,
    rate_films,
    wait_text,
)

ONLY_LOOPBACK = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
GOAL = {"digits": (8.0, 3.0)}  # (cold, warm) seconds to the first result, on this machine
STEP_S = 300


def now(page: Any) -> float:
    """Seconds since the page opened, on the page's clock (the loader's marks' clock)."""
    return page.evaluate("performance.now() / 1000")


QUICK_PAD = "#demystify-quick canvas.dc-canvas"


def first_digits(page: Any) -> dict[str, float]:
    """Draw a 7 on the live page and wait until it is read; the mouse replay's start and
    end, so the report tells the replay from the app's work. After a quick start (the 7
    drawn on the loading screen's pad) the live page shows that drawing read: no stroke."""
    marks = {}
    if not page.evaluate("!!window.demystifyLoad.quickSent"):  # nothing handed over
        page.locator("canvas.dc-canvas").wait_for()
        start = now(page)
        draw(page, SEVEN)
        marks = {"bench: stroke starts": start, "bench: mouse up": now(page)}
    # Playwright polls in the page (every frame), not every 150 ms as wait_text does
    page.locator(".prediction", has_text=re.compile(r"^7$")).first.wait_for(
        timeout=STEP_S * 1000)
    return marks


def quick_digits(page: Any) -> dict[str, float]:
    """Before the page is live: draw the 7 on the quick-start pad as soon as it shows and
    wait for the pad to show the engine's reading of the whole stroke (a drawing sent at
    or after mouse-up; window.demystifyLoad.quick, before Panel is imported). Nothing when
    the build has no pad (the page went live first)."""
    page.wait_for_function(f"!!document.querySelector({QUICK_PAD!r}) || ({READY})",
                           timeout=STEP_S * 1000)
    if not page.locator(QUICK_PAD).count():
        return {}
    start = now(page)
    draw(page, SEVEN, QUICK_PAD)
    up, sent = now(page), page.evaluate("window.demystifyLoad.quickSent")
    read = f"(window.demystifyLoad.quick?.seq >= {sent} && window.demystifyLoad.quick)"
    page.wait_for_function(f"{read} || ({READY})", timeout=STEP_S * 1000)
    marks = {"bench: pad stroke starts": start, "bench: pad mouse up": up}
    quick = page.evaluate(read)
    if quick and quick["label"] == "7":  # else the page went live before the pad read it
        marks["quick"] = quick["shown"]
    return marks


def first_art(page: Any) -> None:
    page.locator(".damage-button button").click()
    wait_text(page, ".psnr-damaged", r"\d", STEP_S)
    page.locator(".restore-button button").click()
    wait_text(page, ".psnr-restored", r"\d", STEP_S)


def first_playground(page: Any) -> None:
    page.locator(".train-button button").click()
    page.wait_for_function(f"({LOSS_POINTS})() >= 13", timeout=STEP_S * 1000)
    cancel = page.locator(".cancel-button button")
    # the short run (QUERIES) may have ended by now: then there is nothing to cancel
    if cancel.is_enabled():
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            cancel.click(timeout=5000)
        except PlaywrightTimeout:  # the run ended between the check and the click
            if cancel.is_enabled():
                raise


def first_engine(page: Any) -> None:
    page.locator("input[type=file]").set_input_files(
        str(ROOT / "webapp" / "models" / "lenet5.onnx"))
    wait_text(page, ".onnx-report", r"every op is supported", STEP_S)


def first_sequences(page: Any) -> None:
    page.locator("canvas.dc-canvas").first.wait_for()
    draw(page, [(150, 40), (145, 240)])
    wait_text(page, ".rows-result", r"LSTM.*attention", STEP_S)


# The first result per page (a page the site has that is not named here is timed to
# interactive only); pages come from the build's site.json (the app's page registry).
FIRST = {
    "digits": first_digits,
    "cifar10": lambda p: wait_text(p, ".top5", r"%", STEP_S),
    "movies": lambda p: rate_films(p, STEP_S),
    "art": first_art,
    "playground": first_playground,
    "engine": first_engine,
    "sequences": first_sequences,
}
QUERIES = {"playground": "?data=moons&epochs=5"}
# Before the page is live (a page's quick start, webapp.quickstart): returns its marks, with
# "quick" the time its reading was shown
QUICK = {"digits": quick_digits}


PEER = """<!doctype html><meta charset="utf-8"><title>Pyodide alone</title>
<script>
const stdlib = STDLIB;  // the site's own (with bytecode) when it has one
const w = new Worker(URL.createObjectURL(new Blob([`
  importScripts(new URL("pyodide/pyodide.js", "${location.href}").href);
  loadPyodide({indexURL: new URL("pyodide/", "${location.href}").href, packages: ["numpy"],
               ${stdlib ? `stdLibURL: new URL("${stdlib}", "${location.href}").href` : ""}})
    .then(py => { py.runPython("import numpy"); postMessage("ready"); },
          e => postMessage("error: " + e));
`], {type: "text/javascript"})));
w.onmessage = (e) => { window.peer = e.data; window.peerAt = performance.now() / 1000; };
</script>"""


def visit_page(context: Any, base: str, slug: str) -> dict[str, Any]:
    first = FIRST.get(slug)
    v = Visit(context, base, f"{slug}.html{QUERIES.get(slug, '')}")
    try:
        extra = QUICK[slug](v.page) if slug in QUICK else {}
        quick = extra.pop("quick", None)
        load = v.ready()
        interactive = load["ready"]
        found = first(v.page) if first is not None else None
        extra.update(found if isinstance(found, dict) else {})  # wait_text returns text
        full = now(v.page) if first else interactive
        # the marks the worker sent after the page went live too (the first result's)
        marks = v.page.evaluate("window.demystifyLoad.marks")
        page_bytes = v.page.evaluate(
            "performance.getEntriesByType('navigation').concat(performance.getEntriesByType("
            "'resource')).reduce((n, e) => n + (e.transferSize || 0), 0)")
        v.check()
        # first: the first real result shown (the quick pad's, if any); full: the live
        # page's own
        return {"interactive": interactive, "first": quick or full, "full": full,
                "quick": quick,
                "bytes": page_bytes + (load.get("transferred") or 0),
                "stages": load["stages"], "webgpu": load["webgpu"],
                "marks": sorted([(t, text) for t, _, text in marks if text]
                                + [(t, text) for text, t in extra.items()])}
    finally:
        v.close()


@contextlib.contextmanager
def profile(browser: Any, private: bool) -> Iterator[Any]:
    """A fresh browser context for one cold + warm pair: a new profile on disk (a
    browser's own disk cache), or with `private` one of `browser`'s in-memory contexts."""
    viewport = {"width": 1280, "height": 900}
    with tempfile.TemporaryDirectory() as user_data:
        context = (browser.new_context(viewport=viewport) if private else
                   browser.browser_type.launch_persistent_context(
                       user_data, executable_path=CHROMIUM, headless=True,
                       args=CHROMIUM_ARGS + [ONLY_LOOPBACK], viewport=viewport))
        try:
            yield context
        finally:
            context.close()


def peer(browser: Any, site: Path) -> float:
    """Seconds from page open to Pyodide + NumPy ready, cold, from the same server."""
    with tempfile.TemporaryDirectory() as tmp:
        if (site / "bytecode").is_dir():
            (Path(tmp) / "bytecode").symlink_to(site / "bytecode", target_is_directory=True)
        runtime = Path(tmp) / "pyodide"
        runtime.mkdir()
        for p in (site / "pyodide").iterdir():
            (runtime / p.name).symlink_to(p)
        # an offline site keeps NumPy in its tar: the peer takes the release's own wheel
        lock = json.loads((site / "pyodide" / "pyodide-lock.json").read_text())["packages"]
        wheel = lock["numpy"]["file_name"]
        if not (runtime / wheel).exists():
            dist = Path(os.environ.get("PYODIDE_DIST", ""))
            if not (dist / wheel).is_file():
                raise SystemExit(f"the peer needs {wheel}: set PYODIDE_DIST to the release "
                                 "the site was built from")
            (runtime / wheel).symlink_to(dist / wheel)
        stdlib = "bytecode/python_stdlib.zip" if (site / "bytecode").is_dir() else ""
        (Path(tmp) / "index.html").write_text(PEER.replace("STDLIB", json.dumps(stdlib)))
        with serve(Path(tmp)) as base:
            context = browser.new_context()
            page = context.new_page()
            page.goto(base + "index.html")
            page.wait_for_function("window.peer !== undefined", timeout=STEP_S * 1000)
            if page.evaluate("window.peer") != "ready":
                raise RuntimeError(f"the bare runtime failed: {page.evaluate('window.peer')}")
            t = page.evaluate("window.peerAt")
            context.close()
            return t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python build.py bench site", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--site", action="append",
                        help="an offline build to measure (default: build one); given "
                        "twice or more, the builds' runs alternate (a fair A/B on a busy "
                        "machine)")
    parser.add_argument("--pages", help="comma-separated slugs (default: every page)")
    parser.add_argument("--runs", type=int, default=1, help="cold+warm pairs per page")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--private", action="store_true",
                        help="visit in a private (in-memory cache) context, not a profile")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        if args.site:
            sites = [Path(s).resolve() for s in args.site]
        else:
            dist = os.environ.get("PYODIDE_DIST")
            if not dist:
                parser.error("set PYODIDE_DIST to a full Pyodide release folder, or pass --site")
            t0 = time.perf_counter()
            sites = [build_site(Path(tmp) / "site", "--offline", "--pyodide-dist", dist)]
            print(f"built the offline site in {time.perf_counter() - t0:.0f} s")
        infos = [json.loads((site / "site.json").read_text()) for site in sites]
        for site, info in zip(sites, infos):
            if info["mode"] != "offline":
                parser.error(f"{site} is an online build; measure an offline one")
        slugs = args.pages.split(",") if args.pages else infos[0]["pages"]
        unknown = sorted(set(slugs) - set.intersection(*(set(i["pages"]) for i in infos)))
        if unknown:
            parser.error(f"unknown page(s) {', '.join(unknown)}; the site has "
                         f"{', '.join(infos[0]['pages'])}")
        info = infos[0]
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; Pyodide "
              f"{info['pyodide']}; site {info['bytes'] / 2**20:.1f} MiB; "
              f"{'private contexts' if args.private else 'a fresh profile per run'}")
        label = {site: (site.name if len(sites) > 1 else "") for site in sites}
        results: dict[str, list[dict[str, Any]]] = {}
        bases = [stack.enter_context(serve(site)) for site in sites]
        browser = stack.enter_context(chromium(CHROMIUM_ARGS + [ONLY_LOOPBACK]))
        floor = statistics.median(peer(browser, sites[0]) for _ in range(args.runs))
        for _ in range(args.runs):
            for slug in slugs:
                for site, base in zip(sites, bases):
                    with profile(browser, args.private) as context:
                        cold = visit_page(context, base, slug)
                        warm = visit_page(context, base, slug)
                    key = f"{label[site]}:{slug}" if label[site] else slug
                    results.setdefault(key, []).append({"cold": cold, "warm": warm})
                    report(key, cold, warm)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end; peer: Pyodide "
          f"{info['pyodide']} alone (runtime + NumPy) ready {floor:.1f} s after page open, "
          "cold")
    print("first: the first result shown (a quick start's pad, when the page has one); "
          "full: the live page's")
    print(f"{'page':<11} {'cold: open->ready':>18} {'->first':>8} {'->full':>7} {'MiB':>6}   "
          f"{'warm: ->ready':>14} {'->first':>8} {'->full':>7} {'MiB':>6}   {'cold/peer':>9}")
    keys = ("interactive", "first", "full", "bytes")
    for key, runs in results.items():
        c = {k: statistics.median(r["cold"][k] for r in runs) for k in keys}
        w = {k: statistics.median(r["warm"][k] for r in runs) for k in keys}
        goal = GOAL.get(key.split(":")[-1])
        note = (f"   goal {goal[0]:.0f} s / {goal[1]:.0f} s: "
                f"{'met' if c['first'] <= goal[0] and w['first'] <= goal[1] else 'missed'}"
                if goal else "")
        print(f"{key:<11} {c['interactive']:>18.1f} {c['first']:>8.1f} {c['full']:>7.1f} "
              f"{c['bytes'] / 2**20:>6.1f}   {w['interactive']:>14.1f} {w['first']:>8.1f} "
              f"{w['full']:>7.1f} {w['bytes'] / 2**20:>6.1f}   {c['first'] / floor:>8.1f}x"
              f"{note}")
    for key, runs in results.items():
        steps(key, runs)
    if args.json:
        Path(args.json).write_text(json.dumps({"peer_s": floor, "pages": results}, indent=1))
    return 0


def steps(key: str, runs: list[dict[str, Any]]) -> None:
    """Median seconds from page open to each step the worker marked, cold and warm."""
    print(f"\n{key}: seconds from page open to each step (median of {len(runs)})")
    for visit in ("cold", "warm"):
        at: dict[str, list[float]] = {}
        for r in runs:
            for t, text in r[visit]["marks"]:
                at.setdefault(text, []).append(t)
        for name in ("interactive", "first", "full"):
            at.setdefault(name, []).extend(r[visit][name] for r in runs)
        line = ", ".join(f"{text} {statistics.median(ts):.1f}" for text, ts in at.items())
        print(f"  {visit}: {line}")


def report(key: str, cold: dict[str, Any], warm: dict[str, Any]) -> None:
    def stages(r: dict[str, Any]) -> str:
        return ", ".join(f"{k} {v:.1f}" for k, v in sorted(r["stages"].items(),
                                                            key=lambda kv: kv[1]))

    print(f"{key}: cold ready {cold['interactive']:.1f} s, first result {cold['first']:.1f} s"
          f" (live page {cold['full']:.1f}; {cold['bytes'] / 2**20:.1f} MiB; stages at "
          f"{stages(cold)}); warm ready {warm['interactive']:.1f} s, first "
          f"{warm['first']:.1f} s (live page {warm['full']:.1f}; "
          f"{warm['bytes'] / 2**20:.1f} MiB)", flush=True)


if __name__ == "__main__":
    sys.exit(main())

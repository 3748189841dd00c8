"""Web app under load: concurrent browser sessions each asking the Digits page for a prediction.

Starts `python -m webapp.server` on a free loopback port and opens N (default 20) sessions
at once in one headless Chromium (Debian's /usr/bin/chromium through Playwright; every
request to another host is aborted). Each session draws a 7 with the mouse and waits for
the prediction. Prints latency percentiles (stroke end -> prediction shown), the server's
memory per added session, and the median latency as a ratio to the engine's in-process
prediction time (the peer). Then every tab closes and the server's log is read: a
traceback, "Failed sending message as connection was closed" or "Task exception was never
retrieved" counts as an error. Any error (console, page, wrong digit, timeout, server log)
fails the run. `--runs 3` repeats it (a fresh server each time) and prints a summary; the
machine's load average is printed with each run (a shared machine makes timings noisy).

    python build.py bench webapp [--sessions 20] [--timeout 120] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.test_webapp_browser import SEVEN  # noqa: E402

# the server's load is measured: its tabs need no WebGPU (SwiftShader would only add load)
ARGS = [a for a in CHROMIUM_ARGS if "webgpu" not in a and "angle" not in a
        and "Vulkan" not in a]
# what a healthy server never logs, even while tabs close under it
LOG_ERRORS = ("Traceback", "Failed sending message", "Task exception was never retrieved",
              "ERROR")


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def in_process_ms(n: int = 50) -> float:
    """The peer: one prediction of a drawn digit inside this process (decode, preprocess,
    LeNet-5), median over n."""
    from webapp.common import png_data_url
    from webapp.digits import read_digit

    img = np.full((280, 280), 255, np.uint8)
    img[60:75, 70:210] = 0
    url = png_data_url(img)
    read_digit(url)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        read_digit(url)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


async def session(browser, base: str, i: int, gate: asyncio.Event, errors: list[str]
                  ) -> float | None:
    ctx = await browser.new_context(viewport={"width": 900, "height": 700})
    host = base.split("//", 1)[1]

    async def route(r) -> None:
        if r.request.url.split("//", 1)[-1].startswith(host) or \
                r.request.url.startswith(("data:", "blob:")):
            await r.continue_()
        else:
            errors.append(f"session {i}: request to another host {r.request.url}")
            await r.abort()

    await ctx.route("**/*", route)
    page = await ctx.new_page()
    page.on("console", lambda m: m.type == "error" and errors.append(f"session {i}: {m.text}"))
    page.on("pageerror", lambda e: errors.append(f"session {i}: {e}"))
    try:
        await page.goto(base + "/digits?embed=true", wait_until="networkidle", timeout=120_000)
        canvas = page.locator("canvas.dc-canvas")
        await canvas.wait_for(timeout=60_000)
        await gate.wait()  # every session is open: now they all ask at once
        box = await canvas.bounding_box()
        s = box["width"] / 280
        await page.mouse.move(box["x"] + SEVEN[0][0] * s, box["y"] + SEVEN[0][1] * s)
        await page.mouse.down()
        for x, y in SEVEN[1:]:
            await page.mouse.move(box["x"] + x * s, box["y"] + y * s, steps=6)
        t0 = time.perf_counter()
        await page.mouse.up()
        await page.locator(".prediction", has_text="7").wait_for(timeout=60_000)
        return 1000 * (time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001  (counted and reported)
        errors.append(f"session {i}: {type(exc).__name__}: {str(exc)[:200]}")
        return None
    # the page stays open (its server session alive) until the memory is measured


async def run(args: argparse.Namespace) -> tuple[int, dict[str, float]]:
    if not Path(CHROMIUM).is_file():
        print(f"no Chromium at {CHROMIUM} (apt-get install chromium)", file=sys.stderr)
        return 2, {}
    from webapp.server import subprocess_server

    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(subprocess_server(90))
        except RuntimeError as exc:
            print(f"the server did not start: {exc}", file=sys.stderr)
            return 2, {}
        return await measure(args, server)


def log_errors(log: str) -> list[str]:
    return [f"server log: {line.strip()[:200]}" for line in log.splitlines()
            if any(p in line for p in LOG_ERRORS)]


async def measure(args: argparse.Namespace, server: Any) -> tuple[int, dict[str, float]]:
    """The burst: N sessions draw at once against the running server."""
    from playwright.async_api import async_playwright

    base = server.base
    peer = in_process_ms()
    errors: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        # one warm-up session loads the model and the server's caches
        warm_gate = asyncio.Event()
        warm_gate.set()
        await session(browser, base, -1, warm_gate, errors)
        base_mb = rss_mb(server.proc.pid)
        gate = asyncio.Event()
        tasks = [asyncio.create_task(session(browser, base, i, gate, errors))
                 for i in range(args.sessions)]
        t_open = time.perf_counter()
        while sum(len(c.pages) for c in browser.contexts) < args.sessions + 1 and \
                time.perf_counter() - t_open < args.timeout:
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)  # let every page finish loading before the burst
        gate.set()
        lat = await asyncio.wait_for(asyncio.gather(*tasks), timeout=args.timeout)
        full_mb = rss_mb(server.proc.pid)
        for ctx in browser.contexts:  # every tab closes: the server must take it calmly
            await ctx.close()
        await asyncio.sleep(3.0)
        await browser.close()
    errors += log_errors(server.log(tail=2_000_000))
    ok = np.array([v for v in lat if v is not None])
    stats: dict[str, float] = {"mb_per_session": (full_mb - base_mb) / args.sessions}
    print(f"sessions: {args.sessions} concurrent (+1 warm-up), {len(ok)} predicted a 7")
    if len(ok):
        p50, p90, p99 = np.percentile(ok, [50, 90, 99])
        stats.update(p50=p50, p90=p90, p99=p99)
        print(f"latency ms (stroke end -> prediction shown): p50 {p50:.0f}  p90 {p90:.0f}"
              f"  p99 {p99:.0f}  max {ok.max():.0f}")
        print(f"peer: in-process prediction {peer:.1f} ms; p50 / peer = {p50 / peer:.1f}x")
    print(f"server memory: {base_mb:.0f} MB with 1 session, {full_mb:.0f} MB with "
          f"{args.sessions + 1}: {(full_mb - base_mb) / args.sessions:.1f} MB per added "
          "session")
    stats["errors"] = len(errors) + args.sessions - len(ok)
    print(load_average())
    if errors or len(ok) != args.sessions:
        print(f"ERRORS ({len(errors)}):", *errors[:20], sep="\n  ")
        return 1, stats
    print("errors: none")
    return 0, stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20, help="concurrent sessions (1..50)")
    parser.add_argument("--timeout", type=float, default=180, help="seconds for the burst")
    parser.add_argument("--runs", type=int, default=1, help="consecutive runs (1..10)")
    args = parser.parse_args()
    if not 1 <= args.sessions <= 50:
        parser.error("--sessions must be in 1..50 (this is a loopback load test, bounded)")
    if not 1 <= args.runs <= 10:
        parser.error("--runs must be in 1..10")
    results = []
    for i in range(args.runs):
        if args.runs > 1:
            print(f"-- run {i + 1}/{args.runs} ({load_average()})")
        results.append(asyncio.run(run(args)))
    if args.runs > 1:
        print(f"-- summary of {args.runs} runs, {args.sessions} sessions each:")
        for i, (_, st) in enumerate(results):
            print(f"  run {i + 1}: " + "  ".join(
                f"{k} {st[k]:.0f}" for k in ("p50", "p90", "p99") if k in st)
                + f"  MB/session {st.get('mb_per_session', float('nan')):.1f}  errors "
                f"{st.get('errors', 'n/a')}")
    return max(rc for rc, _ in results)


if __name__ == "__main__":
    sys.exit(main())

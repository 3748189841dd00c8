"""Live jobs of the Sequences page: a generator of events run without freezing the page.

On a server the generator runs in a thread; in the browser (Pyodide has no threads) it
runs as a task on the worker's event loop that yields after every event, as the
Playground does. Either way events land in a queue that the page's periodic callback
drains into its plots, and `cancel()` stops the job at its next event.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from webapp import common

CLOSED_TAB_POLLS = 20  # polls (5 s at 250 ms) without a connection: the tab is gone


def resolve_device(wanted: str) -> tuple[str, str]:
    """("cpu" or "gpu", a note when the GPU was wanted but is unavailable)."""
    import engine

    if wanted.lower() != "gpu":
        return "cpu", ""
    try:
        return engine.backends.resolve("gpu"), ""
    except engine.DeviceError as exc:
        return "cpu", f"no GPU ({exc}); training on the CPU"


class LiveJob:
    """`make()` returns an iterator of (kind, payload) events; the job adds a final
    ("done", message) or ("error", message)."""

    def __init__(self, make: Callable[[], Iterator[tuple[str, Any]]], device: str = "cpu",
                 name: str = "sequences-job") -> None:
        self.make, self.device, self.name = make, device, name
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.cancelled = threading.Event()
        self.finished = threading.Event()

    def start(self) -> None:
        if common.IN_BROWSER:
            asyncio.get_event_loop().create_task(self._run_async())
        else:
            threading.Thread(target=self._run, daemon=True, name=self.name).start()

    def cancel(self) -> None:
        self.cancelled.set()

    def drain(self) -> list[tuple[str, Any]]:
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def _run(self) -> None:
        for _ in self._steps():
            pass

    async def _run_async(self) -> None:
        for _ in self._steps():
            await asyncio.sleep(0)  # let the page's poller and widgets run

    def _steps(self) -> Iterator[None]:
        try:
            with common.device_lock(self.device):
                for event in self.make():
                    self.events.put(event)
                    if self.cancelled.is_set():
                        self.events.put(("done", "cancelled"))
                        return
                    yield
            self.events.put(("done", "finished"))
        except Exception as exc:  # noqa: BLE001  (reported on the page)
            self.events.put(("error", f"{type(exc).__name__}: {exc}"))
        finally:
            self.finished.set()


class SessionGuard:
    """Ends a demo's job when its tab goes: at the end of the session, or after
    CLOSED_TAB_POLLS polls that found no connection (Bokeh ends a session only a while
    after its tab closed). `stop(why)` is the demo's clean-up."""

    def __init__(self, stop: Callable[[str], None]) -> None:
        self.stop, self.missed = stop, 0
        common.on_session_end(lambda: stop("its session ended"))

    def still_connected(self) -> bool:
        self.missed = 0 if common.session_connected() is not False else self.missed + 1
        if self.missed >= CLOSED_TAB_POLLS:
            self.stop("no connection for 5 s")
            return False
        return True

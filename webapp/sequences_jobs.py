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

import panel as pn

from webapp import common
from webapp.common import log

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


class JobHost:
    """What both Sequences demos do around a job: one at a time, its buttons toggled, a
    250 ms poller that hands the job's events to the demo, and clean-up when the job ends
    or the tab goes. A demo calls `init_jobs(...)` and `launch(job, status)`, and
    implements `_start()` (its start button), `on_events(events)` (everything before the
    end) and `on_end(kind, message)`."""

    job: LiveJob | None = None
    poller: Any = None

    def init_jobs(self, start_btn: Any, cancel_btn: Any, what: str) -> None:
        self.job, self.poller, self._what = None, None, what
        self._buttons = (start_btn, cancel_btn)
        self.guard = SessionGuard(self._end_session)
        # the demo's _start clears Bokeh sources, and a click can be handled without the
        # document lock (on a busy server Bokeh then raised "_pending_writes should be
        # non-None" and the run never started): start on the next tick, where the lock is
        # held (at once where there is no server session: the browser build, tests)
        start_btn.on_click(lambda _: pn.state.execute(self._start, schedule=True))
        cancel_btn.on_click(lambda _: self.job and self.job.cancel())

    def launch(self, job: LiveJob, status: str) -> None:
        self.job = job
        self._set_running(True)
        self.status.object = status
        job.start()
        self.poller = common.start_poller(self._poll, 250)

    def on_events(self, events: list[tuple[str, Any]]) -> None:
        raise NotImplementedError

    def on_end(self, kind: str, message: str) -> None:
        raise NotImplementedError

    def _set_running(self, running: bool) -> None:
        start_btn, cancel_btn = self._buttons
        start_btn.disabled, cancel_btn.disabled = running, not running

    def _end_session(self, why: str) -> None:
        """The tab is gone: cancel the job (it stops at its next event) and the poller."""
        if self.job is not None:
            self.job.cancel()
            log.info("a Sequences tab is gone (%s): its %s job is cancelled", why, self._what)
        self._stop_poller()
        self.job = None

    def _stop_poller(self) -> None:
        if self.poller is not None:
            try:
                self.poller.stop()
            except Exception:  # noqa: BLE001  (the session may be being torn down)
                pass
            self.poller = None

    def _poll(self) -> None:
        common.run_poll(self._drain, None, f"Drawing the {self._what}")

    def _drain(self) -> None:
        job = self.job
        if job is None or not self.guard.still_connected():
            return
        events = job.drain()
        end = next((i for i, (kind, _) in enumerate(events) if kind in ("done", "error")), None)
        self.on_events(events if end is None else events[:end])
        if end is not None:
            self._stop_poller()
            self.job = None
            self._set_running(False)
            self.on_end(*events[end])

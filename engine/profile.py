"""Per-primitive timings: which Backend calls a step spends its time in.

    with engine.profile.profile() as prof:
        loss = loss_fn(model(x), y); loss.backward(); opt.step()
    prof.table()   # [(primitive, calls, total seconds), ...] slowest first

The first `profile()` wraps every public method of each backend instance in place with a
timer that is active only inside a `profile()` block on the same thread, so other threads
(other web sessions) are neither timed nor slowed beyond one thread-local lookup per call.
GPU primitives only encode work; `synchronize` (called when the block ends) holds the rest
of the device time, so GPU numbers show where the host spends its time.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any

from . import backends

_local = threading.local()
_lock = threading.Lock()
_wrapped: set[int] = set()
SKIP = {"describe"}


class Profile:
    """Calls and seconds per backend primitive, recorded inside a `profile()` block."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self.wall = 0.0
        self.device: str | None = None

    def add(self, name: str, dt: float) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        self.seconds[name] = self.seconds.get(name, 0.0) + dt

    def table(self) -> list[tuple[str, int, float]]:
        """(primitive, calls, total seconds), slowest first."""
        return sorted(((k, self.calls[k], self.seconds[k]) for k in self.calls),
                      key=lambda r: -r[2])

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        prof = getattr(_local, "prof", None)
        if prof is None or getattr(_local, "depth", 0):
            return fn(*args, **kwargs)
        _local.depth = 1  # a primitive built from other primitives counts once
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _local.depth = 0
            prof.add(name, time.perf_counter() - t0)

    return wrapper


def _instrument(backend: Any) -> None:
    with _lock:
        if id(backend) in _wrapped:
            return
        for name in dir(type(backend)):
            if name.startswith("_") or name in SKIP:
                continue
            attr = getattr(backend, name, None)
            if callable(attr):
                setattr(backend, name, _timed(name, attr))
        _wrapped.add(id(backend))


class profile:  # noqa: N801  (a context manager used like a function)
    """Time every Backend primitive called on this thread inside the block.

    `device` ("cpu", "gpu", "auto", None for all started backends) picks the backends to
    instrument; the GPU is synchronised at the end so queued work is counted."""

    def __init__(self, device: str | None = None) -> None:
        self.result = Profile()
        self.device = device

    def __enter__(self) -> Profile:
        names = [backends.resolve(self.device)] if self.device else backends.started()
        self._targets = [backends.get(n) for n in names]
        for b in self._targets:
            _instrument(b)
        self.result.device = ",".join(names)
        self._prev = getattr(_local, "prof", None)
        _local.prof, _local.depth = self.result, 0
        self._t0 = time.perf_counter()
        return self.result

    def __exit__(self, *exc: Any) -> None:
        try:
            for b in self._targets:
                sync = getattr(b, "synchronize", None)
                if sync is not None:
                    sync()
        finally:
            self.result.wall = time.perf_counter() - self._t0
            _local.prof = self._prev


__all__ = ["profile", "Profile"]

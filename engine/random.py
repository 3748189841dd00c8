"""The engine's random stream, on the host, so every device sees the same numbers.

One process-wide stream serves scripts and notebooks (`engine.manual_seed`). A server runs
many sessions at once, each training in its own thread (or, in the browser, its own
asyncio task): `seeded(seed)` gives the code inside it a private stream, so a seed gives
the same run whatever other sessions draw meanwhile. The stream lives in a
`contextvars.ContextVar`: threads start without it, asyncio tasks keep their own copy.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator

import numpy as np

# The process's stream is made on first use, not at import: `np.random` loads NumPy's eight
# compiled random modules, 0.2 s of a static page's start in the browser (a page that only
# loads trained weights never draws; see nn.init.no_init).
_rng: np.random.Generator | None = None
_rng_lock = threading.Lock()
_private: contextvars.ContextVar[np.random.Generator | None] = contextvars.ContextVar(
    "engine_random_private", default=None)


def manual_seed(seed: int) -> None:
    """Seed weight initialisation, dropout masks and data shuffling (inside `seeded`:
    only that private stream)."""
    global _rng
    if _private.get() is not None:
        _private.set(np.random.default_rng(seed))
    else:
        _rng = np.random.default_rng(seed)


def generator() -> np.random.Generator:
    """The stream in use here: the private one inside `seeded`, else the process's."""
    global _rng
    private = _private.get()
    if private is not None:
        return private
    if _rng is None:
        with _rng_lock:
            if _rng is None:
                _rng = np.random.default_rng(0)
    return _rng


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[np.random.Generator]:
    """A private stream seeded with `seed` for this thread or task, for the block."""
    token = _private.set(np.random.default_rng(seed))
    try:
        yield _private.get()
    finally:
        _private.reset(token)

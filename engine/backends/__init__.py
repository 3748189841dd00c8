"""Device registry: maps device names to Backend instances.

"cpu" is always there. "gpu" is registered lazily by `engine.backends.gpu` when an adapter
exists. "auto" picks the GPU when present, else the CPU (with a one-line notice).
`DEMYSTIFY_DEVICE` sets the default device. A device lost while in use is `retire`d:
"auto" then picks the CPU (saying why) and "gpu" tries once to start a fresh one, else
raises a `DeviceError` that says the GPU was lost.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator

from .base import Backend
from .cpu import CpuBackend

_backends: dict[str, Backend] = {"cpu": CpuBackend()}
_factories: dict[str, Callable[[], Backend]] = {}
_failures: dict[str, str] = {}
_lost: dict[str, list] = {}  # name -> [why it was lost, whether a restart was tried]
_notified = False


class DeviceError(RuntimeError):
    """A requested device is unavailable, or was lost."""


def register(name: str, factory: Callable[[], Backend]) -> None:
    """Register a lazily created backend (creating it may fail: no adapter). Registering
    again forgets an earlier failure (the browser registers its GPU after `await init()`)."""
    _factories[name] = factory
    _failures.pop(name, None)
    _lost.pop(name, None)


def retire(name: str, reason: str) -> None:
    """Forget a device that was lost while in use (training falls back to the CPU): from
    now on "auto" resolves to the CPU with a notice, and "gpu" tries once to start a
    fresh device (a driver that came back) before reporting the loss."""
    global _notified
    if name == "cpu":
        return
    _backends.pop(name, None)
    _lost[name] = [reason, False]
    _failures[name] = f"the {name} was lost while in use ({reason})"
    _notified = False  # "auto" says so once more


def _reacquire(name: str) -> Backend | None:
    """One attempt to start a fresh device after a loss."""
    lost = _lost.get(name)
    if lost is None or lost[1]:
        return None
    lost[1] = True
    saved = _failures.pop(name, None)
    backend = _try(name)
    if backend is None:
        _failures[name] = f"{saved}; starting it again failed ({_failures.get(name)})"
        return None
    _lost.pop(name, None)
    print(f"demystify: the {name} was lost ({lost[0]}); a fresh device started.",
          file=sys.stderr)
    return backend


@contextlib.contextmanager
def override(name: str, backend: Backend) -> Iterator[Backend]:
    """Route a device name to `backend` for the duration (recording a model's GPU
    dispatches for a browser replay, or testing a backend without the registry)."""
    saved = _backends.get(name)
    _backends[name] = backend
    try:
        yield backend
    finally:
        if saved is None:
            _backends.pop(name, None)
        else:
            _backends[name] = saved


def _try(name: str) -> Backend | None:
    if name in _backends:
        return _backends[name]
    if name == "gpu" and "gpu" not in _factories:
        try:  # the GPU backend registers itself on import
            from . import gpu  # noqa: F401
        except ImportError as exc:
            _failures.setdefault("gpu", f"GPU backend unavailable ({exc})")
    factory = _factories.get(name)
    if factory is None or name in _failures:
        return None
    try:
        _backends[name] = factory()
    except (DeviceError, ImportError, OSError) as exc:  # no adapter, no driver
        _failures[name] = f"{type(exc).__name__}: {exc}"
        return None
    except Exception as exc:  # a bug, not a missing GPU: fall back, but say so loudly
        _failures[name] = f"{type(exc).__name__}: {exc}"
        warnings.warn(f"the {name} backend failed to start ({_failures[name]}); this looks "
                      "like a bug, please report it. Using the CPU.", RuntimeWarning,
                      stacklevel=3)
        return None
    return _backends[name]


def requested_default() -> str:
    """What `DEMYSTIFY_DEVICE` asks for ("cpu" when unset), lower-cased, before resolving."""
    device = os.environ.get("DEMYSTIFY_DEVICE", "cpu").lower()
    return "gpu" if device == "cuda" else device


def resolve(device: str | None) -> str:
    """Turn None/"auto"/"cpu"/"gpu" (or "cuda", an alias for gpu) into "cpu" or "gpu"."""
    global _notified
    device = requested_default() if device is None else str(device).lower()
    if device == "cuda":
        device = "gpu"
    if device == "cpu":
        return "cpu"
    if device == "gpu":
        if _try("gpu") is None and _reacquire("gpu") is None:
            raise DeviceError(
                "device='gpu' was requested but no GPU is available: "
                f"{_failures.get('gpu', 'no adapter found')}. "
                "Use device='cpu', or device='auto' to fall back automatically.")
        return "gpu"
    if device == "auto":
        if _try("gpu") is not None:
            return "gpu"
        if not _notified:
            _notified = True
            reason = _failures.get("gpu", "no adapter found")
            print(f"demystify: no GPU ({reason}); computing on the CPU with NumPy.",
                  file=sys.stderr)
        return "cpu"
    raise ValueError(f"unknown device {device!r}: use 'cpu', 'gpu' or 'auto'")


def unavailable_reason(name: str) -> str | None:
    """Why a registered device could not start or was lost (None when it runs or was not
    tried)."""
    return _failures.get(name)


def lost_reason(name: str) -> str | None:
    """Why a device was retired after a loss (None when it was never lost)."""
    lost = _lost.get(name)
    return None if lost is None else lost[0]


def get(device: str | None) -> Backend:
    backend = _backends.get(device)  # a resolved name (every Tensor's): one lookup
    return backend if backend is not None else _backends[resolve(device)]


def started() -> list[str]:
    """Names of the devices whose backends exist so far (what `engine.profile` times)."""
    return list(_backends)


def devices() -> list[dict[str, str]]:
    """Available devices with a human-readable description (the GPU adapter's name)."""
    out = [{"name": "cpu", "adapter": _backends["cpu"].describe()}]
    gpu = _try("gpu")
    if gpu is not None:
        out.append({"name": "gpu", "adapter": gpu.describe()})
    return out


def default_device() -> str:
    return resolve(None)

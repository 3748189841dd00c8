"""The two safety nets of `fit`, as policies the loop consults:

- `DivergenceGuard`: a non-finite loss (or non-finite weights at an epoch end) stops the
  run and restores the last parameters *and* buffers (batch-norm statistics) that are all
  finite: the last step's same-device snapshot, else the epoch start's host copy.
- `DeviceFallback`: a `DeviceError` (the GPU was lost) retires the device and continues on
  the CPU from the epoch start's host copy, or propagates when fallback is off.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backends
from ..autograd import no_grad
from ..backends import DeviceError
from ..creation import zeros_like
from ..tensor import Tensor
from .history import History, TrainInfo
from .policies import note


def _state_tensors(model: Any) -> list[Tensor]:
    """The live tensors that define the model: parameters and buffers (BN statistics)."""
    out: list[Tensor] = []
    seen: set[int] = set()
    sources = [model.parameters()]
    if callable(getattr(model, "buffers", None)):
        sources.append(model.buffers())
    for src in sources:
        for t in src:
            if isinstance(t, Tensor) and id(t) not in seen:
                seen.add(id(t))
                out.append(t)
    return out


class _Snapshot:
    """A same-device copy of the model's tensors, refreshed in place every step (a device
    copy, no readback), restored when the loss stops being finite.

    The copy is taken after a step's forward pass gave a finite loss, but that forward may
    already have poisoned a buffer (batch norm's running variance overflowing), so it is
    checked for NaN/inf before it is restored (one readback, only then)."""

    def __init__(self) -> None:
        self.entries: list[tuple[Tensor, str, Any]] = []  # (tensor, its device, copy)
        self.step = -1  # the step whose state the copy holds

    @no_grad()
    def take(self, tensors: list[Tensor], step: int) -> None:
        if len(tensors) != len(self.entries) or any(
                t is not e[0] or t.device != e[1] or t.shape != e[2].shape
                for t, e in zip(tensors, self.entries, strict=True)):
            self.entries = [(t, t.device, zeros_like(t)) for t in tensors]
        for t, _, copy in self.entries:
            copy.copy_(t)
        self.step = step

    def finite(self) -> bool:
        return bool(self.entries) and all(
            _finite(copy.numpy()) for t, device, copy in self.entries if t.device == device)

    @no_grad()
    def restore(self) -> None:
        for t, device, copy in self.entries:
            if t.device == device:
                t.copy_(copy)


def _host_copy(tensors: list[Tensor]) -> list[np.ndarray]:
    return [np.array(t.numpy(), copy=True) for t in tensors]


def _finite(a: np.ndarray) -> bool:
    return a.dtype.kind != "f" or bool(np.isfinite(a).all())


def _restore_host(tensors: list[Tensor], host: list[np.ndarray]) -> None:
    """Write a host copy back into the model's tensors, on whatever device they are."""
    with no_grad():
        for t, arr in zip(tensors, host, strict=True):
            t.copy_(arr)


def _rebind_to_cpu(model: Any, tensors: list[Tensor], host: list[np.ndarray]) -> None:
    """Put the host copy into the model's tensors on the CPU without reading the (possibly
    lost) device, then let the module update its own bookkeeping with `.to("cpu")`."""
    for t, arr in zip(tensors, host, strict=True):
        t.set_(Tensor(arr, device="cpu", dtype=arr.dtype))
        t.grad = None
    if hasattr(model, "to"):
        try:
            model.to("cpu")
        except DeviceError:
            pass


def current_lr(optimizer: Any) -> float:
    return float(optimizer.param_groups[0]["lr"])


class DivergenceGuard:
    """Keeps the last finite state of the model and puts it back when training diverges.

    Per step: after the forward pass, a finite loss refreshes the same-device snapshot
    (no readback); a non-finite one stops the run. Per epoch: one host copy of every
    tensor, checked for NaN/inf (what the snapshot cannot see: an update that poisoned
    the weights without a non-finite loss), which is also the device fallback's source."""

    def __init__(self, model: Any, history: History) -> None:
        self.model, self.history = model, history
        self.snap = _Snapshot()
        self.tensors = _state_tensors(model)
        self.host = _host_copy(self.tensors)  # all finite: the weights at the epoch start
        self.host_at = (0, 0)  # (epoch, first step) the host copy belongs to
        if not all(_finite(a) for a in self.host):
            raise ValueError("fit: the model's weights contain NaN or inf before training; "
                             "re-initialise or load good weights")

    def loss_ok(self, value: float, info: TrainInfo) -> bool:
        """After a step's forward pass (info.step, .batch, .loss describe it)."""
        if math.isfinite(value):
            self.snap.take(self.tensors, info.step)  # these weights gave a finite loss
            return True
        self.diverged(f"the loss is {value}", info)
        return False

    def epoch_ok(self, info: TrainInfo, next_step: int) -> bool:
        """At an epoch end: the host copy, if every value is finite."""
        self.tensors = _state_tensors(self.model)
        host = _host_copy(self.tensors)
        if not all(_finite(a) for a in host):
            self.diverged("the parameters or buffers became NaN/inf", info)
            return False
        self.host, self.host_at = host, (info.epoch + 1, next_step)
        return True

    def diverged(self, why: str, info: TrainInfo) -> None:
        restored = self._restore_finite()
        self.history.diverged = True
        self.history.stopped_reason = (
            f"training diverged: {why} at epoch {info.epoch + 1}, step {info.step + 1}; "
            f"{restored}. Try a lower learning rate (now {current_lr(info.optimizer):g}), gradient "
            "clipping (engine.nn.utils.clip_grad_norm_), or normalised inputs.")

    def _restore_finite(self) -> str:
        if self.snap.finite():
            self.snap.restore()
            return (f"the parameters and buffers were restored to those of step "
                    f"{self.snap.step + 1} (the last with a finite loss and finite values)")
        _restore_host(self.tensors, self.host)
        return (f"the parameters and buffers were restored to those at the start of epoch "
                f"{self.host_at[0] + 1} (step {self.host_at[1] + 1}): the later ones were "
                "not all finite")

    def move_to_cpu(self) -> None:
        """The host copy into the model's tensors, on the CPU (the device is gone)."""
        _rebind_to_cpu(self.model, self.tensors, self.host)
        self.tensors = _state_tensors(self.model)
        self.snap.entries = []


class DeviceFallback:
    """What a `DeviceError` during training does: continue on the CPU from the epoch
    start's weights (retiring the device, so "auto" picks the CPU from then on), or
    propagate when `enabled` is False or the run is already on the CPU."""

    def __init__(self, enabled: bool, guard: DivergenceGuard) -> None:
        self.enabled, self.guard = enabled, guard

    def handle(self, exc: DeviceError, info: TrainInfo) -> None:
        dev = info.device
        if not self.enabled or dev == "cpu":
            raise exc
        note(f"demystify: the {dev} device failed ({exc}); continuing on the CPU from the "
             "weights at the start of this epoch.")
        backends.retire(dev, str(exc))
        self.guard.move_to_cpu()
        info.device = info.history.device = "cpu"

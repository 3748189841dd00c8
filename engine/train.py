"""A training loop with the safety nets a demo needs: `fit`, `evaluate`, `predict`.

- Progress: a tqdm bar per epoch on the terminal (`progress=False` turns it off).
- Callbacks: how the web app draws live curves and cancels a run (see `fit`).
- Divergence: a non-finite loss (or non-finite weights at an epoch end) stops training,
  restores the last parameters *and* buffers (batch-norm statistics) that are all finite
  (the last step's, else the epoch start's), says which step that was and what to try.
- Lost GPU: a `DeviceError` mid-training moves the model to the CPU with the last good
  weights (the host copy taken at the start of the epoch), retires the GPU (so "auto"
  picks the CPU from then on, see `backends.retire`) and carries on.
- Readbacks: one loss scalar per step; metrics are accumulated on the device and read once
  per epoch, so a GPU run is not stalled by host round trips.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import backends
from .autograd import no_grad
from .backends import DeviceError
from .creation import zeros_like
from .nn.utils import model_device
from .random import generator
from .tensor import Tensor

MetricFn = Callable[[Tensor, Tensor], Any]


class TrainingDiverged(RuntimeError):
    """The loss or the weights became NaN/inf (raised by `fit(..., on_diverge="raise")`)."""

    def __init__(self, message: str, history: History | None = None) -> None:
        super().__init__(message)
        self.history = history


class DivergenceWarning(RuntimeWarning):
    """Training stopped because the loss or the weights stopped being finite."""


class History(dict):
    """Per-epoch lists (``history["loss"]``, ``["accuracy"]``, ``["val_loss"]``,
    ``["val_accuracy"]``, one entry per completed epoch) plus per-step records.

    Attributes: `steps` (a list of {"epoch", "step", "loss", "lr"} dicts, `step` counting
    from 0 across epochs), `stopped_reason` (None when every epoch ran; otherwise why the run
    ended early), `diverged` (True when it stopped on NaN/inf), `device` (where it ended).
    """

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[dict[str, Any]] = []
        self.stopped_reason: str | None = None
        self.diverged = False
        self.device: str | None = None

    @property
    def epochs(self) -> int:
        return len(self.get("loss", []))

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.items() if v}
        return (f"History(epochs={self.epochs}, steps={len(self.steps)}, last={last}, "
                f"stopped_reason={self.stopped_reason!r})")


@dataclass
class TrainInfo:
    """What a callback sees. Set ``info.stop = True`` to end training after this event
    (the web app's cancel button does this); `stop_reason` may say why."""

    event: str
    model: Any
    optimizer: Any
    history: History
    epochs: int
    steps_per_epoch: int | None
    device: str
    epoch: int = 0          # 0-based epoch index
    batch: int = 0          # 0-based batch index within the epoch
    step: int = 0           # 0-based step index across epochs
    loss: float = math.nan  # this step's training loss
    lr: float = math.nan    # the first param group's lr used by this step
    logs: dict[str, float] = field(default_factory=dict)  # epoch metrics (on_epoch_end)
    stop: bool = False
    stop_reason: str | None = None


_EVENTS = ("on_train_begin", "on_step", "on_epoch_end", "on_train_end")


def _dispatch(callbacks: Sequence[Any], event: str, info: TrainInfo) -> None:
    info.event = event
    for cb in callbacks:
        method = getattr(cb, event, None)
        if method is not None and callable(method):
            method(info)
        elif callable(cb) and not any(hasattr(cb, e) for e in _EVENTS):
            cb(info)


# -- metrics ------------------------------------------------------------------------------

def accuracy(output: Tensor, target: Tensor) -> Tensor:
    """Fraction of rows whose largest score is the labelled class (a device scalar)."""
    return (output.argmax(-1) == target).astype(np.float32).mean()


def _resolve_metrics(metrics: Any, y_example: np.ndarray | None) -> dict[str, MetricFn]:
    if metrics is None:  # accuracy for integer class labels, nothing for regression
        if y_example is not None and y_example.ndim == 1 and y_example.dtype.kind in "iu":
            return {"accuracy": accuracy}
        return {}
    if isinstance(metrics, Mapping):
        return dict(metrics)
    out: dict[str, MetricFn] = {}
    for m in metrics:
        if m == "accuracy":
            out["accuracy"] = accuracy
        elif callable(m):
            out[getattr(m, "__name__", f"metric{len(out)}")] = m
        else:
            raise ValueError(f"unknown metric {m!r}: use 'accuracy' or a function "
                             "(output, target) -> scalar")
    return out


# -- data -------------------------------------------------------------------------------

class _Source:
    """Batches of host arrays from (X, y) arrays, a Dataset-like object, or a factory."""

    def __init__(self, data: Any, name: str) -> None:
        self.name = name
        self.arrays: tuple[np.ndarray, np.ndarray] | None = None
        self.dataset: Any = None
        self.factory: Callable[[], Iterable[Any]] | None = None
        if isinstance(data, (tuple, list)) and len(data) == 2:
            x, y = (np.asarray(a.numpy() if isinstance(a, Tensor) else a) for a in data)
            if len(x) != len(y):
                raise ValueError(f"{name}: X has {len(x)} samples but y has {len(y)}")
            if len(x) == 0:
                raise ValueError(f"{name}: no samples")
            self.arrays = (x, y)
        elif hasattr(data, "__len__") and hasattr(data, "__getitem__"):
            self.dataset = data
        elif callable(data):
            self.factory = data
        else:
            raise TypeError(f"{name}: expected an (X, y) pair of arrays, a Dataset-like object "
                            "(__len__ and __getitem__ giving (x, y)), or a function returning "
                            f"an iterable of (xb, yb) batches; got {type(data).__name__}")

    def __len__(self) -> int:
        if self.arrays is not None:
            return len(self.arrays[0])
        if self.dataset is not None:
            return len(self.dataset)
        return 0

    def steps(self, batch_size: int) -> int | None:
        if self.factory is not None:
            return None
        return -(-len(self) // batch_size)

    def y_example(self) -> np.ndarray | None:
        if self.arrays is not None:
            return self.arrays[1][:1]
        if self.dataset is not None and len(self.dataset):
            return np.asarray([self.dataset[0][1]])
        return None

    def batches(self, batch_size: int, shuffle: bool) -> Iterator[tuple[Any, Any]]:
        if self.factory is not None:
            yield from self.factory()
            return
        n = len(self)
        order = generator().permutation(n) if shuffle else np.arange(n)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            if self.arrays is not None:
                x, y = self.arrays
                if shuffle:
                    yield x[idx], y[idx]
                else:  # views, no copy
                    yield x[start:start + batch_size], y[start:start + batch_size]
            else:
                items = [self.dataset[int(i)] for i in idx]
                yield (np.stack([np.asarray(a) for a, _ in items]),
                       np.stack([np.asarray(b) for _, b in items]))


def _to_device(a: Any, device: str) -> Tensor:
    if isinstance(a, Tensor):
        return a.to(device)
    return Tensor(np.asarray(a), device=device)


# -- weights: snapshots and restores -----------------------------------------------------

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


def _lr(optimizer: Any) -> float:
    return float(optimizer.param_groups[0]["lr"])


# -- evaluation -------------------------------------------------------------------------

def _run_eval(model: Any, source: _Source, loss_fn: Callable | None,
              metrics: dict[str, MetricFn], batch_size: int, device: str) -> dict[str, float]:
    """Mean loss and metrics over a dataset in eval mode, accumulated on the device."""
    was_training = getattr(model, "training", True)
    if hasattr(model, "eval"):
        model.eval()
    totals: dict[str, Any] = {}
    n = 0
    try:
        with no_grad():
            for xb, yb in source.batches(batch_size, shuffle=False):
                x, y = _to_device(xb, device), _to_device(yb, device)
                out = model(x)
                k = len(x)
                vals = {name: fn(out, y) for name, fn in metrics.items()}
                if loss_fn is not None:
                    vals = {"loss": loss_fn(out, y), **vals}
                for name, v in vals.items():
                    v = v * float(k)
                    totals[name] = v if name not in totals else totals[name] + v
                n += k
    finally:
        if was_training and hasattr(model, "train"):
            model.train()
    return {name: _scalar(v) / max(n, 1) for name, v in totals.items()}


def _scalar(v: Any) -> float:
    return float(v.item()) if isinstance(v, Tensor) else float(v)


def evaluate(model: Any, X: Any, y: Any, batch_size: int = 256,
             loss_fn: Callable | None = None, device: str | None = None
             ) -> tuple[float, float]:
    """(mean loss, accuracy) of a classifier on (X, y), in eval mode under no_grad.

    `loss_fn` defaults to cross-entropy; accuracy is NaN when y is not integer labels.
    """
    if loss_fn is None:
        from .nn.functional import cross_entropy as loss_fn
    source = _Source((X, y), "evaluate")
    dev = model_device(model) if device is None else backends.resolve(device)
    metrics = _resolve_metrics(None, source.y_example())
    res = _run_eval(model, source, loss_fn, metrics, batch_size, dev)
    return res["loss"], res.get("accuracy", math.nan)


def predict(model: Any, X: Any, batch_size: int = 256, device: str | None = None) -> np.ndarray:
    """The model's outputs for every row of X as one host array (eval mode, no_grad)."""
    x_all = np.asarray(X.numpy() if isinstance(X, Tensor) else X)
    dev = model_device(model) if device is None else backends.resolve(device)
    was_training = getattr(model, "training", True)
    if hasattr(model, "eval"):
        model.eval()
    outs = []
    try:
        with no_grad():
            for start in range(0, len(x_all), batch_size):
                outs.append(model(_to_device(x_all[start:start + batch_size], dev)).numpy())
    finally:
        if was_training and hasattr(model, "train"):
            model.train()
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


# -- the loop ---------------------------------------------------------------------------

def fit(model: Any, loss_fn: Callable[[Tensor, Tensor], Tensor], optimizer: Any, train: Any,
        val: Any = None, epochs: int = 1, batch_size: int = 32, callbacks: Sequence[Any] = (),
        shuffle: bool = True, scheduler: Any = None, scheduler_step: str = "batch",
        metrics: Any = None, device: str | None = None, progress: bool = True,
        fallback_to_cpu: bool = True, on_diverge: str = "stop") -> History:
    """Train `model` to minimise ``loss_fn(model(xb), yb)`` with `optimizer`.

    Data: `train`/`val` are (X, y) pairs of NumPy arrays (shuffled on the host with
    `engine.random.generator()`, so `engine.manual_seed` fixes the order), Dataset-like
    objects whose ``ds[i]`` is an (x, y) sample, or functions returning an iterable of
    (xb, yb) batches (called once per epoch).

    Metrics: by default accuracy when y holds integer class labels; or a list of names /
    functions ``fn(output, target) -> batch mean``, or a {name: fn} dict. Validation runs
    after every epoch in `model.eval()` mode under no_grad and adds "val_" entries.

    Callbacks: objects with any of `on_train_begin`, `on_step`, `on_epoch_end`,
    `on_train_end` methods, or plain callables (called for every event with the same
    `TrainInfo`; `info.event` names it). To stop, a callback sets ``info.stop = True``;
    training ends after that step (or epoch), and `history.stopped_reason` records it.

    Safety: a non-finite loss, or non-finite weights found at an epoch end, restores the
    last weights that gave a finite loss, sets `history.diverged` and `stopped_reason` and
    warns (`on_diverge="raise"` raises `TrainingDiverged` instead). A `DeviceError` (GPU
    lost) continues on the CPU from the weights at the start of the epoch when
    `fallback_to_cpu`, else it propagates.

    `scheduler.step()` runs after every batch (`scheduler_step="batch"`) or epoch ("epoch").
    """
    if scheduler_step not in ("batch", "epoch"):
        raise ValueError(f"scheduler_step must be 'batch' or 'epoch', not {scheduler_step!r}")
    if on_diverge not in ("stop", "raise"):
        raise ValueError(f"on_diverge must be 'stop' or 'raise', not {on_diverge!r}")
    if batch_size <= 0 or epochs < 0:
        raise ValueError(f"need batch_size > 0 and epochs >= 0 (got {batch_size}, {epochs})")
    callbacks = [callbacks] if callable(callbacks) or any(
        hasattr(callbacks, e) for e in _EVENTS) else list(callbacks)
    src = _Source(train, "train")
    val_src = _Source(val, "val") if val is not None else None
    metric_fns = _resolve_metrics(metrics, src.y_example())
    if device is not None:
        model.to(backends.resolve(device))
    dev = model_device(model)

    history = History()
    history["loss"] = []
    for name in metric_fns:
        history[name] = []
    if val_src is not None:
        history["val_loss"] = []
        for name in metric_fns:
            history["val_" + name] = []
    info = TrainInfo("on_train_begin", model, optimizer, history, epochs,
                     src.steps(batch_size), dev)
    snap = _Snapshot()
    tensors = _state_tensors(model)
    host = _host_copy(tensors)  # all finite: the weights at the epoch start
    host_at = (0, 0)  # (epoch, first step) the host copy belongs to
    if not all(_finite(a) for a in host):
        raise ValueError("fit: the model's weights contain NaN or inf before training; "
                         "re-initialise or load good weights")

    def restore_finite() -> str:
        """Put back the latest state whose parameters and buffers are all finite."""
        if snap.finite():
            snap.restore()
            return (f"the parameters and buffers were restored to those of step "
                    f"{snap.step + 1} (the last with a finite loss and finite values)")
        _restore_host(tensors, host)
        return (f"the parameters and buffers were restored to those at the start of epoch "
                f"{host_at[0] + 1} (step {host_at[1] + 1}): the later ones were not all "
                "finite")

    def diverged(why: str) -> None:
        restored = restore_finite()
        history.diverged = True
        history.stopped_reason = (
            f"training diverged: {why} at epoch {info.epoch + 1}, step {info.step + 1}; "
            f"{restored}. Try a lower learning rate (now {_lr(optimizer):g}), gradient "
            "clipping (engine.nn.utils.clip_grad_norm_), or normalised inputs.")

    def lost_device(exc: DeviceError) -> None:
        nonlocal dev, tensors
        if not fallback_to_cpu or dev == "cpu":
            raise exc
        _note(f"demystify: the {dev} device failed ({exc}); continuing on the CPU from the "
              "weights at the start of this epoch.")
        backends.retire(dev, str(exc))
        _rebind_to_cpu(model, tensors, host)
        dev = info.device = history.device = "cpu"
        tensors = _state_tensors(model)
        snap.entries = []

    model.train()
    _dispatch(callbacks, "on_train_begin", info)
    step = 0
    t0 = time.perf_counter()
    for epoch in range(epochs):
        if info.stop or history.stopped_reason:
            break
        info.epoch = epoch
        bar = _progress(progress, src.steps(batch_size), epoch, epochs)
        loss_sum, seen = 0.0, 0
        totals: dict[str, Any] = {}
        for bi, (xb, yb) in enumerate(src.batches(batch_size, shuffle)):
            lr = _lr(optimizer)
            try:
                x, y = _to_device(xb, dev), _to_device(yb, dev)
                optimizer.zero_grad()
                out = model(x)
                loss = loss_fn(out, y)
                value = float(loss.item())
                if not math.isfinite(value):
                    info.step, info.batch, info.loss = step, bi, value
                    diverged(f"the loss is {value}")
                    break
                snap.take(tensors, step)  # these weights gave a finite loss
                k = len(x)
                if metric_fns:
                    with no_grad():
                        for name, fn in metric_fns.items():
                            v = fn(out, y) * float(k)
                            totals[name] = v if name not in totals else totals[name] + v
                loss.backward()
                optimizer.step()
            except DeviceError as exc:
                lost_device(exc)
                loss_sum, seen, totals = 0.0, 0, {}
                continue
            if scheduler is not None and scheduler_step == "batch":
                scheduler.step()
            loss_sum += value * k
            seen += k
            history.steps.append({"epoch": epoch, "step": step, "loss": value, "lr": lr})
            info.step, info.batch, info.loss, info.lr = step, bi, value, lr
            step += 1
            if bar is not None:
                bar.update(1)
                if bi % 10 == 0:
                    bar.set_postfix(loss=f"{value:.4f}", refresh=False)
            _dispatch(callbacks, "on_step", info)
            if info.stop:
                break
        if bar is not None:
            bar.close()
        if history.stopped_reason or info.stop:
            break
        logs = {"loss": loss_sum / max(seen, 1)}
        try:
            for name, v in totals.items():
                logs[name] = _scalar(v) / max(seen, 1)
            tensors = _state_tensors(model)
            new_host = _host_copy(tensors)
            if not all(_finite(a) for a in new_host):
                diverged("the parameters or buffers became NaN/inf")
                break
            host, host_at = new_host, (epoch + 1, step)
            if val_src is not None:
                vlogs = _run_eval(model, val_src, loss_fn, metric_fns, max(batch_size, 256),
                                  dev)
                logs.update({"val_" + k: v for k, v in vlogs.items()})
        except DeviceError as exc:
            lost_device(exc)
            if val_src is not None:
                vlogs = _run_eval(model, val_src, loss_fn, metric_fns, max(batch_size, 256),
                                  dev)
                logs.update({"val_" + k: v for k, v in vlogs.items()})
        for k, v in logs.items():
            history.setdefault(k, []).append(v)
        if scheduler is not None and scheduler_step == "epoch":
            scheduler.step()
        info.logs = dict(logs)
        if progress:
            _note(f"epoch {epoch + 1}/{epochs}: " + ", ".join(
                f"{k}={v:.4f}" for k, v in logs.items()) +
                f" ({time.perf_counter() - t0:.1f}s)")
        _dispatch(callbacks, "on_epoch_end", info)

    if info.stop and not history.stopped_reason:
        history.stopped_reason = info.stop_reason or "stopped by a callback"
    history.device = dev
    info.device = dev
    info.logs = {k: v[-1] for k, v in history.items() if v}
    _dispatch(callbacks, "on_train_end", info)
    if history.diverged:
        if on_diverge == "raise":
            raise TrainingDiverged(history.stopped_reason or "training diverged", history)
        warnings.warn(history.stopped_reason, DivergenceWarning, stacklevel=2)
    return history


def _progress(enabled: bool, total: int | None, epoch: int, epochs: int) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"epoch {epoch + 1}/{epochs}", unit="step", leave=False,
                file=sys.stderr, dynamic_ncols=True)


def _note(message: str) -> None:
    try:
        from tqdm import tqdm

        tqdm.write(message, file=sys.stderr)
    except ImportError:  # pragma: no cover - tqdm is a dependency
        print(message, file=sys.stderr)

"""`fit`: the training loop, short on purpose. What happens around a step is a policy
object the loop consults (each in its own module):

- `DivergenceGuard` (guard.py): snapshot per step, host copy per epoch, finiteness
  checks, the restore when the loss or the weights stop being finite;
- `DeviceFallback` (guard.py): a lost GPU is retired and the run continues on the CPU;
- `Callbacks` (policies.py): events for live curves, `EarlyStopping`, `Cancel`;
- `Progress` (policies.py): a tqdm bar per epoch.

Readbacks: one loss scalar per step; metrics are accumulated on the device and read once
per epoch, so a GPU run is not stalled by host round trips.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

from .. import backends
from ..autograd import no_grad
from ..backends import DeviceError
from ..nn.utils import model_device
from ..tensor import Tensor
from .data import MetricFn, Source, resolve_metrics, scalar, to_device
from .evaluation import run_eval
from .guard import DeviceFallback, DivergenceGuard, current_lr
from .history import DivergenceWarning, History, TrainInfo, TrainingDiverged
from .policies import Callbacks, Progress


class _EpochSums:
    """The epoch's sample-weighted sums: the loss on the host, metrics on the device."""

    def __init__(self, metrics: dict[str, MetricFn]) -> None:
        self.metrics, self.loss, self.seen, self.totals = metrics, 0.0, 0, {}

    @no_grad()
    def add_metrics(self, out: Tensor, y: Tensor, k: int) -> None:
        for name, fn in self.metrics.items():
            v = fn(out, y) * float(k)
            self.totals[name] = v if name not in self.totals else self.totals[name] + v

    def add_loss(self, value: float, k: int) -> None:
        self.loss += value * k
        self.seen += k

    def loss_mean(self) -> float:
        return self.loss / max(self.seen, 1)

    def metric_means(self) -> dict[str, float]:
        """One readback per metric (where a lost device shows up)."""
        return {k: scalar(v) / max(self.seen, 1) for k, v in self.totals.items()}


def _step(model: Any, loss_fn: Callable, optimizer: Any, xb: Any, yb: Any, info: TrainInfo,
          guard: DivergenceGuard, sums: _EpochSums) -> bool:
    """One optimisation step on a batch; False when the loss was not finite (the guard
    has restored the weights and recorded why)."""
    x, y = to_device(xb, info.device), to_device(yb, info.device)
    optimizer.zero_grad()
    out = model(x)
    loss = loss_fn(out, y)
    info.loss = float(loss.item())
    if not guard.loss_ok(info.loss, info):
        return False
    sums.add_metrics(out, y, len(x))
    loss.backward()
    optimizer.step()
    sums.add_loss(info.loss, len(x))
    return True


def _validate(model: Any, val: Source | None, loss_fn: Callable, metrics: dict[str, MetricFn],
              batch_size: int, info: TrainInfo) -> dict[str, float]:
    if val is None:
        return {}
    logs = run_eval(model, val, loss_fn, metrics, max(batch_size, 256), info.device)
    return {"val_" + k: v for k, v in logs.items()}


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
    events = Callbacks(callbacks)
    src = Source(train, "train")
    val_src = Source(val, "val") if val is not None else None
    metric_fns = resolve_metrics(metrics, src.y_example())
    if device is not None:
        model.to(backends.resolve(device))
    history = History.for_run(metric_fns, val_src is not None)
    steps = src.steps(batch_size)
    info = TrainInfo("on_train_begin", model, optimizer, history, epochs, steps,
                     model_device(model))
    guard = DivergenceGuard(model, history)
    fallback = DeviceFallback(fallback_to_cpu, guard)
    bar = Progress(progress, epochs, steps)

    model.train()
    events.fire("on_train_begin", info)
    step = 0
    for epoch in range(epochs):
        if info.stop or history.stopped_reason:
            break
        info.epoch = epoch
        sums = _EpochSums(metric_fns)
        bar.begin_epoch(epoch)
        for bi, (xb, yb) in enumerate(src.batches(batch_size, shuffle)):
            info.step, info.batch, info.lr = step, bi, current_lr(optimizer)
            try:
                if not _step(model, loss_fn, optimizer, xb, yb, info, guard, sums):
                    break
            except DeviceError as exc:
                fallback.handle(exc, info)
                sums = _EpochSums(metric_fns)  # the epoch restarts its sums on the CPU
                continue
            if scheduler is not None and scheduler_step == "batch":
                scheduler.step()
            history.steps.append({"epoch": epoch, "step": step, "loss": info.loss,
                                  "lr": info.lr})
            step += 1
            bar.step(bi, info.loss)
            events.fire("on_step", info)
            if info.stop:
                break
        bar.close()
        if history.stopped_reason or info.stop:
            break
        logs = {"loss": sums.loss_mean()}
        try:
            logs.update(sums.metric_means())
            if not guard.epoch_ok(info, step):
                break
            logs.update(_validate(model, val_src, loss_fn, metric_fns, batch_size, info))
        except DeviceError as exc:  # the epoch's logs stand; validation reruns on the CPU
            fallback.handle(exc, info)
            logs.update(_validate(model, val_src, loss_fn, metric_fns, batch_size, info))
        for k, v in logs.items():
            history.setdefault(k, []).append(v)
        if scheduler is not None and scheduler_step == "epoch":
            scheduler.step()
        info.logs = dict(logs)
        bar.epoch_done(epoch, logs)
        events.fire("on_epoch_end", info)

    if info.stop and not history.stopped_reason:
        history.stopped_reason = info.stop_reason or "stopped by a callback"
    history.device = info.device
    info.logs = {k: v[-1] for k, v in history.items() if v}
    events.fire("on_train_end", info)
    if history.diverged:
        if on_diverge == "raise":
            raise TrainingDiverged(history.stopped_reason or "training diverged", history)
        warnings.warn(history.stopped_reason, DivergenceWarning, stacklevel=2)
    return history

"""The loop's other policies: callbacks (and two ready ones, `EarlyStopping` and
`Cancel`), and progress on the terminal.

A callback is an object with any of `on_train_begin`, `on_step`, `on_epoch_end`,
`on_train_end`, or a plain callable called for every event with the same `TrainInfo`
(`info.event` names it). Setting ``info.stop = True`` (and `info.stop_reason`) ends the
run after that step or epoch: that is all cancellation and early stopping are.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from .history import EVENTS, TrainInfo


def note(message: str) -> None:
    """A line on stderr that does not break a tqdm bar."""
    try:
        from tqdm import tqdm

        tqdm.write(message, file=sys.stderr)
    except ImportError:  # pragma: no cover - tqdm is a dependency
        print(message, file=sys.stderr)


class Callbacks:
    """The run's callbacks, called in order for each event."""

    def __init__(self, callbacks: Any) -> None:
        self.items: Sequence[Any] = [callbacks] if callable(callbacks) or any(
            hasattr(callbacks, e) for e in EVENTS) else list(callbacks)

    def fire(self, event: str, info: TrainInfo) -> None:
        info.event = event
        for cb in self.items:
            method = getattr(cb, event, None)
            if method is not None and callable(method):
                method(info)
            elif callable(cb) and not any(hasattr(cb, e) for e in EVENTS):
                cb(info)


class Cancel:
    """Stop after the current step once `should_stop()` is true, e.g. a
    `threading.Event().is_set` that a Stop button sets, or a closed browser tab."""

    def __init__(self, should_stop: Callable[[], bool], reason: str = "cancelled") -> None:
        self.should_stop, self.reason = should_stop, reason

    def on_step(self, info: TrainInfo) -> None:
        if self.should_stop():
            info.stop, info.stop_reason = True, self.reason


class EarlyStopping:
    """Stop when `monitor` (an epoch log: "val_loss", "val_accuracy", "loss", ...) has not
    improved by more than `min_delta` for `patience` epochs; `mode` "min" or "max" (default:
    "max" for accuracies, else "min"). With `restore_best`, the model's state dict of the
    best epoch is loaded back when training ends (one host copy per improvement)."""

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0,
                 mode: str | None = None, restore_best: bool = False) -> None:
        mode = mode or ("max" if "acc" in monitor else "min")
        if mode not in ("min", "max") or patience < 0:
            raise ValueError(f"EarlyStopping: mode must be 'min' or 'max' and patience >= 0, "
                             f"got mode={mode!r}, patience={patience}")
        self.monitor, self.patience, self.min_delta = monitor, patience, float(min_delta)
        self.sign = 1.0 if mode == "min" else -1.0
        self.restore_best = restore_best
        self.best, self.best_epoch, self.wait, self.state = math.inf, -1, 0, None

    def on_train_begin(self, info: TrainInfo) -> None:
        self.best, self.best_epoch, self.wait, self.state = math.inf, -1, 0, None

    def on_epoch_end(self, info: TrainInfo) -> None:
        if self.monitor not in info.logs:
            raise KeyError(f"EarlyStopping: no {self.monitor!r} in the epoch logs "
                           f"({', '.join(info.logs)}); pass val= to fit for val_ metrics")
        value = self.sign * float(info.logs[self.monitor])
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = value, info.epoch, 0
            if self.restore_best and hasattr(info.model, "state_dict"):
                self.state = info.model.state_dict()
            return
        self.wait += 1
        if self.wait > self.patience:
            info.stop = True
            info.stop_reason = (f"early stopping: {self.monitor} did not improve for "
                                f"{self.wait} epochs (best {self.sign * self.best:.4g} at "
                                f"epoch {self.best_epoch + 1})")

    def on_train_end(self, info: TrainInfo) -> None:
        if self.state is not None and not info.history.diverged:
            info.model.load_state_dict(self.state)


class Progress:
    """A tqdm bar per epoch and a line per finished epoch on stderr (or nothing)."""

    def __init__(self, enabled: bool, epochs: int, steps: int | None) -> None:
        self.enabled, self.epochs, self.steps = enabled, epochs, steps
        self.bar: Any = None
        self.t0 = time.perf_counter()

    def begin_epoch(self, epoch: int) -> None:
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{self.epochs}",
                            unit="step", leave=False, file=sys.stderr, dynamic_ncols=True)

    def step(self, batch: int, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if batch % 10 == 0:
                self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def epoch_done(self, epoch: int, logs: dict[str, float]) -> None:
        if self.enabled:
            note(f"epoch {epoch + 1}/{self.epochs}: " + ", ".join(
                f"{k}={v:.4f}" for k, v in logs.items()) +
                f" ({time.perf_counter() - self.t0:.1f}s)")


__all__ = ["Callbacks", "Cancel", "EarlyStopping", "Progress", "note"]

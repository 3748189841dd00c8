"""What a training run records and what its callbacks see: `History`, `TrainInfo`, and
the divergence error and warning."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

EVENTS = ("on_train_begin", "on_step", "on_epoch_end", "on_train_end")


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

    @classmethod
    def for_run(cls, metrics: Any, validation: bool) -> History:
        """Empty per-epoch lists for the loss and each metric (and their "val_" twins)."""
        h = cls()
        names = ["loss", *metrics]
        for name in names + (["val_" + n for n in names] if validation else []):
            h[name] = []
        return h

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



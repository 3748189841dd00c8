"""What the Playground shares between sessions: the latest finished model, for the Engine
page (ONNX download, per-op timings). One explicit object with its own lock, holding host
copies only, so another session can rebuild the model without touching a live run."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Finished:
    """A finished run's network as data: the recipe (engine.mlp.Recipe), its input and
    output sizes, the weights, one example network input and a label for people."""

    recipe: Any
    n_in: int
    n_out: int
    state: dict[str, np.ndarray]
    example: np.ndarray
    label: str

    def model(self) -> Any:
        """A fresh CPU copy of the network, in eval mode."""
        from engine import mlp

        model = mlp.build_mlp(self.recipe, self.n_in, self.n_out)
        model.load_state_dict(self.state)
        return model.eval()


class LatestModel:
    """The most recent finished Playground model of any session."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._finished: Finished | None = None

    def publish(self, finished: Finished) -> None:
        with self._lock:
            self._finished = finished

    def clear(self) -> None:
        with self._lock:
            self._finished = None

    def get(self) -> Finished | None:
        with self._lock:
            return self._finished

    def model(self) -> tuple[Any, np.ndarray, str] | None:
        """(a fresh CPU copy of the model, an example input, its label), or None before
        the first run finished."""
        finished = self.get()
        if finished is None:
            return None
        return finished.model(), finished.example, finished.label


LATEST = LatestModel()

"""Training with the safety nets a demo needs: `fit`, `evaluate`, `predict`.

- Progress: a tqdm bar per epoch on the terminal (`progress=False` turns it off).
- Callbacks: how the web app draws live curves and cancels a run (see `fit`); ready
  ones: `EarlyStopping`, `Cancel`.
- Divergence: a non-finite loss (or non-finite weights at an epoch end) stops training,
  restores the last parameters *and* buffers (batch-norm statistics) that are all finite
  (the last step's, else the epoch start's), says which step that was and what to try.
- Lost GPU: a `DeviceError` mid-training moves the model to the CPU with the last good
  weights (the host copy taken at the start of the epoch), retires the GPU (so "auto"
  picks the CPU from then on, see `backends.retire`) and carries on.

The loop is `loop.py`; each of these is a policy object beside it (see its docstring).
"""

from __future__ import annotations

from .data import accuracy
from .evaluation import evaluate, predict
from .history import DivergenceWarning, History, TrainInfo, TrainingDiverged
from .loop import fit
from .policies import Cancel, EarlyStopping

__all__ = ["fit", "evaluate", "predict", "accuracy", "History", "TrainInfo",
           "TrainingDiverged", "DivergenceWarning", "EarlyStopping", "Cancel"]

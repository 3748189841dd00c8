"""Inference over a whole data set: `evaluate` (mean loss and accuracy) and `predict`
(the outputs), batched, in eval mode under no_grad (`nn.utils.evaluating`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import backends
from ..nn.module import Module
from ..nn.utils import evaluating, model_device
from ..tensor import Tensor
from .data import MetricFn, Source, resolve_metrics, scalar, to_device


def run_eval(model: Any, source: Source, loss_fn: Callable | None,
             metrics: dict[str, MetricFn], batch_size: int, device: str) -> dict[str, float]:
    """Mean loss and metrics over a dataset in eval mode, accumulated on the device."""
    totals: dict[str, Any] = {}
    n = 0
    with evaluating(model):
        for xb, yb in source.batches(batch_size, shuffle=False):
            x, y = to_device(xb, device), to_device(yb, device)
            out = model(x)
            k = len(x)
            vals = {name: fn(out, y) for name, fn in metrics.items()}
            if loss_fn is not None:
                vals = {"loss": loss_fn(out, y), **vals}
            for name, v in vals.items():
                v = v * float(k)
                totals[name] = v if name not in totals else totals[name] + v
            n += k
    return {name: scalar(v) / max(n, 1) for name, v in totals.items()}


def evaluate(model: Any, X: Any, y: Any, batch_size: int = 256,
             loss_fn: Callable | None = None, device: str | None = None
             ) -> tuple[float, float]:
    """(mean loss, accuracy) of a classifier on (X, y), in eval mode under no_grad.

    `loss_fn` defaults to cross-entropy; accuracy is NaN when y is not integer labels.
    """
    if loss_fn is None:
        from ..nn.functional import cross_entropy as loss_fn
    source = Source((X, y), "evaluate")
    dev = model_device(model) if device is None else backends.resolve(device)
    metrics = resolve_metrics(None, source.y_example())
    res = run_eval(model, source, loss_fn, metrics, batch_size, dev)
    return res["loss"], res.get("accuracy", math.nan)


def predict(model: Any, X: Any, batch_size: int = 256, device: str | None = None) -> np.ndarray:
    """The model's outputs for every row of X as one host array (eval mode, no_grad),
    through the model's cached inference plans (`engine.compile`): the same values, less
    Python per op (what the Digits page's single drawn image pays for)."""
    from ..plan import compile as compiled

    x_all = np.asarray(X.numpy() if isinstance(X, Tensor) else X)
    dev = model_device(model) if device is None else backends.resolve(device)
    outs = []
    run = compiled(model) if isinstance(model, Module) else model
    with evaluating(model):
        for start in range(0, len(x_all), batch_size):
            outs.append(run(to_device(x_all[start:start + batch_size], dev)).numpy())
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)

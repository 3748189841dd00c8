"""Sequence tasks for the sequence-model demos: MNIST read row by row, and the adding
problem (Hochreiter & Schmidhuber 1997), whose answer depends on two inputs far apart."""

from __future__ import annotations

import numpy as np

MAX_ADDING_LENGTH = 1000  # beyond this the demo's step-by-step loops get too slow


def mnist_rows(images: np.ndarray) -> np.ndarray:
    """uint8 or float (N, 28, 28) digits -> float32 (N, 28, 28) sequences in [0, 1]: step t
    is image row t (top to bottom), its 28 pixels the features."""
    x = np.asarray(images)
    if x.ndim != 3:
        raise ValueError(f"expected digits of shape (N, H, W), got {x.shape}")
    x = x.astype(np.float32)
    return x / np.float32(255) if x.max(initial=0) > 1.0 else x


def adding_problem(n: int, length: int, seed: int | np.random.Generator = 0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(x (n, length, 2), y (n,)): channel 0 holds random numbers in [0, 1), channel 1
    marks two of them, one in each half of the sequence; the target is their sum. A model
    that ignores the marks scores mean squared error 1/6 (always answering 1.0)."""
    length, n = int(length), int(n)
    if not 2 <= length <= MAX_ADDING_LENGTH:
        raise ValueError(f"adding problem: length must be 2..{MAX_ADDING_LENGTH}, got "
                         f"{length}")
    if n < 1:
        raise ValueError(f"adding problem: need at least one sequence, got n={n}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    values = rng.random((n, length)).astype(np.float32)
    half = length // 2
    first = rng.integers(0, half, n)
    second = rng.integers(half, length, n)
    marks = np.zeros((n, length), np.float32)
    marks[np.arange(n), first] = 1.0
    marks[np.arange(n), second] = 1.0
    y = values[np.arange(n), first] + values[np.arange(n), second]
    return np.stack([values, marks], -1), y.astype(np.float32)


def adding_accuracy(pred: np.ndarray, y: np.ndarray, tol: float = 0.04) -> float:
    """Fraction of answers within `tol` of the true sum (the usual criterion)."""
    pred, y = np.asarray(pred).reshape(-1), np.asarray(y).reshape(-1)
    return float(np.mean(np.abs(pred - y) < tol))

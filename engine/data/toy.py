"""2-D toy classification data (spirals, moons, circles): small problems whose decision
boundary can be drawn, for the Playground."""

from __future__ import annotations

import numpy as np

KINDS = ("spirals", "moons", "circles")


def make_toy(kind: str, n: int = 600, noise: float = 0.1, seed: int = 0
             ) -> tuple[np.ndarray, np.ndarray]:
    """(X float32 (n, 2) roughly in [-1.5, 1.5], y int64 (n,) in {0, 1}) of a 2-class set."""
    if kind not in KINDS:
        raise ValueError(f"unknown toy data set {kind!r}; choose one of {', '.join(KINDS)}")
    if n < 2:
        raise ValueError(f"need at least 2 points, got n={n}")
    rng = np.random.default_rng(seed)
    half = n // 2
    y = np.r_[np.zeros(half, np.int64), np.ones(n - half, np.int64)]
    if kind == "spirals":
        t = np.sqrt(rng.uniform(0, 1, n)) * 3 * np.pi
        sign = np.where(y == 0, 1.0, -1.0)
        X = np.stack([sign * t * np.cos(t), sign * t * np.sin(t)], 1) / (3 * np.pi) * 1.3
    elif kind == "moons":
        t = rng.uniform(0, np.pi, n)
        X = np.where((y == 0)[:, None],
                     np.stack([np.cos(t), np.sin(t)], 1),
                     np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1))
        X = (X - [0.5, 0.25]) * 1.1
    else:
        t = rng.uniform(0, 2 * np.pi, n)
        r = np.where(y == 0, 0.5, 1.2)
        X = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    X = X + rng.normal(0, noise, X.shape)
    order = rng.permutation(n)
    return X[order].astype(np.float32), y[order]


__all__ = ["make_toy", "KINDS"]

"""2-D toy data: small problems whose decision boundary can be drawn, for the Playground.

`make_playground` gives TensorFlow Playground's kind of sets on the square [-6, 6]^2 (so
sin x1 and x1^2 are useful features there): circle, XOR, Gaussian clusters (three classes),
two moons and spiral to classify, plane and multi-Gaussian to regress. `noise` runs from 0 (clean)
to 0.5 (very noisy). `make_toy` keeps the older, smaller sets (spirals, moons, circles on
about [-1.5, 1.5]^2).
"""

from __future__ import annotations

import numpy as np

KINDS = ("spirals", "moons", "circles")

# name -> task; the Playground's 2-D sets
PLAYGROUND_SETS = {"circle": "classification", "xor": "classification",
                   "gauss": "classification", "moons": "classification",
                   "spiral": "classification",
                   "plane": "regression", "multigauss": "regression"}
EXTENT = 6.0  # the sets live in [-EXTENT, EXTENT]^2


def half_moons(y: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Two interleaved unit half circles (class 0 above, class 1 below, shifted), centred
    on the origin: class 0 at (cos t, sin t) - (0.5, 0.25), t in [0, pi]."""
    x = np.where((y == 0)[:, None], np.stack([np.cos(t), np.sin(t)], 1),
                 np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1))
    return x - [0.5, 0.25]


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
        X = half_moons(y, rng.uniform(0, np.pi, n)) * 1.1
    else:
        t = rng.uniform(0, 2 * np.pi, n)
        r = np.where(y == 0, 0.5, 1.2)
        X = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    X = X + rng.normal(0, noise, X.shape)
    order = rng.permutation(n)
    return X[order].astype(np.float32), y[order]


def make_playground(kind: str, n: int = 500, noise: float = 0.0, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(X float32 (n, 2) in [-6, 6]^2, y): int64 class labels (circle, XOR, moons, spiral: 0/1;
    Gaussian clusters: 0/1/2) or float32 regression targets in about [-1, 1] (plane,
    multi-Gaussian). Deterministic for a given seed."""
    if kind not in PLAYGROUND_SETS:
        raise ValueError(f"unknown data set {kind!r}; choose one of "
                         f"{', '.join(PLAYGROUND_SETS)}")
    if n < 4:
        raise ValueError(f"need at least 4 points, got n={n}")
    if not 0.0 <= noise <= 0.5:
        raise ValueError(f"noise must be between 0 and 0.5, got {noise}")
    rng = np.random.default_rng(seed)
    r = EXTENT * 5 / 6  # the sets fill a disc/square of radius 5, as TF Playground's
    if kind == "circle":
        y = (np.arange(n) >= n // 2).astype(np.int64)  # 0 inside, 1 on the ring
        radius = np.where(y == 0, rng.uniform(0, 0.5 * r, n), rng.uniform(0.7 * r, r, n))
        angle = rng.uniform(0, 2 * np.pi, n)
        x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1)
        x += rng.uniform(-r, r, x.shape) * noise
    elif kind == "xor":
        x = rng.uniform(-r, r, (n, 2))
        x += np.where(x > 0, 0.3, -0.3)  # keep points off the axes
        y = (x[:, 0] * x[:, 1] < 0).astype(np.int64)
        x += rng.uniform(-r, r, x.shape) * noise
    elif kind == "gauss":
        y = np.arange(n) % 3
        centres = 3.0 * np.stack([np.cos(2 * np.pi * y / 3 + np.pi / 2),
                                  np.sin(2 * np.pi * y / 3 + np.pi / 2)], 1)
        x = centres + rng.normal(0, 0.6 + 4 * noise, (n, 2))
    elif kind == "moons":  # two interleaved half circles (scikit-learn's make_moons)
        y = (np.arange(n) >= n // 2).astype(np.int64)
        x = half_moons(y, rng.uniform(0, np.pi, n)) * 0.6 * r  # [-4.5, 4.5] x [-2.3, 2.3]
        x += rng.uniform(-1, 1, x.shape) * r * noise
    elif kind == "spiral":
        y = (np.arange(n) >= n // 2).astype(np.int64)
        t = rng.uniform(0, 1, n)
        angle = 1.75 * t * 2 * np.pi + np.pi * y
        x = r * t[:, None] * np.stack([np.sin(angle), np.cos(angle)], 1)
        x += rng.uniform(-1, 1, x.shape) * r * noise
    else:
        x = rng.uniform(-r, r, (n, 2))
        if kind == "plane":
            target = (x[:, 0] + x[:, 1]) / (2 * r)
        else:  # multigauss: two bumps up, two down
            bumps = [(-2.5, 2.5, 1), (2.5, 2.5, -1), (-2.5, -2.5, -1), (2.5, -2.5, 1)]
            target = sum(s * np.exp(-((x[:, 0] - a) ** 2 + (x[:, 1] - b) ** 2) / 4)
                         for a, b, s in bumps)
        y = (target + rng.normal(0, noise, n)).astype(np.float32)
    order = rng.permutation(n)
    x = np.clip(x, -EXTENT, EXTENT)
    return x[order].astype(np.float32), y[order]


__all__ = ["make_toy", "make_playground", "KINDS", "PLAYGROUND_SETS", "EXTENT"]

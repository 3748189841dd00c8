"""A random forest (Breiman 2001) on NumPy: the Playground's classical learner beside the
network. It lives in the engine, by hand, because the browser build has NumPy but not
scikit-learn; the tests compare its accuracy with scikit-learn's on the same splits.

Each tree is a CART tree grown on a bootstrap sample: at every node a random subset of
features (sqrt of their number for classification, all for regression, as scikit-learn)
is searched exhaustively for the threshold that most lowers the Gini impurity (or the
squared error), until the leaves are pure or too small. One node's search is vectorised:
sort each candidate feature, take cumulative class counts (sums for regression), score
every cut at once. The forest averages the trees' class frequencies (or values).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

TASKS = ("classification", "regression")


@dataclass
class Tree:
    """Flat arrays: node i splits on feature[i] <= threshold[i] (feature -1: a leaf),
    children left[i] / right[i]; value[i] is the class frequencies (or the mean)."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The leaf each row of x falls in."""
        node = np.zeros(len(x), np.int64)
        rows = np.arange(len(x))
        while True:
            f = self.feature[node]
            inner = f >= 0
            if not inner.any():
                return node
            r, n = rows[inner], node[inner]
            go_left = x[r, f[inner]] <= self.threshold[n]
            node[inner] = np.where(go_left, self.left[n], self.right[n])


def _best_split(x: np.ndarray, stats: np.ndarray, feats: np.ndarray, min_leaf: int,
                regression: bool) -> tuple[int, float, float] | None:
    """(feature, threshold, score) of the best cut of these rows over `feats`, or None.

    stats: (m, K) one-hot classes, or (m, 1) targets for regression. The score to
    maximise is sum_k L_k^2 / n_L + sum_k R_k^2 / n_R (the same ranking as the impurity
    decrease for Gini and for squared error)."""
    m = len(x)
    cols = x[:, feats]                                   # (m, f)
    order = np.argsort(cols, axis=0, kind="stable")
    sorted_x = np.take_along_axis(cols, order, axis=0)
    csum = np.cumsum(stats[order], axis=0)               # (m, f, K) running sums
    total = csum[-1]                                     # (f, K)
    n_left = np.arange(1, m, dtype=np.float64)[:, None]  # cut after row i: i+1 rows left
    left, right = csum[:-1], total[None] - csum[:-1]
    if regression:
        score = (left[..., 0] ** 2) / n_left + (right[..., 0] ** 2) / (m - n_left)
    else:
        score = (left ** 2).sum(-1) / n_left + (right ** 2).sum(-1) / (m - n_left)
    valid = sorted_x[1:] > sorted_x[:-1]                 # only between distinct values
    valid[:min_leaf - 1] = False
    if min_leaf > 1:
        valid[m - min_leaf:] = False
    if not valid.any():
        return None
    score = np.where(valid, score, -np.inf)
    i, j = np.unravel_index(int(np.argmax(score)), score.shape)
    threshold = 0.5 * (float(sorted_x[i, j]) + float(sorted_x[i + 1, j]))
    if not threshold < sorted_x[i + 1, j]:  # neighbours one float apart
        threshold = float(sorted_x[i, j])
    return int(feats[j]), threshold, float(score[i, j])


def grow_tree(x: np.ndarray, stats: np.ndarray, max_features: int, rng: np.random.Generator,
              max_depth: int | None = None, min_samples_leaf: int = 1,
              regression: bool = False) -> Tree:
    """A CART tree on rows x with per-row stats (one-hot classes or (m, 1) targets)."""
    feature: list[int] = []
    threshold: list[float] = []
    left: list[int] = []
    right: list[int] = []
    value: list[np.ndarray] = []
    n_features = x.shape[1]

    def new_node(idx: np.ndarray) -> int:
        s = stats[idx]
        value.append(s.mean(axis=0))
        feature.append(-1)
        threshold.append(0.0)
        left.append(-1)
        right.append(-1)
        return len(value) - 1

    root = np.arange(len(x))
    todo = [(new_node(root), root, 0)]
    while todo:
        node, idx, depth = todo.pop()
        s = stats[idx]
        if (len(idx) < 2 * min_samples_leaf or (max_depth is not None and depth >= max_depth)
                or np.ptp(s, axis=0).max() == 0.0):  # pure (or constant target)
            continue
        feats = rng.choice(n_features, size=max_features, replace=False)
        best = _best_split(x[idx], s, feats, min_samples_leaf, regression)
        if best is None and max_features < n_features:  # as scikit-learn: try the rest
            rest = np.setdiff1d(np.arange(n_features), feats)
            best = _best_split(x[idx], s, rng.permutation(rest), min_samples_leaf,
                               regression)
        if best is None:
            continue
        f, t, _ = best
        go_left = x[idx, f] <= t
        li, ri = idx[go_left], idx[~go_left]
        feature[node], threshold[node] = f, t
        left[node], right[node] = new_node(li), new_node(ri)
        todo.append((left[node], li, depth + 1))
        todo.append((right[node], ri, depth + 1))
    return Tree(np.array(feature, np.int64), np.array(threshold, np.float64),
                np.array(left, np.int64), np.array(right, np.int64), np.stack(value))


class RandomForest:
    """Bootstrap-aggregated CART trees. `task`: "classification" (y: int classes 0..K-1)
    or "regression" (y: floats). `max_features`: an int, "sqrt" (classification's
    default), or None for all (regression's default)."""

    def __init__(self, n_trees: int = 50, task: str = "classification",
                 max_depth: int | None = None, min_samples_leaf: int = 1,
                 max_features: int | str | None = "auto", bootstrap: bool = True,
                 seed: int = 0) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose classification or regression")
        if n_trees < 1 or min_samples_leaf < 1:
            raise ValueError(f"need n_trees >= 1 and min_samples_leaf >= 1 (got {n_trees}, "
                             f"{min_samples_leaf})")
        self.n_trees, self.task, self.max_depth = n_trees, task, max_depth
        self.min_samples_leaf, self.bootstrap, self.seed = min_samples_leaf, bootstrap, seed
        self.max_features = max_features
        self.trees: list[Tree] = []
        self.n_classes = 0

    def _features_per_split(self, n: int) -> int:
        mf = self.max_features
        if mf == "auto":
            mf = "sqrt" if self.task == "classification" else None
        if mf is None:
            return n
        if mf == "sqrt":
            return max(1, int(math.sqrt(n)))
        if isinstance(mf, int) and mf >= 1:
            return min(mf, n)
        raise ValueError(f"max_features must be 'sqrt', None or an int >= 1, not {mf!r}")

    def fit_steps(self, x: np.ndarray, y: np.ndarray) -> Iterator[int]:
        """Grow the trees one by one, yielding how many are done (so a caller without
        threads, the browser, can let the page update in between)."""
        x = np.ascontiguousarray(x, np.float32)
        if x.ndim != 2 or len(x) != len(y) or len(x) < 2:
            raise ValueError(f"need x of shape (n >= 2, features) and n labels; got "
                             f"{x.shape} and {len(y)}")
        if self.task == "classification":
            y = np.asarray(y, np.int64).ravel()
            self.n_classes = int(y.max()) + 1
            stats = np.eye(self.n_classes)[y]
        else:
            stats = np.asarray(y, np.float64).reshape(-1, 1)
        rng = np.random.default_rng(self.seed)
        k = self._features_per_split(x.shape[1])
        self.trees = []
        for _ in range(self.n_trees):
            idx = rng.integers(0, len(x), len(x)) if self.bootstrap else np.arange(len(x))
            self.trees.append(grow_tree(x[idx], stats[idx], k, rng, self.max_depth,
                                        self.min_samples_leaf,
                                        self.task == "regression"))
            yield len(self.trees)

    def fit(self, x: np.ndarray, y: np.ndarray) -> RandomForest:
        for _ in self.fit_steps(x, y):
            pass
        return self

    def _mean_value(self, x: np.ndarray) -> np.ndarray:
        if not self.trees:
            raise RuntimeError("the forest is not trained yet: call fit(x, y) first")
        x = np.ascontiguousarray(x, np.float32)
        total = sum(t.value[t.apply(x)] for t in self.trees)
        return total / len(self.trees)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(n, classes) mean class frequencies over the trees."""
        if self.task != "classification":
            raise ValueError("predict_proba is for classification forests; use predict")
        return self._mean_value(x)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class labels (classification) or values (regression) for the rows of x."""
        v = self._mean_value(x)
        return v.argmax(axis=1) if self.task == "classification" else v[:, 0]

    def score(self, x: np.ndarray, y: np.ndarray) -> float:
        """Accuracy (classification) or mean squared error (regression)."""
        p = self.predict(x)
        if self.task == "classification":
            return float(np.mean(p == np.asarray(y).ravel()))
        return float(np.mean((p - np.asarray(y, np.float64).ravel()) ** 2))

    @property
    def nodes(self) -> int:
        return sum(len(t.feature) for t in self.trees)


__all__ = ["RandomForest", "Tree", "grow_tree"]

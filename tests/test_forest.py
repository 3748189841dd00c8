"""engine.forest: the NumPy random forest, against scikit-learn's on the same splits."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.tabular import split
from engine.data.toy import make_playground
from engine.forest import RandomForest, grow_tree

sklearn = pytest.importorskip("sklearn.ensemble")


def splits(kind: str, noise: float = 0.2, seed: int = 0):
    x, y = make_playground(kind, 500, noise, seed)
    return split(x, y, 0.5, seed)


@pytest.mark.parametrize("kind", ["circle", "xor", "gauss", "spiral"])
def test_classification_accuracy_matches_scikit_learn(kind):
    xtr, ytr, xte, yte = splits(kind)
    ours = RandomForest(50, seed=0).fit(xtr, ytr).score(xte, yte)
    theirs = sklearn.RandomForestClassifier(50, random_state=0).fit(xtr, ytr).score(xte, yte)
    print(f"{kind}: ours {ours:.3f}, scikit-learn {theirs:.3f}")
    assert abs(ours - theirs) <= 0.03, (ours, theirs)
    assert ours > 0.6  # all four are learnable by a forest


@pytest.mark.parametrize("kind", ["plane", "multigauss"])
def test_regression_error_matches_scikit_learn(kind):
    xtr, ytr, xte, yte = splits(kind, noise=0.05)
    ours = RandomForest(30, task="regression", seed=0).fit(xtr, ytr).score(xte, yte)
    sk = sklearn.RandomForestRegressor(30, random_state=0).fit(xtr, ytr)
    theirs = float(np.mean((sk.predict(xte) - yte) ** 2))
    print(f"{kind}: MSE ours {ours:.4f}, scikit-learn {theirs:.4f}")
    assert ours <= 1.15 * theirs and theirs <= 1.15 * ours
    assert ours < 0.5 * np.var(yte)  # far better than predicting the mean


def test_mnist_subset_accuracy_matches_scikit_learn():
    from webapp.playground_data import mnist_subset

    x, y, xt, yt = mnist_subset()
    x, y, xt, yt = x[:2000] / 255, y[:2000], xt[:500] / 255, yt[:500]
    ours = RandomForest(10, seed=0).fit(x, y).score(xt, yt)
    theirs = sklearn.RandomForestClassifier(10, random_state=0).fit(x, y).score(xt, yt)
    print(f"MNIST 2000/500, 10 trees: ours {ours:.3f}, scikit-learn {theirs:.3f}")
    assert abs(ours - theirs) <= 0.04 and ours > 0.8


def test_a_full_tree_fits_its_training_rows_and_limits_hold():
    xtr, ytr, _, _ = splits("spiral", noise=0.1)
    rng = np.random.default_rng(0)
    onehot = np.eye(2)[ytr]
    tree = grow_tree(xtr, onehot, 2, rng)
    assert np.all(tree.value[tree.apply(xtr)].argmax(1) == ytr)  # pure leaves
    shallow = grow_tree(xtr, onehot, 2, rng, max_depth=3)
    depth = {0: 0}
    for i, (left, right) in enumerate(zip(shallow.left, shallow.right, strict=True)):
        if left >= 0:
            depth[left] = depth[right] = depth[i] + 1
    assert max(depth.values()) <= 3
    big_leaves = grow_tree(xtr, onehot, 2, rng, min_samples_leaf=10)
    counts = np.bincount(big_leaves.apply(xtr))
    assert counts[counts > 0].min() >= 10


def test_probabilities_determinism_and_errors():
    xtr, ytr, xte, _ = splits("gauss")
    a = RandomForest(8, seed=3).fit(xtr, ytr)
    p = a.predict_proba(xte)
    assert p.shape == (len(xte), 3) and np.allclose(p.sum(1), 1)
    np.testing.assert_array_equal(p, RandomForest(8, seed=3).fit(xtr, ytr).predict_proba(xte))
    assert not np.array_equal(p, RandomForest(8, seed=4).fit(xtr, ytr).predict_proba(xte))
    assert list(RandomForest(4, seed=0).fit_steps(xtr, ytr)) == [1, 2, 3, 4]
    with pytest.raises(RuntimeError, match="not trained"):
        RandomForest().predict(xte)
    with pytest.raises(ValueError, match="unknown task"):
        RandomForest(task="ranking")
    with pytest.raises(ValueError, match="predict_proba is for classification"):
        RandomForest(2, task="regression").fit(xtr, ytr.astype(float)).predict_proba(xte)

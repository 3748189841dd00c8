"""Training helpers that decide what a shipped model learns from."""

from __future__ import annotations

import numpy as np
import pytest

from training import common


def test_holdout_takes_every_class_equally_even_from_class_sorted_data():
    y = np.repeat(np.arange(10), 50)  # stored class by class, like the CIFAR-10 folders
    x = np.arange(len(y)) * 10
    xv, yv, xt, yt = common.holdout(x, y, 100)
    assert np.bincount(yv).tolist() == [10] * 10
    assert np.bincount(yt).tolist() == [40] * 10
    assert len(np.intersect1d(xv, xt)) == 0 and len(xv) + len(xt) == len(x)
    np.testing.assert_array_equal(xv // 10, np.flatnonzero(np.isin(x, xv)))  # pairs kept
    assert np.array_equal(common.holdout(x, y, 100)[0], xv)  # the same split every time
    assert not np.array_equal(common.holdout(x, y, 100, seed=1)[0], xv)


def test_holdout_refuses_an_uneven_split():
    with pytest.raises(ValueError, match="multiple of 10"):
        common.holdout(np.zeros(100), np.repeat(np.arange(10), 10), 25)


def test_shuffled_batches_cover_the_data_once_per_epoch_in_a_new_order():
    x, y = np.arange(50) * 10, np.arange(50)
    batches = common.shuffled_batches(x, y, 16, np.random.default_rng(0), lambda b: b + 1)
    epochs = [list(batches()) for _ in range(2)]
    assert [len(b) for b, _ in epochs[0]] == [16, 16, 16, 2]
    for epoch in epochs:
        xs, ys = np.concatenate([b for b, _ in epoch]), np.concatenate([t for _, t in epoch])
        assert sorted(ys.tolist()) == list(range(50))
        np.testing.assert_array_equal(xs, ys * 10 + 1)  # pairs kept, augment applied
    assert not np.array_equal(epochs[0][0][1], epochs[1][0][1])

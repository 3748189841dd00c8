"""fit's policies as objects: EarlyStopping, Cancel, DivergenceGuard on its own."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import engine
from engine import nn, optim
from engine.train import Cancel, EarlyStopping, History, TrainInfo, fit
from engine.train.guard import DivergenceGuard

F = nn.functional


def _blobs(n: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[0, 0], [3, 0], [0, 3]], np.float32)
    x = (rng.standard_normal((n, 2)) * 0.6).astype(np.float32) + centers[y]
    return x, y.astype(np.int64)


def _model() -> nn.Module:
    engine.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))


class _Scripted:
    """Replaces the epoch's val_loss with a scripted sequence (as if validation ran)."""

    def __init__(self, values):
        self.values = list(values)

    def on_epoch_end(self, info):
        info.logs["val_loss"] = self.values[info.epoch]


def test_early_stopping_stops_after_patience_epochs_without_improvement():
    model = _model()
    stop = EarlyStopping("val_loss", patience=2)
    hist = fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.1), _blobs(),
               epochs=10, batch_size=64, progress=False,
               callbacks=[_Scripted([1.0, 0.5, 0.6, 0.55, 0.7, 0.1, 0.1, 0.1, 0.1, 0.1]),
                          stop])
    # best at epoch 2 (0.5); epochs 3, 4, 5 do not improve: stop after the third of them
    assert hist.epochs == 5
    assert hist.stopped_reason.startswith("early stopping: val_loss did not improve for 3")
    assert "best 0.5 at epoch 2" in hist.stopped_reason


def test_early_stopping_restores_the_best_state_and_checks_the_monitor():
    model = _model()
    seen = {}

    class Remember:
        def on_epoch_end(self, info):
            seen[info.epoch] = info.model.state_dict()

    fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.5), _blobs(),
        epochs=4, batch_size=32, progress=False,
        callbacks=[_Scripted([0.9, 0.2, 0.8, 0.9]), Remember(),
                   EarlyStopping("val_loss", patience=5, restore_best=True)])
    best = seen[1]
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, best[k])
    assert not np.array_equal(seen[3]["0.weight"], best["0.weight"])  # it did move on
    with pytest.raises(KeyError, match="no 'val_accuracy' in the epoch logs"):
        fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.1), _blobs(),
            epochs=1, progress=False, callbacks=[EarlyStopping("val_accuracy")])
    with pytest.raises(ValueError, match="mode must be"):
        EarlyStopping(mode="up")
    assert EarlyStopping("val_accuracy").sign == -1.0  # accuracies are maximised


def test_cancel_stops_after_the_step_that_sees_the_flag():
    model = _model()
    flag = threading.Event()

    def set_at_step_3(info):
        if info.event == "on_step" and info.step == 3:
            flag.set()

    hist = fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.1), _blobs(),
               epochs=5, batch_size=16, progress=False,
               callbacks=[set_at_step_3, Cancel(flag.is_set, "the tab was closed")])
    assert len(hist.steps) == 4 and hist.epochs == 0
    assert hist.stopped_reason == "the tab was closed"


def test_divergence_guard_restores_the_snapshot_or_the_host_copy():
    model = _model()
    history = History.for_run({}, False)
    opt = optim.SGD(model.parameters(), lr=0.1)
    info = TrainInfo("on_step", model, opt, history, 1, 1, "cpu")
    guard = DivergenceGuard(model, history)
    start = model.state_dict()
    assert guard.loss_ok(1.0, info)  # snapshot of the current weights (step 0)
    with engine.no_grad():
        for p in model.parameters():
            p.copy_(p * 2.0)
    info.step = 1
    assert not guard.loss_ok(float("nan"), info)
    assert history.diverged and "the loss is nan at epoch 1, step 2" in history.stopped_reason
    assert "restored to those of step 1" in history.stopped_reason
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, start[k])
    # poisoned weights at an epoch end: the host copy of the epoch start comes back
    with engine.no_grad():
        model[0].weight.copy_(np.full(model[0].weight.shape, np.inf))
    guard.snap.take(guard.tensors, 5)  # a snapshot that is not finite is never restored
    assert not guard.epoch_ok(info, 6)
    assert "start of epoch 1 (step 1)" in history.stopped_reason
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, start[k])
    with engine.no_grad():
        model[0].bias.copy_(np.nan)
    with pytest.raises(ValueError, match="contain NaN or inf before training"):
        DivergenceGuard(model, history)


def test_evaluating_is_eval_and_no_grad_and_restores_the_mode_even_on_errors():
    from engine.nn.utils import evaluating

    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    with evaluating(model):
        assert not model.training and not engine.is_grad_enabled()
        assert not model(engine.Tensor(np.ones((1, 2)))).requires_grad
    assert model.training and engine.is_grad_enabled()
    with pytest.raises(RuntimeError, match="boom"), evaluating(model):
        raise RuntimeError("boom")
    assert model.training
    model.eval()
    with evaluating(model):
        pass
    assert not model.training  # an eval-mode model stays in eval mode

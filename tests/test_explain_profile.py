"""engine.explain, engine.profile and engine.data.toy: what the web app draws, checked here."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import engine
from engine import explain, nn
from engine.data.toy import KINDS, make_toy
from engine.profile import profile, profile_train_step


def small_cnn() -> nn.Sequential:
    engine.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def test_probabilities_are_a_softmax_per_row():
    m = small_cnn()
    x = np.random.default_rng(0).random((5, 1, 8, 8)).astype(np.float32)
    p = explain.probabilities(m, x, batch_size=2)
    assert p.shape == (5, 3)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
    with engine.no_grad():
        logits = m(engine.Tensor(x)).numpy()
    np.testing.assert_array_equal(p.argmax(1), logits.argmax(1))


def test_layer_outputs_follow_the_sequential():
    m = small_cnn()
    outs = explain.layer_outputs(m, np.zeros((1, 1, 8, 8), np.float32))
    assert [n for n, _ in outs] == ["0: Conv2d", "1: ReLU", "2: MaxPool2d", "3: Flatten",
                                    "4: Linear"]
    assert outs[2][1].shape == (1, 4, 4, 4)
    assert m.training  # its mode is restored after


def test_read_layers_is_probabilities_and_the_kept_outputs_from_one_pass():
    m = small_cnn()
    x = np.random.default_rng(1).random((2, 1, 8, 8)).astype(np.float32)
    probs, outs = explain.read_layers(m, x, lambda name, layer, out: out.ndim == 4)
    np.testing.assert_allclose(probs, explain.probabilities(m, x), rtol=1e-6)
    every = dict(explain.layer_outputs(m, x))
    assert [n for n, _ in outs] == ["0: Conv2d", "1: ReLU", "2: MaxPool2d"]
    for name, out in outs:
        np.testing.assert_array_equal(out, every[name])
    assert m.training


def test_read_layers_on_the_gpu_matches_the_cpu():
    """On a GPU the outputs come back in one readback (a flat copy of them all), which
    the host splits again: each piece must be its own layer's output."""
    from tests.gpu_helpers import gpu_backend_or_skip

    gpu_backend_or_skip()
    m = small_cnn()
    x = np.random.default_rng(2).random((2, 1, 8, 8)).astype(np.float32)
    keep = lambda name, layer, out: name in ("1", "2")  # noqa: E731
    probs, outs = explain.read_layers(m, x, keep)
    gprobs, gouts = explain.read_layers(m.to("gpu"), x, keep)
    np.testing.assert_allclose(gprobs, probs, rtol=1e-4, atol=1e-6)
    assert [n for n, _ in gouts] == [n for n, _ in outs] == ["1: ReLU", "2: MaxPool2d"]
    for (_, g), (_, c) in zip(gouts, outs):
        assert g.shape == c.shape
        np.testing.assert_allclose(g, c, rtol=1e-4, atol=1e-5)


def test_activations_run_in_eval_mode_and_restore_the_mode():
    m = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.9), nn.ReLU(), nn.Linear(8, 2))
    x = np.ones((4, 3), np.float32)
    first = explain.activations(m, x)[1]
    assert m.training  # restored
    np.testing.assert_array_equal(explain.activations(m, x)[1], first)  # dropout was off
    m.eval()
    explain.activations(m, x)
    assert not m.training


def test_occlusion_finds_the_pixels_that_matter():
    """A 'model' whose class-0 score is the brightness of the top-left corner."""

    class Corner(nn.Module):
        def forward(self, x):
            s = x[:, :, :4, :4].sum(axis=(1, 2, 3)) * 10.0
            return engine.stack([s, s * 0.0], 1)

    img = np.zeros((1, 16, 16), np.float32)
    img[:, :4, :4] = 1.0
    heat = explain.occlusion_saliency(Corner(), img, 0, patch=4, stride=4, fill=0.0)
    assert heat.shape == (16, 16)
    assert heat[:4, :4].mean() > 0.1 and abs(heat[8:, 8:]).max() < 1e-6


def test_gradient_saliency_shape_and_sign():
    m = small_cnn()
    g = explain.gradient_saliency(m, np.ones((1, 8, 8), np.float32), 1)
    assert g.shape == (8, 8) and (g >= 0).all() and g.max() > 0
    assert all(p.grad is None for p in m.parameters())


def test_unit_stats_sees_dead_relus_and_saturated_tanh():
    lin = nn.Linear(2, 4)
    nn.init.zeros_(lin.weight)
    nn.init.constant_(lin.bias, -1.0)  # every ReLU unit is off for every input
    sat = nn.Linear(4, 3)
    nn.init.constant_(sat.bias, 5.0)  # tanh(5) = 0.9999: stuck at the end
    model = nn.Sequential(lin, nn.ReLU(), sat, nn.Tanh())
    x = np.abs(np.random.default_rng(0).normal(size=(64, 2))).astype(np.float32) + 0.5
    rows = explain.unit_stats(model, x)
    assert [r["kind"] for r in rows] == ["ReLU", "Tanh"]
    assert rows[0]["dead"] == 1.0 and rows[1]["saturated"] == 1.0
    assert rows[0]["units"] == 4 and rows[1]["units"] == 3


def test_pca_2d_keeps_the_main_direction():
    rng = np.random.default_rng(0)
    t = rng.normal(size=200)
    pts = np.stack([t, 2 * t, rng.normal(scale=0.01, size=200), -t], 1)
    xy = explain.pca_2d(pts)
    assert xy.shape == (200, 2)
    assert abs(np.corrcoef(xy[:, 0], t)[0, 1]) > 0.999


@pytest.mark.parametrize("kind", KINDS)
def test_toy_data(kind):
    x, y = make_toy(kind, 300, seed=3)
    assert x.shape == (300, 2) and x.dtype == np.float32 and set(np.unique(y)) == {0, 1}
    assert np.abs(x).max() < 2.5
    x2, _ = make_toy(kind, 300, seed=3)
    np.testing.assert_array_equal(x, x2)
    with pytest.raises(ValueError, match="spirals"):
        make_toy("donuts")


def test_profile_counts_primitives_of_a_training_step():
    m = small_cnn()
    opt = engine.optim.Adam(m.parameters())
    x = engine.Tensor(np.ones((2, 1, 8, 8), np.float32))
    with profile("cpu") as prof:
        loss = nn.functional.cross_entropy(m(x), engine.Tensor(np.array([0, 2])))
        loss.backward()
        opt.step()
    names = {name for name, _, _ in prof.table()}
    assert {"conv2d", "matmul", "adam_step_"} <= names
    # the weight gradient: alone, or beside the input's (the CPU's conv2d_grads)
    assert names & {"conv2d_grad_weight", "conv2d_grads"}
    assert prof.calls["adam_step_"] == len(list(m.parameters()))
    assert 0 < prof.total <= prof.wall
    # outside the block, and on other threads, nothing is recorded
    before = dict(prof.calls)
    m(x)
    assert prof.calls == before


def test_profile_train_step_times_one_step_after_a_warm_up():
    m = small_cnn()
    x, y = np.ones((2, 1, 8, 8), np.float32), np.array([0, 2])
    before = [p.numpy().copy() for p in m.parameters()]
    prof = profile_train_step(m, x, y, "cpu")
    assert prof.calls["adam_step_"] == len(before)  # one step inside the block, not two
    assert prof.calls["conv2d"] == 1 and 0 < prof.total <= prof.wall
    after = [p.numpy() for p in m.parameters()]
    assert any(not np.array_equal(a, b) for a, b in zip(after, before))  # it did train
    assert m.training


def test_profile_ignores_other_threads():
    m = small_cnn()
    x = engine.Tensor(np.ones((1, 1, 8, 8), np.float32))
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            with engine.no_grad():
                m(x)

    t = threading.Thread(target=busy)
    with profile("cpu") as prof:
        t.start()
        engine.Tensor(np.ones(3)).exp()
        stop.set()
        t.join()
    assert set(prof.calls) <= {"unary", "from_numpy", "synchronize"}, prof.calls

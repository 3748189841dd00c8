"""engine.mlp: the Playground's factory (features, MLP, loss with penalties, optimizer) and
its per-unit snapshot, checked against hand computations and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine import mlp, nn, optim

X = np.random.default_rng(0).uniform(-6, 6, (64, 2)).astype(np.float32)


def test_features_are_the_named_columns_standardised_on_the_training_rows():
    keys = ("x1", "x2", "x1sq", "x2sq", "x1x2", "sinx1", "sinx2")
    fmap = mlp.FeatureMap.fit(keys, X)
    a, b = X[:, 0], X[:, 1]
    raw = np.stack([a, b, a * a, b * b, a * b, np.sin(a), np.sin(b)], 1)
    np.testing.assert_allclose(fmap(X), (raw - raw.mean(0)) / raw.std(0), rtol=1e-4,
                               atol=1e-5)
    assert fmap.size == 7 and fmap.labels() == ["x₁", "x₂", "x₁²", "x₂²", "x₁x₂", "sin x₁",
                                                 "sin x₂"]
    other = X[:5] + 1  # rows it was not fitted on use the training rows' statistics
    np.testing.assert_allclose(fmap(other)[:, 0], (other[:, 0] - a.mean()) / a.std(),
                               rtol=1e-4)


def test_raw_columns_scaled_without_standardising_and_bad_inputs_refused():
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    fmap = mlp.FeatureMap.fit((), pixels, scale=1 / 255, standardize=False)
    np.testing.assert_allclose(fmap(pixels), pixels / 255, rtol=1e-6)
    with pytest.raises(ValueError, match="need 2-D inputs"):
        mlp.FeatureMap.fit(("x1",), pixels)


@pytest.mark.parametrize(("change", "match"), [
    ({"activation": "swish"}, "unknown activation"), ({"reg": "magic"}, "unknown reg"),
    ({"features": ("x3",)}, "unknown input feature"), ({"hidden": ()}, "hidden layer"),
    ({"lr": 0.0}, "positive"), ({"optimizer": "LBFGS"}, "unknown optimizer")])
def test_recipes_refuse_unknown_settings(change, match):
    with pytest.raises(ValueError, match=match):
        mlp.Recipe(**change)


def test_recipe_round_trips_and_batch_gd_uses_every_row():
    r = mlp.Recipe(hidden=(4, 3), reg="L1", optimizer="batch GD", batch_size=8)
    assert mlp.Recipe.from_dict(r.to_dict()) == r
    assert r.batch_for(100) == 100 and r.replace(optimizer="SGD").batch_for(100) == 8


@pytest.mark.parametrize("reg", mlp.REGS)
def test_layers_follow_the_regularisation(reg):
    model = mlp.build_mlp(mlp.Recipe(hidden=(5, 4), reg=reg, activation="tanh"), 3, 2)
    kinds = [type(m).__name__ for m in model]
    block = ["Linear"] + (["BatchNorm1d"] if "batch norm" in reg else []) + ["Tanh"] + \
        (["Dropout"] if "dropout" in reg else [])
    assert kinds == block * 2 + ["Linear"]
    assert model(engine.Tensor(np.zeros((6, 3), np.float32))).shape == (6, 2)


def test_initialisations():
    big = mlp.Recipe(hidden=(400,), init="constant")
    model = mlp.build_mlp(big, 300, 2)
    w = model[0].weight.numpy()
    assert np.all(w == mlp.CONSTANT_INIT) and np.all(model[0].bias.numpy() == 0)
    engine.manual_seed(1)
    he = mlp.build_mlp(big.replace(init="He"), 300, 2)[0].weight.numpy()
    assert abs(he.std() - np.sqrt(2 / 300)) < 0.05 * np.sqrt(2 / 300)
    glorot = mlp.build_mlp(big.replace(init="Glorot"), 300, 2)[0].weight.numpy()
    bound = np.sqrt(6 / (300 + 400))
    assert glorot.max() <= bound and glorot.min() >= -bound
    assert abs(glorot.std() - bound / np.sqrt(3)) < 0.05 * bound


@pytest.mark.parametrize("reg", ["none", "L1", "L2"])
def test_loss_adds_the_penalty_over_the_linear_weights(reg):
    r = mlp.Recipe(hidden=(4,), reg=reg, penalty=0.01)
    model = mlp.build_mlp(r, 2, 3)
    loss = mlp.make_loss(r, model)
    x = engine.Tensor(X[:8])
    y = engine.Tensor(np.arange(8) % 3)
    base = nn.functional.cross_entropy(model(x), y).item()
    ws = [model[0].weight.numpy(), model[2].weight.numpy()]
    pen = {"none": 0.0, "L1": sum(np.abs(w).sum() for w in ws),
           "L2": sum((w * w).sum() for w in ws)}[reg]
    assert loss(model(x), y).item() == pytest.approx(base + 0.01 * pen, rel=1e-5)


def test_regression_loss_is_mse_and_targets_are_columns():
    r = mlp.Recipe(hidden=(4,), task="regression")
    y = np.array([0.5, -1.0], np.float32)
    model = mlp.build_mlp(r, 2, 1)
    out = model(engine.Tensor(X[:2]))
    t = mlp.targets(y, "regression")
    assert t.shape == (2, 1)
    want = float(((out.numpy() - t) ** 2).mean())
    assert mlp.make_loss(r, model)(out, engine.Tensor(t)).item() == pytest.approx(want)


def test_the_factory_matches_pytorch():
    """The same weights and batch give the same loss and gradients in PyTorch."""
    torch = pytest.importorskip("torch")
    r = mlp.Recipe(hidden=(6, 5), activation="leaky ReLU", reg="L2", penalty=0.003)
    engine.manual_seed(3)
    built = mlp.build(r, X, np.arange(64) % 2)
    model = built.model
    tm = torch.nn.Sequential(torch.nn.Linear(2, 6), torch.nn.LeakyReLU(mlp.LEAKY_SLOPE),
                             torch.nn.Linear(6, 5), torch.nn.LeakyReLU(mlp.LEAKY_SLOPE),
                             torch.nn.Linear(5, 2))
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    x, y = built.features(X), np.arange(64) % 2
    loss = built.loss(model(engine.Tensor(x)), engine.Tensor(y))
    loss.backward()
    out = tm(torch.from_numpy(x))
    tl = torch.nn.functional.cross_entropy(out, torch.from_numpy(y)) + 0.003 * sum(
        (m.weight ** 2).sum() for m in tm if isinstance(m, torch.nn.Linear))
    tl.backward()
    assert loss.item() == pytest.approx(tl.item(), rel=1e-5)
    np.testing.assert_allclose(model[0].weight.grad.numpy(), tm[0].weight.grad.numpy(),
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(("name", "cls"), [("batch GD", optim.SGD), ("momentum", optim.SGD),
                                           ("AdaGrad", optim.Adagrad),
                                           ("RMSProp", optim.RMSprop), ("Adam", optim.Adam)])
def test_optimizers(name, cls):
    model = mlp.build_mlp(mlp.Recipe(), 2, 2)
    opt = mlp.make_optimizer(mlp.Recipe(optimizer=name, lr=0.05), model.parameters())
    assert isinstance(opt, cls) and opt.param_groups[0]["lr"] == 0.05
    if cls is optim.SGD:
        assert opt.param_groups[0]["momentum"] == (0.9 if name == "momentum" else 0.0)


def test_snapshot_reads_dead_and_saturated_units_and_the_grid():
    r = mlp.Recipe(hidden=(3,), activation="ReLU")
    model = mlp.build_mlp(r, 2, 2)
    w = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]], np.float32)
    model[0].weight.data = model[0].weight.backend.from_numpy(w)
    model[0].bias.data = model[0].bias.backend.from_numpy(np.array([0, 0, -1], np.float32))
    probe = np.array([[1, 0], [2, 1], [3, -1]], np.float32)  # x1 > 0: unit 2 and 3 never fire
    grid = np.array([[-1, 0], [1, 0]], np.float32)
    snap = mlp.snapshot(model, probe, grid, "classification")
    (layer,) = snap.layers
    assert layer.dead.tolist() == [False, True, True] and snap.dead == pytest.approx(2 / 3)
    np.testing.assert_allclose(layer.low, [1, 0, 0])
    np.testing.assert_allclose(layer.high, [3, 0, 0])
    np.testing.assert_allclose(layer.grid, [[0, 1, 0], [1, 0, 0]])
    assert snap.output.shape == (2, 2) and np.allclose(snap.output.sum(1), 1)
    assert [w.shape for w in snap.weights] == [(3, 2), (2, 3)]
    tanh = mlp.build_mlp(r.replace(activation="tanh"), 2, 2)
    tanh[0].weight.data = tanh[0].weight.backend.from_numpy(np.full((3, 2), 50, np.float32))
    assert mlp.snapshot(tanh, probe, None, "classification").saturated == 1.0

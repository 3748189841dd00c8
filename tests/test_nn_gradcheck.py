"""Finite-difference gradient checks (float64) for every nn layer and functional op."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine import Tensor, nn
from engine.nn import functional as F
from tests.gradcheck import gradcheck

rng = np.random.default_rng(0)


def randn(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def module_gradcheck(module: nn.Module, *inputs: np.ndarray, seed: int | None = None,
                     **tol: float) -> None:
    """gradcheck of module(*inputs) with respect to the inputs AND every parameter.

    Each parameter attribute is temporarily replaced by gradcheck's input tensor, so the
    module's own forward (reading `self.weight`, ...) is what gets differentiated.
    """
    module.double()
    slots = [(mod, name) for _, mod in module.named_modules()
             for name, p in mod._parameters.items() if p is not None]
    values = [getattr(mod, name).numpy() for mod, name in slots]
    n = len(inputs)

    def fn(*ts: Tensor) -> Tensor:
        if seed is not None:
            engine.manual_seed(seed)
        for (mod, name), t in zip(slots, ts[n:]):
            object.__setattr__(mod, name, t)
        try:
            return module(*ts[:n])
        finally:
            for mod, name in slots:
                object.__setattr__(mod, name, mod._parameters[name])

    gradcheck(fn, list(inputs) + values, **tol)


# -- linear ----------------------------------------------------------------------------

def test_linear_functional_2d_and_3d():
    gradcheck(lambda x, w, b: F.linear(x, w, b), [randn(3, 4), randn(2, 4), randn(2)])
    gradcheck(lambda x, w: F.linear(x, w), [randn(2, 3, 4), randn(5, 4)])


def test_linear_module():
    module_gradcheck(nn.Linear(4, 3), randn(2, 4))
    module_gradcheck(nn.Linear(4, 3, bias=False), randn(2, 4))


def test_maxout():
    m = nn.Maxout(3, 2, pieces=3)
    module_gradcheck(m, randn(4, 3))
    assert m(Tensor(randn(4, 3), dtype="float64")).shape == (4, 2)


# -- convolution -------------------------------------------------------------------------

CONV_CASES = [
    # (C_in, C_out, k, stride, padding, dilation, groups, bias)
    (2, 3, 3, 1, 0, 1, 1, True),
    (2, 3, 3, 2, 1, 1, 1, True),
    (2, 2, 2, 1, 2, 2, 1, False),
    (4, 4, 3, 2, 1, 1, 2, True),
    (3, 3, 3, 1, 1, 1, 3, False),  # depthwise
    (2, 2, (2, 3), (2, 1), (1, 0), (1, 2), 1, True),
    (2, 2, 2, 1, "same", 1, 1, True),  # even kernel: asymmetric 'same' padding
    (2, 2, 3, 1, "same", 2, 1, True),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_functional(case):
    cin, cout, k, s, p, d, g, bias = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x, w, b = randn(2, cin, 5, 5), randn(cout, cin // g, kh, kw), randn(cout)
    if bias:
        gradcheck(lambda x, w, b: F.conv2d(x, w, b, s, p, d, g), [x, w, b])
    else:
        gradcheck(lambda x, w: F.conv2d(x, w, None, s, p, d, g), [x, w])


def test_conv2d_module_grouped():
    module_gradcheck(nn.Conv2d(4, 2, 3, stride=2, padding=1, dilation=1, groups=2),
                     randn(1, 4, 5, 4))


def test_conv2d_same_keeps_size():
    y = nn.Conv2d(2, 3, 4, padding="same")(Tensor(randn(1, 2, 6, 5)))
    assert y.shape == (1, 3, 6, 5)


# -- pooling ---------------------------------------------------------------------------

@pytest.mark.parametrize("k,s,p,d,ceil", [(2, 2, 0, 1, False), (3, 2, 1, 1, False),
                                          (2, 1, 1, 2, False), (3, 2, 1, 1, True),
                                          ((3, 2), (2, 1), (1, 0), 1, False)])
def test_max_pool2d(k, s, p, d, ceil):
    gradcheck(lambda x: F.max_pool2d(x, k, s, p, d, ceil), [randn(2, 2, 6, 5)])


@pytest.mark.parametrize("include", [True, False])
@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_avg_pool2d(k, s, p, include):
    gradcheck(lambda x: F.avg_pool2d(x, k, s, p, count_include_pad=include),
              [randn(2, 2, 5, 6)])


@pytest.mark.parametrize("size,out", [((4, 6), (2, 3)), ((5, 7), (3, 2)), ((5, 4), (None, 3)),
                                      ((3, 3), 1), ((4, 4), (4, 4))])
def test_adaptive_avg_pool2d(size, out):
    gradcheck(lambda x: F.adaptive_avg_pool2d(x, out), [randn(1, 2, *size)])
    gradcheck(lambda x: nn.AdaptiveAvgPool2d(out)(x), [randn(1, 2, *size)])


def test_pool_modules():
    gradcheck(lambda x: nn.MaxPool2d(2)(x), [randn(1, 2, 4, 4)])
    gradcheck(lambda x: nn.AvgPool2d(3, 2, 1, count_include_pad=False)(x), [randn(1, 2, 5, 5)])


# -- batch norm --------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 3)])
def test_batchnorm1d_train(shape):
    m = nn.BatchNorm1d(3)
    m.weight.data = Tensor(randn(3)).data
    m.bias.data = Tensor(randn(3)).data
    module_gradcheck(m, randn(*shape))


def test_batchnorm2d_train_and_eval():
    m = nn.BatchNorm2d(2)
    m.weight.data = Tensor(randn(2)).data
    module_gradcheck(m, randn(3, 2, 3, 2))
    m.eval()
    module_gradcheck(m, randn(3, 2, 3, 2))


def test_batchnorm_without_affine_or_tracking():
    module_gradcheck(nn.BatchNorm2d(2, affine=False), randn(2, 2, 3, 3))
    m = nn.BatchNorm1d(3, track_running_stats=False).eval()  # batch stats even in eval
    module_gradcheck(m, randn(4, 3))


def test_batch_norm_functional_no_weight():
    gradcheck(lambda x: F.batch_norm(x, None, None, training=True), [randn(4, 2, 2)])


# -- dropout, activations, shape ---------------------------------------------------------

def test_dropout_fixed_seed():
    m = nn.Dropout(0.4)
    module_gradcheck(m, randn(4, 5), seed=3)
    engine.manual_seed(3)
    y = m(Tensor(np.ones((200, 50)))).numpy()
    kept = y[y != 0]
    np.testing.assert_allclose(kept, 1 / 0.6, rtol=1e-6)
    assert 0.3 < (y == 0).mean() < 0.5
    m.eval()
    x = Tensor(randn(3, 3))
    assert m(x) is x


ACTIVATIONS = [
    F.relu, F.tanh, F.sigmoid, F.silu, F.softplus,
    lambda x: F.leaky_relu(x, 0.2), lambda x: F.elu(x, 1.3), F.gelu,
    lambda x: F.gelu(x, "tanh"), lambda x: F.softmax(x, 1), lambda x: F.log_softmax(x, 0),
    nn.ReLU(), nn.LeakyReLU(), nn.Tanh(), nn.Sigmoid(), nn.ELU(), nn.GELU(), nn.SiLU(),
    nn.Softplus(), nn.Softmax(), nn.LogSoftmax(dim=1),
]


@pytest.mark.parametrize("fn", ACTIVATIONS)
def test_activations(fn):
    gradcheck(fn, [randn(3, 4) * 2])


def test_elu_no_nan_for_large_inputs():
    x = Tensor(np.array([1000.0, -1000.0]), requires_grad=True)
    F.elu(x).sum().backward()
    assert np.isfinite(x.grad.numpy()).all()


def test_flatten_unflatten_pad():
    gradcheck(lambda x: nn.Flatten()(x), [randn(2, 3, 2)])
    gradcheck(lambda x: nn.Unflatten(1, (2, 3))(x), [randn(2, 6)])
    gradcheck(lambda x: F.pad(x, (1, 2, 0, 1), value=0.5), [randn(1, 2, 3)])


# -- embedding -------------------------------------------------------------------------

def test_embedding():
    idx = np.array([[0, 3, 3], [1, 0, 2]])
    gradcheck(lambda w: F.embedding(idx, w), [randn(4, 3)])
    gradcheck(lambda w: F.embedding(Tensor(idx), w), [randn(4, 3)])

    class Lookup(nn.Module):  # indices are not differentiable: close over them
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(4, 3)

        def forward(self) -> Tensor:
            return self.emb(idx)

    module_gradcheck(Lookup())


def test_embedding_padding_idx_gets_no_gradient():
    m = nn.Embedding(5, 2, padding_idx=1)
    assert np.all(m.weight.numpy()[1] == 0)
    m(np.array([1, 2, 1])).sum().backward()
    g = m.weight.grad.numpy()
    assert np.all(g[1] == 0) and np.all(g[2] == 1)


# -- losses ------------------------------------------------------------------------------

LABELS = np.array([0, 2, 1, 2])


@pytest.mark.parametrize("kw", [{}, {"label_smoothing": 0.2}, {"reduction": "sum"},
                                {"reduction": "none"}, {"weight": np.array([0.5, 2.0, 1.0])},
                                {"weight": np.array([0.5, 2.0, 1.0]), "label_smoothing": 0.1}])
def test_cross_entropy(kw):
    gradcheck(lambda z: F.cross_entropy(z, LABELS, **kw), [randn(4, 3)])


def test_cross_entropy_spatial_and_nll():
    labels = rng.integers(0, 3, (2, 2, 2))
    gradcheck(lambda z: F.cross_entropy(z, labels, label_smoothing=0.1), [randn(2, 3, 2, 2)])
    gradcheck(lambda z: F.nll_loss(F.log_softmax(z, 1), Tensor(LABELS)), [randn(4, 3)])


def test_cross_entropy_is_stable_for_huge_logits():
    z = Tensor(np.array([[1e4, 0.0, -1e4]]), requires_grad=True)
    loss = F.cross_entropy(z, np.array([1]))
    loss.backward()
    assert np.isclose(loss.item(), 1e4)
    assert np.isfinite(z.grad.numpy()).all()


@pytest.mark.parametrize("kw", [{}, {"pos_weight": np.array([2.0, 0.5, 1.0])},
                                {"weight": np.array([1.0, 0.0, 3.0]), "reduction": "sum"}])
def test_bce_with_logits(kw):
    y = rng.random((4, 3))
    gradcheck(lambda x: F.binary_cross_entropy_with_logits(x, y, **kw), [randn(4, 3) * 3])


def test_bce_with_logits_gradient_at_zero_and_extremes():
    x = Tensor(np.array([0.0, 0.0, 500.0, -500.0]), requires_grad=True, dtype="float64")
    y = np.array([1.0, 0.0, 0.0, 1.0])
    loss = F.binary_cross_entropy_with_logits(x, y, reduction="sum")
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), [-0.5, 0.5, 1.0, -1.0])
    np.testing.assert_allclose(loss.item(), 2 * np.log(2) + 1000)


def test_regression_losses_and_penalties():
    t = randn(3, 2)
    gradcheck(lambda x: F.mse_loss(x, t), [randn(3, 2)])
    gradcheck(lambda x: F.l1_loss(x, t, reduction="sum"), [randn(3, 2)])
    gradcheck(lambda a, b: F.l1_penalty([a, b]) + F.l2_penalty([a, b]),
              [randn(2, 2) + 3, randn(3) - 3])
    a = Tensor(np.array([1.0, -2.0]))
    assert F.l2_penalty([a]).item() == 5.0 and F.l1_penalty(a).item() == 3.0


def test_small_cnn_end_to_end():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3))
    labels = np.array([0, 2])
    model.double()

    def loss(x: Tensor) -> Tensor:
        return F.cross_entropy(model(x), labels)

    gradcheck(loss, [randn(2, 1, 4, 4)])

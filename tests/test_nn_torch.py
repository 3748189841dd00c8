"""nn layers and losses agree with PyTorch (forward and backward) on random float32 input."""

from __future__ import annotations

import numpy as np
import pytest

from engine import Tensor, nn
from engine.nn import functional as F

torch = pytest.importorskip("torch")

rng = np.random.default_rng(1)
TOL = {"rtol": 1e-4, "atol": 1e-5}


def randn(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def close(a, b, **tol) -> None:
    a = a.numpy() if isinstance(a, Tensor) else a
    b = b.detach().numpy() if hasattr(b, "detach") else b
    np.testing.assert_allclose(a, b, **{**TOL, **tol})


def copy_to_torch(ours: nn.Module, theirs: torch.nn.Module) -> None:
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})


def run_both(ours: nn.Module, theirs: torch.nn.Module, x: np.ndarray,
             upstream: np.ndarray | None = None) -> tuple[Tensor, Tensor, torch.Tensor]:
    """Forward and backward through both with the same upstream gradient; returns
    (our output, our input grad tensor, torch input)."""
    xe = Tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    ye, yt = ours(xe), theirs(xt)
    g = rng.standard_normal(ye.shape).astype(np.float32) if upstream is None else upstream
    (ye * Tensor(g)).sum().backward()
    (yt * torch.from_numpy(g)).sum().backward()
    close(ye, yt)
    close(xe.grad, xt.grad)
    return ye, xe, xt


def grads_match(ours: nn.Module, theirs: torch.nn.Module, **tol) -> None:
    tp = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        close(p.grad, tp[name].grad, **tol)


# -- linear and conv --------------------------------------------------------------------

def test_linear():
    ours, theirs = nn.Linear(7, 5), torch.nn.Linear(7, 5)
    copy_to_torch(ours, theirs)
    run_both(ours, theirs, randn(4, 7))
    grads_match(ours, theirs)
    # and the other way: torch weights into the engine
    theirs2 = torch.nn.Linear(7, 5)
    ours.load_state_dict(theirs2.state_dict())
    close(ours(Tensor(np.ones((1, 7), np.float32))), theirs2(torch.ones(1, 7)))


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("cfg", [
    dict(in_channels=3, out_channels=4, kernel_size=3),
    dict(in_channels=3, out_channels=6, kernel_size=3, stride=2, padding=1),
    dict(in_channels=4, out_channels=6, kernel_size=3, padding=2, dilation=2, groups=2),
    dict(in_channels=4, out_channels=4, kernel_size=(3, 5), stride=(2, 1), padding=(1, 2),
         groups=4, bias=False),
    dict(in_channels=2, out_channels=3, kernel_size=4, padding="same"),
    dict(in_channels=2, out_channels=3, kernel_size=5, stride=3, padding="valid"),
])
def test_conv2d(cfg):
    ours, theirs = nn.Conv2d(**cfg), torch.nn.Conv2d(**cfg)
    copy_to_torch(ours, theirs)
    run_both(ours, theirs, randn(2, cfg["in_channels"], 9, 8))
    grads_match(ours, theirs, rtol=1e-4, atol=1e-4)


def test_default_init_matches_torch_distribution():
    # PyTorch: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for Linear and Conv2d
    conv = nn.Conv2d(8, 64, 3)
    bound = 1 / np.sqrt(8 * 9)
    w = conv.weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.05 * bound
    assert np.abs(conv.bias.numpy()).max() <= bound
    emb = nn.Embedding(1000, 20).weight.numpy()
    assert abs(emb.std() - 1) < 0.05 and abs(emb.mean()) < 0.05


# -- pooling -----------------------------------------------------------------------------

@pytest.mark.parametrize("k,s,p,d,ceil", [(2, 2, 0, 1, False), (3, 2, 1, 1, False),
                                          (3, 1, 1, 2, False), (3, 2, 1, 1, True),
                                          (2, 2, 0, 1, True)])
def test_max_pool2d(k, s, p, d, ceil):
    ours = nn.MaxPool2d(k, s, p, d, ceil_mode=ceil)
    theirs = torch.nn.MaxPool2d(k, s, p, d, ceil_mode=ceil)
    run_both(ours, theirs, randn(2, 3, 7, 9))


@pytest.mark.parametrize("include", [True, False])
@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1), ((3, 2), (1, 2), (1, 1))])
def test_avg_pool2d(k, s, p, include):
    ours = nn.AvgPool2d(k, s, p, count_include_pad=include)
    theirs = torch.nn.AvgPool2d(k, s, p, count_include_pad=include)
    run_both(ours, theirs, randn(2, 3, 7, 8))


@pytest.mark.parametrize("include", [True, False])
@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 3, 1), ((3, 2), (2, 3), (1, 0))])
def test_avg_pool2d_ceil_mode(k, s, p, include):
    ours = nn.AvgPool2d(k, s, p, ceil_mode=True, count_include_pad=include)
    theirs = torch.nn.AvgPool2d(k, s, p, ceil_mode=True, count_include_pad=include)
    run_both(ours, theirs, randn(2, 3, 7, 8))


@pytest.mark.parametrize("out", [1, (2, 4), (3, 5), (None, 2), (7, 3)])
def test_adaptive_avg_pool2d(out):
    run_both(nn.AdaptiveAvgPool2d(out), torch.nn.AdaptiveAvgPool2d(out), randn(2, 3, 7, 8))


# -- batch norm --------------------------------------------------------------------------

@pytest.mark.parametrize("kind,shape", [("1d", (8, 5)), ("1d", (6, 5, 4)), ("2d", (4, 5, 3, 3))])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_train_eval_and_running_stats(kind, shape, momentum):
    ours = (nn.BatchNorm1d if kind == "1d" else nn.BatchNorm2d)(5, momentum=momentum)
    theirs = (torch.nn.BatchNorm1d if kind == "1d" else torch.nn.BatchNorm2d)(
        5, momentum=momentum)
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(randn(5)))
        theirs.bias.copy_(torch.from_numpy(randn(5)))
    ours.load_state_dict(theirs.state_dict())
    for _ in range(3):
        x = randn(*shape) * 2 + 1
        for m in (ours, theirs):
            for p in m.parameters():
                p.grad = None
        run_both(ours, theirs, x)
        grads_match(ours, theirs, rtol=1e-4, atol=1e-4)
    sd = ours.state_dict()
    for k, v in theirs.state_dict().items():
        np.testing.assert_allclose(sd[k], v.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
    assert sd["num_batches_tracked"].dtype == np.int64 and sd["num_batches_tracked"] == 3
    ours.eval()
    theirs.eval()
    run_both(ours, theirs, randn(*shape))


def test_batchnorm_without_tracking_matches_torch():
    ours = nn.BatchNorm2d(3, track_running_stats=False, affine=False).eval()
    theirs = torch.nn.BatchNorm2d(3, track_running_stats=False, affine=False).eval()
    run_both(ours, theirs, randn(4, 3, 2, 2))


# -- losses and lookups ------------------------------------------------------------------

@pytest.mark.parametrize("kw", [{}, {"label_smoothing": 0.1}, {"reduction": "sum"},
                                {"reduction": "none", "label_smoothing": 0.3},
                                {"weight": "w"}, {"weight": "w", "label_smoothing": 0.2}])
def test_cross_entropy(kw):
    z = randn(6, 4) * 3
    labels = rng.integers(0, 4, 6)
    w = rng.random(4).astype(np.float32) + 0.5
    ke = {k: (w if v == "w" else v) for k, v in kw.items()}
    kt = {k: (torch.from_numpy(w) if v == "w" else v) for k, v in kw.items()}
    ze, zt = Tensor(z, requires_grad=True), torch.tensor(z, requires_grad=True)
    le = F.cross_entropy(ze, labels, **ke)
    lt = torch.nn.functional.cross_entropy(zt, torch.from_numpy(labels), **kt)
    close(le, lt)
    le.sum().backward()
    lt.sum().backward()
    close(ze.grad, zt.grad)


def test_cross_entropy_spatial_and_nll():
    z, labels = randn(2, 3, 4, 2), rng.integers(0, 3, (2, 4, 2))
    close(F.cross_entropy(Tensor(z), labels, label_smoothing=0.1),
          torch.nn.functional.cross_entropy(torch.from_numpy(z), torch.from_numpy(labels),
                                            label_smoothing=0.1))
    lp = randn(5, 3)
    lab = rng.integers(0, 3, 5)
    close(F.nll_loss(Tensor(lp), lab),
          torch.nn.functional.nll_loss(torch.from_numpy(lp), torch.from_numpy(lab)))


@pytest.mark.parametrize("kw", [{}, {"pos_weight": "pw"}, {"reduction": "none"}])
def test_bce_with_logits(kw):
    x, y = randn(5, 3) * 4, rng.random((5, 3)).astype(np.float32)
    pw = rng.random(3).astype(np.float32) * 2
    ke = {k: (pw if v == "pw" else v) for k, v in kw.items()}
    kt = {k: (torch.from_numpy(pw) if v == "pw" else v) for k, v in kw.items()}
    xe, xt = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    le = F.binary_cross_entropy_with_logits(xe, y, **ke)
    lt = torch.nn.functional.binary_cross_entropy_with_logits(xt, torch.from_numpy(y), **kt)
    close(le, lt)
    le.sum().backward()
    lt.sum().backward()
    close(xe.grad, xt.grad)


def test_mse_loss():
    x, t = randn(4, 3), randn(4, 3)
    close(F.mse_loss(Tensor(x), t),
          torch.nn.functional.mse_loss(torch.from_numpy(x), torch.from_numpy(t)))


def test_embedding():
    ours, theirs = nn.Embedding(10, 4), torch.nn.Embedding(10, 4)
    copy_to_torch(ours, theirs)
    idx = rng.integers(0, 10, (3, 5))
    ye, yt = ours(idx), theirs(torch.from_numpy(idx))
    close(ye, yt)
    g = randn(3, 5, 4)
    (ye * Tensor(g)).sum().backward()
    (yt * torch.from_numpy(g)).sum().backward()
    grads_match(ours, theirs)


@pytest.mark.parametrize("name,kw", [("leaky_relu", {"negative_slope": 0.1}), ("elu", {}),
                                     ("gelu", {}), ("gelu", {"approximate": "tanh"}),
                                     ("silu", {}), ("softplus", {}), ("log_softmax", {"dim": 1}),
                                     ("hardsigmoid", {}), ("hardswish", {}),
                                     ("softmax", {"dim": 0})])
def test_activations(name, kw):
    x = randn(4, 5) * 3
    close(getattr(F, name)(Tensor(x), **kw),
          getattr(torch.nn.functional, name)(torch.from_numpy(x), **kw))


@pytest.mark.parametrize("shape,wshape", [((4, 3, 5, 5), (3,)), ((4, 3, 5, 5), (1,)),
                                          ((6, 3), (3,))])
def test_prelu_forward_and_gradients(shape, wshape):
    x, w = randn(*shape), np.abs(randn(*wshape)) * 0.3
    xe, we = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ye, yt = F.prelu(xe, we), torch.nn.functional.prelu(xt, wt)
    close(ye, yt)
    g = randn(*shape)
    (ye * Tensor(g)).sum().backward()
    (yt * torch.from_numpy(g)).sum().backward()
    close(xe.grad, xt.grad)
    close(we.grad, wt.grad, rtol=1e-4, atol=1e-5)


def test_clip_grad_norm_matches_torch():
    grads = [randn(3, 4) * 5, randn(7)]
    for norm_type in (2.0, 1.0, float("inf")):
        ours = [nn.Parameter(np.zeros_like(g)) for g in grads]
        theirs = [torch.nn.Parameter(torch.zeros_like(torch.from_numpy(g))) for g in grads]
        for p, q, g in zip(ours, theirs, grads):
            p.grad = Tensor(g)
            q.grad = torch.from_numpy(g.copy())
        n1 = nn.utils.clip_grad_norm_(ours, 1.5, norm_type)
        n2 = torch.nn.utils.clip_grad_norm_(theirs, 1.5, norm_type)
        close(n1, n2)
        for p, q in zip(ours, theirs):
            close(p.grad, q.grad)


# -- whole models -------------------------------------------------------------------------

def _torch_lenet() -> torch.nn.Module:
    tn = torch.nn
    return tn.Sequential(tn.Conv2d(1, 6, 5, padding=2), tn.BatchNorm2d(6), tn.ReLU(),
                         tn.MaxPool2d(2), tn.Conv2d(6, 16, 5), tn.ReLU(), tn.AvgPool2d(2),
                         tn.Flatten(), tn.Linear(16 * 5 * 5, 84), tn.BatchNorm1d(84), tn.Tanh(),
                         tn.Dropout(0.5), tn.Linear(84, 10))


def _engine_lenet() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2),
                         nn.Flatten(), nn.Linear(16 * 5 * 5, 84), nn.BatchNorm1d(84), nn.Tanh(),
                         nn.Dropout(0.5), nn.Linear(84, 10))


def test_torch_state_dict_loads_into_engine_model():
    theirs = _torch_lenet()
    x = randn(8, 1, 28, 28)
    theirs.train()
    theirs[11].p = 0.0  # dropout off so the training pass is deterministic
    theirs(torch.from_numpy(x))  # one training step of BN running statistics
    theirs.eval()
    ours = _engine_lenet()
    result = ours.load_state_dict(theirs.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.eval()
    close(ours(Tensor(x)), theirs(torch.from_numpy(x)), rtol=1e-4, atol=1e-4)
    # and engine -> torch
    fresh = _torch_lenet().eval()
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    close(ours(Tensor(x)), fresh(torch.from_numpy(x)), rtol=1e-4, atol=1e-4)

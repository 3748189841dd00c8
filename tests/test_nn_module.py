"""Module mechanics: registration, modes, state dicts, devices, init, clipping, errors."""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

import engine
from engine import Tensor, nn
from engine.nn import functional as F


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU())
        self.head = nn.Linear(2, 3)
        self.scale = nn.Parameter(np.ones(1))
        self.register_buffer("steps", Tensor(np.zeros(1)))
        self.plain = Tensor(np.zeros(2))  # neither parameter nor buffer

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).mean((2, 3))) * self.scale


# -- registration and traversal ------------------------------------------------------------

def test_parameters_buffers_and_modules_are_discovered():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "features.0.weight", "features.0.bias", "features.1.weight",
                     "features.1.bias", "head.weight", "head.bias"]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    assert [n for n, _ in net.named_buffers()] == [
        "steps", "features.1.running_mean", "features.1.running_var",
        "features.1.num_batches_tracked"]
    assert [n for n, _ in net.named_modules()] == ["", "features", "features.0", "features.1",
                                                   "features.2", "head"]
    assert len(list(net.children())) == 2
    assert net.num_parameters() == 1 + 2 * 9 + 2 + 2 + 2 + 3 * 2 + 3


def test_shared_parameters_count_once_and_reassignment():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(seq.parameters())) == 2
    net = Net()
    net.head = nn.Identity()  # replacing a submodule drops its parameters
    assert not any(n.startswith("head.") for n, _ in net.named_parameters())
    with pytest.raises(TypeError, match="Parameter"):
        net.scale = Tensor(np.ones(1))
    net.scale = None
    assert "scale" not in dict(net.named_parameters())
    del net.features
    assert list(net.parameters()) == [] and not hasattr(net, "features")


def test_forgetting_super_init_is_explained():
    class Bad(nn.Module):
        def __init__(self) -> None:
            self.lin = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match="super\\(\\).__init__"):
        Bad()


def test_sequential_and_modulelist():
    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    seq.append(nn.Linear(4, 2))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear)
    assert isinstance(seq[1:], nn.Sequential) and len(seq[1:]) == 2
    assert [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Linear"]
    assert seq(Tensor(np.ones((5, 3)))).shape == (5, 2)
    named = nn.Sequential(OrderedDict(fc=nn.Linear(2, 2), act=nn.Tanh()))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"]
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(ml) == 3 and len(list(ml.parameters())) == 6
    ml[0] = nn.Linear(2, 5)
    assert ml[0].out_features == 5 and ml.state_dict()["0.weight"].shape == (5, 2)
    with pytest.raises(TypeError):
        nn.Sequential(nn.ReLU(), "relu")


def test_train_eval_apply_zero_grad_and_hooks():
    net = Net()
    assert net.training and net.features[1].training
    assert net.eval() is net and not net.features[1].training
    net.train()
    assert net.features[1].training
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and "BatchNorm2d" in seen
    out = net(Tensor(np.random.default_rng(0).standard_normal((2, 1, 5, 5))))
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    for p in net.parameters():
        assert p.grad.shape == p.shape and not p.grad.numpy().any()
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    calls = []
    handle = net.head.register_forward_hook(lambda m, i, o: calls.append(o.shape))
    net(Tensor(np.ones((2, 1, 5, 5))))
    handle.remove()
    net(Tensor(np.ones((2, 1, 5, 5))))
    assert calls == [(2, 3)]


def test_repr_is_a_tree_like_torch():
    model = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2, bias=False), nn.ReLU(),
                          nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
    assert repr(model) == (
        "Sequential(\n"
        "  (0): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2), bias=False)\n"
        "  (1): ReLU()\n"
        "  (2): Sequential(\n"
        "    (0): Flatten(start_dim=1, end_dim=-1)\n"
        "    (1): Linear(in_features=4, out_features=2, bias=True)\n"
        "  )\n"
        ")")
    assert repr(nn.Maxout(3, 2, 4)) == "Maxout(in_features=3, out_features=2, pieces=4, bias=True)"


# -- state dicts -------------------------------------------------------------------------

def test_state_dict_round_trip_in_place():
    a, b = Net(), Net()
    sd = a.state_dict()
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    assert sd["features.1.num_batches_tracked"].dtype == np.int64
    params_before = list(b.parameters())
    result = b.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert all(p is q for p, q in zip(params_before, b.parameters()))  # same objects
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(v, sd[k])
    x = Tensor(np.random.default_rng(1).standard_normal((2, 1, 4, 4)))
    np.testing.assert_allclose(a.eval()(x).numpy(), b.eval()(x).numpy())
    # the state dict holds copies: changing the model afterwards leaves it alone
    a.head.weight.data[...] = 7.0
    assert not np.any(sd["head.weight"] == 7.0)
    # Tensors are accepted as values too
    b.load_state_dict({k: Tensor(v) for k, v in a.state_dict().items()})
    assert np.all(b.head.weight.numpy() == 7.0)


def test_load_state_dict_lists_every_problem():
    net = Net()
    sd = net.state_dict()
    del sd["head.bias"], sd["features.1.running_var"]
    sd["extra.weight"] = np.zeros(3)
    sd["typo.bias"] = np.zeros(1)
    sd["head.weight"] = np.zeros((4, 2))
    sd["features.0.weight"] = np.zeros((2, 1, 5, 5))
    before = net.head.weight.numpy().copy()
    with pytest.raises(nn.StateDictError) as info:
        net.load_state_dict(sd)
    msg = str(info.value)
    for key in ("head.bias", "features.1.running_var", "extra.weight", "typo.bias"):
        assert key in msg
    assert "head.weight: checkpoint has shape (4, 2), model has (3, 2)" in msg
    assert "features.0.weight: checkpoint has shape (2, 1, 5, 5), model has (2, 1, 3, 3)" in msg
    assert isinstance(info.value, ValueError) and isinstance(info.value, RuntimeError)
    np.testing.assert_array_equal(net.head.weight.numpy(), before)  # nothing was changed
    # non-strict: missing/unexpected are reported, shape mismatches still raise
    sd["head.weight"] = np.zeros((3, 2))
    sd["features.0.weight"] = np.zeros((2, 1, 3, 3))
    res = net.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["features.1.running_var", "head.bias"]
    assert res.unexpected_keys == ["extra.weight", "typo.bias"]
    assert np.all(net.head.weight.numpy() == 0)


def test_shared_module_is_saved_under_every_name_like_torch():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    seq.load_state_dict(seq.state_dict())


def test_deepcopy_gives_an_independent_model():
    net = Net()
    clone = copy.deepcopy(net)
    clone.head.weight.data[...] = 0.0
    assert not np.all(net.head.weight.numpy() == 0.0)
    assert [n for n, _ in clone.named_parameters()] == [n for n, _ in net.named_parameters()]
    assert clone(Tensor(np.ones((1, 1, 4, 4)))).shape == (1, 3)


def test_non_persistent_buffers_are_not_saved():
    m = nn.Module()
    m.register_buffer("cache", Tensor(np.ones(2)), persistent=False)
    assert m.state_dict() == OrderedDict() and len(list(m.buffers())) == 1


# -- devices and dtypes --------------------------------------------------------------------

def test_to_keeps_parameter_objects_and_casts_floats_only():
    net = Net()
    params = list(net.parameters())
    assert net.to("cpu") is net
    net.double()
    assert all(p is q for p, q in zip(params, net.parameters()))
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net.features[1].running_mean.dtype == np.float64
    assert net.features[1].num_batches_tracked.dtype == np.int64
    out = net(Tensor(np.ones((1, 1, 4, 4)), dtype="float64"))
    assert out.dtype == np.float64
    with pytest.raises(TypeError, match="dtype"):
        net(Tensor(np.ones((1, 1, 4, 4))))  # float32 input into a float64 model
    net.float()
    assert all(p.dtype == np.float32 for p in net.parameters())


def test_gpu_move_when_available():
    gpu = [d for d in engine.devices() if d["name"] == "gpu"]
    if not gpu:
        pytest.skip("no GPU")
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    ref = net(Tensor(x))
    net.to("gpu")
    assert all(p.device == "gpu" for p in net.parameters())
    np.testing.assert_allclose(net(Tensor(x, device="gpu")).numpy(), ref.numpy(), rtol=1e-4,
                               atol=1e-5)


# -- init and clipping ---------------------------------------------------------------------

def test_init_formulas():
    engine.manual_seed(0)
    w = nn.Parameter(np.zeros((200, 100)))
    nn.init.xavier_uniform_(w)
    a = math.sqrt(6 / 300)
    assert np.abs(w.numpy()).max() <= a and np.abs(w.numpy()).max() > 0.99 * a
    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert abs(w.numpy().std() - math.sqrt(2 / 200)) < 0.005
    nn.init.xavier_normal_(w, gain=2.0)
    assert abs(w.numpy().std() - 2 * math.sqrt(2 / 300)) < 0.005
    nn.init.kaiming_uniform_(w, a=math.sqrt(5))
    assert np.abs(w.numpy()).max() <= 1 / math.sqrt(100)
    nn.init.constant_(w, 0.25)
    assert np.all(w.numpy() == 0.25) and w.dtype == np.float32
    assert nn.init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert nn.init.calculate_gain("tanh") == pytest.approx(5 / 3)
    with pytest.raises(ValueError):
        nn.init.xavier_uniform_(nn.Parameter(np.zeros(3)))


def test_seed_makes_layers_reproducible():
    engine.manual_seed(42)
    a = nn.Linear(5, 5).weight.numpy()
    engine.manual_seed(42)
    np.testing.assert_array_equal(a, nn.Linear(5, 5).weight.numpy())


def test_no_init_keeps_zeros_and_leaves_the_stream_alone():
    engine.manual_seed(7)
    expected = nn.Linear(4, 3).weight.numpy()
    engine.manual_seed(7)
    with nn.init.no_init():  # a model whose weights are loaded next
        skipped = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Linear(4, 3), nn.Embedding(5, 2))
    for name, p in skipped.named_parameters():
        assert not p.numpy().any(), name
    np.testing.assert_array_equal(nn.Linear(4, 3).weight.numpy(), expected)  # no draw
    assert nn.Linear(4, 3).weight.numpy().any()  # outside the block layers draw again


def test_importing_the_engine_does_not_import_numpys_random_module():
    """The stream is made on first use (np.random costs a static page's start 0.2 s);
    loading the shipped LeNet-5 draws nothing either."""
    import subprocess
    import sys

    code = ("import sys, engine.models as m; m.load_lenet5('webapp/models/lenet5.onnx'); "
            "print('numpy.random' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "False"


def test_loading_the_shipped_lenet5_on_the_cpu_never_touches_the_default_device(monkeypatch):
    """In a browser the default device is the GPU: a CPU load that made its layers there
    started the GPU and sent every weight there and back (a second of the static site's
    quick start). Here the default device refuses any array."""
    from engine import backends
    from engine.backends.cpu import CpuBackend
    from engine.models import load_lenet5

    class Refusing(CpuBackend):
        def from_numpy(self, a):
            raise AssertionError("the default device was used")

    monkeypatch.setenv("DEMYSTIFY_DEVICE", "gpu")
    with backends.override("gpu", Refusing()):
        net = load_lenet5(Path(__file__).resolve().parents[1] / "webapp/models/lenet5.onnx")
    assert {p.device for p in net.parameters()} == {"cpu"}


def test_clip_grad_value_and_norm_returns_tensor():
    p = nn.Parameter(np.zeros(3))
    p.grad = Tensor(np.array([3.0, -4.0, 0.0]))
    original = p.grad
    total = nn.utils.clip_grad_norm_([p], 1.0)
    assert isinstance(total, Tensor) and total.item() == pytest.approx(5.0)
    np.testing.assert_allclose(p.grad.numpy(), [0.6, -0.8, 0.0], rtol=1e-5)
    np.testing.assert_array_equal(original.numpy(), [3.0, -4.0, 0.0])  # rebinds, no mutation
    nn.utils.clip_grad_norm_(p, 10.0)  # below the limit: unchanged
    np.testing.assert_allclose(p.grad.numpy(), [0.6, -0.8, 0.0], rtol=1e-5)
    nn.utils.clip_grad_value_([p], 0.7)
    np.testing.assert_allclose(p.grad.numpy(), [0.6, -0.7, 0.0], rtol=1e-6)


# -- bad input -----------------------------------------------------------------------------

def test_shape_errors_name_op_and_shapes():
    with pytest.raises(ValueError, match=r"linear: input has 3 features but the layer expects 5 "
                                         r"\(input shape \(2, 3\), weight shape \(4, 5\)\)"):
        nn.Linear(5, 4)(Tensor(np.zeros((2, 3))))
    with pytest.raises(ValueError, match=r"conv2d: input has 2 channels but the weight expects "
                                         r"3 .*\(1, 2, 8, 8\).*\(4, 3, 3, 3\)"):
        nn.Conv2d(3, 4, 3)(Tensor(np.zeros((1, 2, 8, 8))))
    with pytest.raises(ValueError, match=r"conv2d: expected a 4-D input"):
        nn.Conv2d(3, 4, 3)(Tensor(np.zeros((3, 8, 8))))
    with pytest.raises(ValueError, match=r"smaller than the dilated kernel"):
        nn.Conv2d(1, 1, 5)(Tensor(np.zeros((1, 1, 3, 3))))
    with pytest.raises(ValueError, match=r"BatchNorm2d: input has 3 channels but the layer "
                                         r"expects 4"):
        nn.BatchNorm2d(4)(Tensor(np.zeros((2, 3, 2, 2))))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(4)(Tensor(np.zeros((1, 4))))
    with pytest.raises(ValueError, match=r"mse_loss: input shape \(3, 2\) and target shape "
                                         r"\(2, 3\)"):
        F.mse_loss(Tensor(np.zeros((3, 2))), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"labels of shape \(3,\) do not match input of shape "
                                         r"\(4, 5\)"):
        F.cross_entropy(Tensor(np.zeros((4, 5))), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="padding"):
        nn.MaxPool2d(2, padding=2)(Tensor(np.zeros((1, 1, 4, 4))))
    with pytest.raises(ValueError, match="Conv2d: in_channels=3 and out_channels=4 must both"):
        nn.Conv2d(3, 4, 3, groups=2)


def test_label_and_dtype_errors():
    z = Tensor(np.zeros((3, 10)))
    with pytest.raises(ValueError, match=r"cross_entropy: label 10 at position 2 is out of "
                                         r"range for 10 classes \(valid: 0..9\)"):
        F.cross_entropy(z, np.array([1, 2, 10]))
    with pytest.raises(ValueError, match="label -1"):
        F.cross_entropy(z, Tensor(np.array([-1, 2, 3])))
    with pytest.raises(TypeError, match="labels must be integers"):
        F.cross_entropy(z, np.array([1.0, 2.0, 3.0]))
    with pytest.raises(TypeError, match="labels must be integers"):
        F.cross_entropy(z, Tensor(np.array([1.0, 2.0, 3.0])))
    with pytest.raises(TypeError, match="floating-point"):
        nn.Linear(2, 2)(Tensor(np.zeros((1, 2), dtype=np.int64)))
    with pytest.raises(TypeError, match="must be a Tensor"):
        nn.Linear(2, 2)(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="index 7 at position"):
        nn.Embedding(5, 2)(np.array([1, 7]))
    with pytest.raises(TypeError, match="indices must be integers"):
        nn.Embedding(5, 2)(np.array([1.0]))
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(z, np.zeros((3, 10)), reduction="avg")
    with pytest.raises(ValueError, match="probability"):
        nn.Dropout(1.5)

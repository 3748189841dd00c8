"""engine -> ONNX -> ONNX Runtime (and back into the engine), on CPU and GPU.

Every exported file must pass `onnx.checker.check_model(full_check=True)` and agree with
the engine to 1e-5 (float32) at several batch sizes, because the batch dim is symbolic.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import engine
import engine.onnx as eo
from engine import Tensor, nn
from tests.gpu_helpers import gpu_backend_or_skip

ort = pytest.importorskip("onnxruntime")
F = nn.functional


class Residual(nn.Module):
    """A custom forward: skip connection, functional ops, batch norm, global pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv = nn.Conv2d(8, 8, 3, padding="same", bias=False)
        self.down = nn.Conv2d(8, 12, 3, stride=2, padding=1, groups=4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, 5)

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn(self.stem(x)).relu()
        y = F.relu(self.conv(y) + y)
        y = F.gelu(self.down(y))
        return F.log_softmax(self.fc(self.pool(y).flatten(1)), 1)


class Functional(nn.Module):
    """Ops that only exist at function level: slicing, concat, pad, reductions, clip."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 6)

    def forward(self, x: Tensor) -> Tensor:
        a, b = x[:, :3], x[:, 3:]
        y = engine.cat([b * 2.0 - 1.0, (a + 0.5).exp().sqrt()], 1)
        y = self.lin(y).clip(-2.0, 2.0)
        y = engine.maximum(y, y * 0.1) / (y.abs() + 1.0)
        z = F.pad(y.reshape(-1, 2, 3), (1, 1)).sum(axis=2) + y.mean(axis=1, keepdims=True)
        return z.max(axis=1, keepdims=True) - (1.0 - z.sigmoid()).tanh()


def lenet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ELU(), nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10), nn.Softmax(1))


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(7, 16), nn.LeakyReLU(0.1), nn.Dropout(0.3),
                         nn.Linear(16, 16), nn.GELU(), nn.Linear(16, 16), nn.SiLU(),
                         nn.Linear(16, 16), nn.Softplus(), nn.BatchNorm1d(16),
                         nn.Linear(16, 3))


def _model(name: str) -> tuple[nn.Module, tuple[int, ...]]:
    engine.manual_seed(0)
    m, shape = {"lenet": (lenet, (1, 28, 28)), "residual": (Residual, (3, 10, 10)),
                "functional": (Functional, (6,)), "mlp": (mlp, (7,))}[name]
    model = m()
    model.train()  # give batch norm non-trivial running statistics
    with engine.no_grad():
        for s in range(3):
            model(Tensor(np.random.default_rng(s).normal(size=(8, *shape)), dtype="float32"))
    return model.eval(), shape


def _x(batch: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed + batch).normal(size=(batch, *shape)).astype(np.float32)


@pytest.mark.parametrize("opset", [13, 17, 20])
@pytest.mark.parametrize("name", ["lenet", "residual", "functional", "mlp"])
def test_export_runs_in_onnxruntime(name: str, opset: int, tmp_path) -> None:
    model, shape = _model(name)
    path = tmp_path / f"{name}.onnx"
    eo.export(model, _x(2, shape), path, opset=opset)
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == opset
    names = {t.name for t in proto.graph.initializer}
    assert {n for n, _ in model.named_parameters()} <= names  # names kept
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    back = eo.load(path, device="cpu")
    for batch in (1, 4, 7):
        x = _x(batch, shape, seed=10)
        ref = model(Tensor(x)).numpy()
        got = sess.run(None, {"input": x})[0]
        assert np.abs(got - ref).max() <= 1e-5
        assert np.abs(back(x).numpy() - ref).max() <= 1e-5


def test_export_uses_whole_layer_ops_and_symbolic_batch() -> None:
    model, shape = _model("residual")
    proto = eo.export(model, _x(2, shape))
    ops = [n.op_type for n in proto.graph.node]
    for op in ("Conv", "BatchNormalization", "GlobalAveragePool", "Gemm", "LogSoftmax"):
        assert op in ops
    assert "Pad" in ops or "Conv" in ops
    dim0 = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param == "batch"
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    fixed = eo.export(model, _x(2, shape), dynamic_batch=False)
    assert fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2


def test_export_flatten_reshape_is_batch_agnostic() -> None:
    class View(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 3)

        def forward(self, x: Tensor) -> Tensor:
            y = self.conv(x)
            a = y.reshape(y.shape[0], -1)[:, 1:10:2].unsqueeze(1)  # (B, 1, 5)
            b = y[:, 0, None, -1, ::-2] * y[..., 1, 1:3].sum(1, keepdims=True)  # int, None, ...
            return engine.cat([a, b], 2)

    engine.manual_seed(1)
    model = View()
    sess = ort.InferenceSession(eo.export(model, _x(3, (2, 6, 6))).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        x = _x(batch, (2, 6, 6))
        assert np.abs(sess.run(None, {"input": x})[0] - model(Tensor(x)).numpy()).max() <= 1e-5


def test_export_refuses_untraceable_values() -> None:
    class Leaky(nn.Module):
        def forward(self, x: Tensor) -> Tensor:  # the mask comes from a host round trip
            return x * Tensor((x.numpy() > 0).astype(np.float32))

    with pytest.raises(eo.ExportError, match="cannot be traced"):
        eo.export(Leaky(), _x(2, (4,)))
    with pytest.raises(eo.ExportError, match="opset"):
        eo.export(mlp(), _x(2, (7,)), opset=9)


def test_export_restores_training_mode() -> None:
    model, shape = _model("mlp")
    model.train()
    eo.export(model, _x(2, shape))
    assert model.training and all(m.training for m in model.modules())


def _gpu_or_skip() -> None:
    gpu_backend_or_skip()


@pytest.mark.gpu
def test_round_trip_on_gpu(tmp_path) -> None:
    """Export a model that lives on the GPU, run the file in ORT and back on the GPU."""
    _gpu_or_skip()
    model, shape = _model("residual")
    model.to("gpu")
    x = _x(2, shape)
    path = tmp_path / "gpu.onnx"
    eo.export(model, x, path)
    ref = model(Tensor(x, device="gpu")).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert np.abs(sess.run(None, {"input": x})[0] - ref).max() <= 1e-4
    back = eo.load(path, device="gpu")
    out = back(x)
    assert out.device == "gpu"
    assert np.abs(out.numpy() - ref).max() <= 1e-4


def test_ceil_mode_pools_export_as_plain_nodes_and_match_torch() -> None:
    torch = pytest.importorskip("torch")
    m = nn.Sequential(nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
                      nn.MaxPool2d(2, ceil_mode=True))
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 9)).astype(np.float32)
    proto = eo.export(m, x)
    ops = [n.op_type for n in proto.graph.node]
    # the divisor of ceil mode's partial windows is one constant, not a traced computation
    assert ops.count("AveragePool") == 1 and "Div" not in ops
    ref = torch.nn.Sequential(
        torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
        torch.nn.MaxPool2d(2, ceil_mode=True))(torch.from_numpy(x)).numpy()
    got = ort.InferenceSession(proto.SerializeToString()).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(eo.load(proto.SerializeToString())(Tensor(x)).numpy(), ref,
                               rtol=1e-5, atol=1e-6)

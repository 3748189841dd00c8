"""Models exported by PyTorch's `torch.onnx.export` load in the engine and match ONNX Runtime.

Uses the TorchScript exporter (`dynamo=False`; the dynamo exporter needs onnxscript) at
opsets 13, 17 and 20, with and without constant folding. Without folding PyTorch emits the
Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains that the loader evaluates on the
host; with folding (and eval mode) it fuses BatchNormalization into the preceding Conv.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
tnn = torch.nn

import engine.onnx as eo  # noqa: E402


class LeNet5(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = tnn.Conv2d(1, 6, 5, padding=2), tnn.Conv2d(6, 16, 5)
        self.f1, self.f2, self.f3 = tnn.Linear(400, 120), tnn.Linear(120, 84), tnn.Linear(84, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.c1(x)), 2)
        x = tnn.functional.avg_pool2d(torch.tanh(self.c2(x)), 2)
        x = x.view(x.size(0), -1)  # Shape/Gather/Concat/Reshape without constant folding
        return self.f3(torch.relu(self.f2(torch.sigmoid(self.f1(x)))))


def bn_cnn() -> tnn.Module:
    return tnn.Sequential(
        tnn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), tnn.BatchNorm2d(8), tnn.ReLU(),
        tnn.Conv2d(8, 16, 3, stride=2), tnn.BatchNorm2d(16), tnn.LeakyReLU(0.1),
        tnn.MaxPool2d(2, ceil_mode=True), tnn.Flatten(), tnn.Dropout(0.3),
        tnn.Linear(16 * 2 * 2, 10), tnn.LogSoftmax(1))


class Block(tnn.Module):
    def __init__(self, c: int, stride: int) -> None:
        super().__init__()
        self.a = tnn.Conv2d(c if stride == 1 else c // 2, c, 3, stride, 1, bias=False)
        self.bn1, self.b, self.bn2 = tnn.BatchNorm2d(c), tnn.Conv2d(c, c, 3, 1, 1), \
            tnn.BatchNorm2d(c)
        self.skip = tnn.Identity() if stride == 1 else tnn.Conv2d(c // 2, c, 1, stride)

    def forward(self, x):
        y = torch.relu(self.bn1(self.a(x)))
        return torch.relu(self.bn2(self.b(y)) + self.skip(x))


class ResNet(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = tnn.Conv2d(3, 8, 3, padding=1)
        self.blocks = tnn.Sequential(Block(8, 1), Block(16, 2))
        self.head = tnn.Linear(16, 5)

    def forward(self, x):
        x = self.blocks(torch.relu(self.stem(x)))
        x = tnn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return torch.softmax(self.head(x), dim=-1)


def mlp() -> tnn.Module:
    return tnn.Sequential(tnn.Linear(12, 32), tnn.GELU(), tnn.Linear(32, 32), tnn.ELU(),
                          tnn.Linear(32, 16), tnn.Tanh(), tnn.Linear(16, 16), tnn.Softplus(),
                          tnn.Linear(16, 16), tnn.Hardswish(), tnn.Linear(16, 4))


MODELS = {"lenet5": (LeNet5, (1, 28, 28)), "bn_cnn": (bn_cnn, (3, 16, 16)),
          "resnet": (ResNet, (3, 12, 12)), "mlp": (mlp, (12,))}


def _randomize_bn(m: tnn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    for mod in m.modules():
        if isinstance(mod, tnn.BatchNorm2d):
            mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.2)
            mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
            mod.weight.data.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
            mod.bias.data.copy_(torch.randn(mod.num_features, generator=g) * 0.1)


def _export(name: str, opset: int, fold: bool) -> bytes:
    torch.manual_seed(0)
    ctor, shape = MODELS[name]
    m = ctor()
    with torch.no_grad():
        _randomize_bn(m)
    m.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.randn(2, *shape),), buf, dynamo=False,
                          opset_version=opset, do_constant_folding=fold,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    return buf.getvalue()


@pytest.mark.parametrize("fold", [False, True], ids=["nofold", "fold"])
@pytest.mark.parametrize("opset", [13, 17, 20])
@pytest.mark.parametrize("name", list(MODELS))
def test_torch_export_loads_and_matches_ort(name: str, opset: int, fold: bool) -> None:
    data = _export(name, opset, fold)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    model = eo.load(data, device="cpu")
    shape = MODELS[name][1]
    worst = 0.0
    for batch in (1, 3):
        x = np.random.default_rng(batch).normal(size=(batch, *shape)).astype(np.float32)
        ref = sess.run(None, {"x": x})[0]
        got = model(x=x).numpy()
        assert got.shape == ref.shape
        worst = max(worst, float(np.abs(got - ref).max()))
    assert worst <= 1e-4, f"{name} opset {opset} fold={fold}: max abs diff {worst}"


def test_torch_model_keeps_parameter_names_and_fine_tunes() -> None:
    """An imported PyTorch model trains in the engine (BatchNorm uses batch stats)."""
    from engine import nn, optim

    data = _export("bn_cnn", 17, False)
    model = eo.load(data, device="cpu")
    names = dict(model.named_parameters())
    assert "0.weight" in names and "1.weight" in names  # PyTorch's state-dict names
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3, 16, 16)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    opt = optim.SGD(model.parameters(), lr=0.05)
    model.train()
    losses = []
    for _ in range(6):
        loss = nn.functional.nll_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.9, losses


def test_shape_subgraph_stays_on_the_host(monkeypatch) -> None:
    """Without constant folding, LeNet's x.view(x.size(0), -1) is Shape -> Gather ->
    Unsqueeze -> Concat -> Reshape: all of it must be computed with NumPy, and no
    integer tensor is ever uploaded to the compute device."""
    from engine.onnx import ops as onnx_ops

    data = _export("lenet5", 13, False)
    model = eo.load(data, device="cpu")
    ops_in_file = {n.proto.op_type for n in model.graph.nodes}
    assert {"Shape", "Gather", "Concat", "Reshape"} <= ops_in_file
    uploads = []
    real_t = onnx_ops.Ctx.t

    def spy(self, x):
        if not self.host_mode and isinstance(x, np.ndarray):
            uploads.append(x.dtype)
        return real_t(self, x)

    monkeypatch.setattr(onnx_ops.Ctx, "t", spy)
    model(x=np.zeros((3, 1, 28, 28), np.float32))
    assert not [d for d in uploads if d.kind in "iub"], uploads

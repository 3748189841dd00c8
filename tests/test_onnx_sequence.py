"""ONNX both ways for sequence models: the engine's RNN/LSTM/GRU export as ONNX's RNN/LSTM/
GRU nodes (attention as MatMul/Softmax) that ONNX Runtime reproduces; graphs exported by
PyTorch and hand-built graphs (layout=1, sequence_lens, initial states, both directions,
the spec's other attributes) import and match ONNX Runtime, and stay trainable."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

import engine
import engine.onnx as eo
from engine import Tensor, nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

rng = np.random.default_rng(7)


def randn(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def ort_run(proto: bytes, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    sess = ort.InferenceSession(proto, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


class Classifier(nn.Module):
    """A recurrent layer over (N, L, F), the last step's output, a linear head."""

    def __init__(self, kind: str, **kw) -> None:
        super().__init__()
        self.rnn = getattr(nn, kind)(5, 4, batch_first=True, **kw)
        d = 2 if kw.get("bidirectional") else 1
        self.fc = nn.Linear(4 * d, 3)

    def forward(self, x: Tensor) -> Tensor:
        out, h = self.rnn(x)
        h = h[0] if isinstance(h, tuple) else h
        return self.fc(out[:, -1]) + h[-1].sum(-1, keepdims=True)


CASES = [(kind, kw) for kind in ("RNN", "LSTM", "GRU") for kw in (
    {}, dict(num_layers=2, bidirectional=True), dict(bias=False))] + [
    ("RNN", dict(nonlinearity="relu")), ("LSTM", dict(num_layers=3))]


@pytest.mark.parametrize("opset", [13, 17])
@pytest.mark.parametrize("kind,kw", CASES)
def test_engine_export_runs_in_onnx_runtime_and_back(kind, kw, opset):
    engine.manual_seed(1)
    m = Classifier(kind, **kw).eval()
    proto = eo.export(m, randn(2, 6, 5), opset=opset)
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count(kind) == m.rnn.num_layers * (2 if m.rnn.bidirectional else 1)
    x = randn(5, 6, 5)  # another batch size: the batch dim is dynamic
    with engine.no_grad():
        want = m(Tensor(x)).numpy()
    got = ort_run(proto.SerializeToString(), {"input": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    back = eo.load(proto.SerializeToString(), device="cpu")
    assert list(back.state_dict()) == list(m.state_dict())  # names and layout are the model's
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[k], v)
    with engine.no_grad():
        np.testing.assert_allclose(back(x).numpy(), want, rtol=1e-6, atol=1e-6)


def test_lstm_with_initial_states_exports_them_as_inputs():
    class WithState(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(3, 4)

        def forward(self, x, h, c):
            out, (h2, c2) = self.lstm(x, (h, c))
            return out, h2, c2
    m = WithState().eval()
    args = (randn(5, 2, 3), randn(1, 2, 4), randn(1, 2, 4))
    proto = eo.export(m, args, dynamic_batch=False)
    got = ort_run(proto.SerializeToString(), {f"input_{i}": a for i, a in enumerate(args)})
    with engine.no_grad():
        want = [t.numpy() for t in m(*[Tensor(a) for a in args])]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_attention_models_export_as_matmul_and_softmax():
    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pos = nn.PositionalEncoding(8, max_len=16, batch_first=True)
            self.layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first=True)
            self.mha = nn.MultiheadAttention(8, 4, batch_first=True)

        def forward(self, x):
            y = self.layer(self.pos(x))
            out, w = self.mha(y, y, y)
            return out.mean(1), w
    m = Encoder().eval()
    proto = eo.export(m, randn(2, 7, 8))
    ops = {n.op_type for n in proto.graph.node}
    assert {"MatMul", "Softmax"} <= ops and not ops & {"Attention", "LSTM"}
    x = randn(3, 7, 8)
    got = ort_run(proto.SerializeToString(), {"input": x})
    with engine.no_grad():
        want = [t.numpy() for t in m(Tensor(x))]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


# -- PyTorch's exporter ---------------------------------------------------------------------

torch = pytest.importorskip("torch")


class TorchNet(torch.nn.Module):
    def __init__(self, kind: str, states: bool, **kw) -> None:
        super().__init__()
        self.kind, self.states = kind, states
        self.rnn = getattr(torch.nn, kind)(5, 4, **kw)

    def forward(self, x, *hx):
        if not self.states:
            out, h = self.rnn(x)
        elif self.kind == "LSTM":
            out, h = self.rnn(x, (hx[0], hx[1]))
        else:
            out, h = self.rnn(x, hx[0])
        return (out, *h) if isinstance(h, tuple) else (out, h)


TORCH_CASES = [(kind, kw, states) for kind in ("RNN", "LSTM", "GRU") for kw, states in (
    ({}, False), (dict(batch_first=True, num_layers=2), True),
    (dict(bidirectional=True), True), (dict(bidirectional=True, batch_first=True,
                                            num_layers=2), False))]


@pytest.mark.parametrize("kind,kw,states", TORCH_CASES)
@pytest.mark.parametrize("opset", [14, 17])
def test_pytorch_exported_recurrent_graphs_import(kind, kw, states, opset):
    net = TorchNet(kind, states, **kw).eval()
    D = 2 if kw.get("bidirectional") else 1
    n = kw.get("num_layers", 1) * D
    B, T = 3, 6
    x = randn(B, T, 5) if kw.get("batch_first") else randn(T, B, 5)
    hx = [randn(n, B, 4) for _ in range(2 if kind == "LSTM" else 1)] if states else []
    names = ["x"] + [f"h{i}" for i in range(len(hx))]
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.from_numpy(x), *map(torch.from_numpy, hx)), buf,
                          dynamo=False, opset_version=opset, input_names=names)
    data = buf.getvalue()
    proto = onnx.load_from_string(data)
    assert kind in {nd.op_type for nd in proto.graph.node}
    feeds = dict(zip(names, [x, *hx]))
    want = ort_run(data, feeds)
    with torch.no_grad():
        ref = [t.numpy() for t in net(torch.from_numpy(x), *map(torch.from_numpy, hx))]
    model = eo.load(data, device="cpu")
    with engine.no_grad():
        got = model(**feeds)
    got = [g.numpy() for g in (got if isinstance(got, tuple) else (got,))]
    assert len(got) == len(want)
    for g, w, r in zip(got, want, ref):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5)
    # and it trains: gradients reach the imported weights
    xt = Tensor(x, requires_grad=True)
    out = model(xt, *[Tensor(h) for h in hx])
    (out[0] if isinstance(out, tuple) else out).sum().backward()
    assert xt.grad is not None and any(p.grad is not None and np.any(p.grad.numpy())
                                       for p in model.parameters())


# -- hand-built graphs: every attribute of the spec -----------------------------------------

def _graph(kind: str, T: int, B: int, I: int, H: int, D: int, layout: int, inputs: dict,
           attrs: dict, n_out: int, seed: int = 0) -> bytes:
    G = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind]
    w = np.random.default_rng(seed)
    inits = [helper.make_tensor("W", TensorProto.FLOAT, (D, G * H, I),
                                w.standard_normal(D * G * H * I) * 0.5),
             helper.make_tensor("R", TensorProto.FLOAT, (D, G * H, H),
                                w.standard_normal(D * G * H * H) * 0.5),
             helper.make_tensor("B", TensorProto.FLOAT, (D, 2 * G * H),
                                w.standard_normal(D * 2 * G * H))]
    names = ["X", "W", "R", "B"]
    order = ["sequence_lens", "initial_h", "initial_c", "P"][:{"LSTM": 4}.get(kind, 2)]
    graph_inputs = [helper.make_tensor_value_info(
        "X", TensorProto.FLOAT, (B, T, I) if layout else (T, B, I))]
    for k in order:
        if k in inputs:
            arr = inputs[k]
            dt = TensorProto.INT32 if arr.dtype == np.int32 else TensorProto.FLOAT
            inits.append(helper.make_tensor(k, dt, arr.shape, arr.ravel()))
            names.append(k)
        else:
            names.append("")
    while names[-1] == "":
        names.pop()
    outs = ["Y", "Y_h", "Y_c"][:n_out]
    node = helper.make_node(kind, names, outs, hidden_size=H, layout=layout, **attrs)
    graph = helper.make_graph([node], "g", graph_inputs,
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None)
                               for o in outs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    return model.SerializeToString()


SPEC_CASES = [
    ("LSTM", dict(direction="bidirectional"), True, True),
    ("LSTM", dict(direction="reverse", clip=0.7), True, False),
    ("LSTM", dict(input_forget=1), False, True),
    ("LSTM", dict(activations=["HardSigmoid", "Tanh", "Softsign"] * 2,
                  activation_alpha=[0.3, 0.3], activation_beta=[0.4, 0.4],
                  direction="bidirectional"), True, False),
    ("GRU", dict(direction="bidirectional"), True, True),
    ("GRU", dict(linear_before_reset=1, direction="reverse"), True, False),
    ("GRU", dict(linear_before_reset=1), False, True),
    ("RNN", dict(activations=["Relu", "Tanh"], direction="bidirectional"), True, True),
    ("RNN", dict(activations=["LeakyRelu"], activation_alpha=[0.2]), False, False),
]


@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("kind,attrs,lens,peephole", SPEC_CASES)
def test_spec_attributes_match_onnx_runtime(kind, attrs, lens, peephole, layout):
    """ONNX Runtime refuses layout=1, so that case is checked against ORT running the same
    weights with layout=0 on transposed inputs (outputs transposed back)."""
    T, B, I, H = 5, 3, 4, 3
    D = 2 if attrs.get("direction") == "bidirectional" else 1
    inputs = {"initial_h": randn(D, B, H)}
    if kind == "LSTM":
        inputs["initial_c"] = randn(D, B, H)
        if peephole:
            inputs["P"] = randn(D, 3 * H)
    if lens:
        inputs["sequence_lens"] = np.array([5, 2, 3][:B], np.int32)
    n_out = 3 if kind == "LSTM" else 2
    x = randn(T, B, I)
    want = ort_run(_graph(kind, T, B, I, H, D, 0, inputs, attrs, n_out), {"X": x})
    if layout == 1:
        inputs = {k: (np.ascontiguousarray(v.transpose(1, 0, 2)) if k.startswith("initial")
                      else v) for k, v in inputs.items()}
        x = np.ascontiguousarray(x.transpose(1, 0, 2))
        want = [want[0].transpose(2, 0, 1, 3)] + [w.transpose(1, 0, 2) for w in want[1:]]
    model = eo.load(_graph(kind, T, B, I, H, D, layout, inputs, attrs, n_out), device="cpu")
    with engine.no_grad():
        got = model(x)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
def test_imported_lstm_runs_on_the_gpu():
    from tests.gpu_helpers import gpu_backend_or_skip

    gpu_backend_or_skip()
    net = TorchNet("LSTM", False, bidirectional=True).eval()
    x = randn(6, 2, 5)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.from_numpy(x),), buf, dynamo=False, opset_version=17,
                          input_names=["x"])
    want = ort_run(buf.getvalue(), {"x": x})
    model = eo.load(buf.getvalue(), device="gpu")
    with engine.no_grad():
        got = model(x)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-4, atol=1e-5)


def test_unsupported_recurrent_attributes_are_named_at_load():
    T, B, I, H = 2, 1, 2, 2
    data = _graph("LSTM", T, B, I, H, 1, 0, {}, dict(activations=["Sigmoid", "Gelu", "Tanh"]),
                  3)
    with pytest.raises(eo.UnsupportedOpError, match=r"activation\(s\) \['Gelu'\]"):
        eo.load(data)
    data = _graph("GRU", T, B, I, H, 1, 0, {}, dict(direction="sideways"), 2)
    with pytest.raises(eo.UnsupportedOpError, match="direction='sideways'"):
        eo.load(data)


def test_a_recurrent_node_asking_for_too_much_is_refused_before_it_runs():
    from engine.onnx.limits import Limits

    data = _graph("LSTM", 4, 2, 3, 5, 1, 0, {}, {}, 3)
    model = eo.load(data, limits=Limits(max_elements=100))
    with pytest.raises(eo.OnnxError, match="LSTM"):
        model(randn(4, 2, 3))  # 4 steps x 2 x 4 gates x 5 units = 160 elements
    assert eo.load(data)(randn(4, 2, 3))[0].shape == (4, 1, 2, 5)

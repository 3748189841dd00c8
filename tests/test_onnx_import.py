"""ONNX -> engine: hand-built graphs (one per op family) agree with ONNX Runtime, imported
models fine-tune, run on the GPU, and `python -m engine.onnx info` describes files."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import engine.onnx as eo
from engine import nn, optim
from tests.gpu_helpers import gpu_backend_or_skip

ort = pytest.importorskip("onnxruntime")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNG = np.random.default_rng(0)


def _model(nodes, inputs: dict[str, np.ndarray], inits: dict[str, np.ndarray],
           outputs: list[str], opset: int = 17, dyn_batch: bool = False) -> onnx.ModelProto:
    def vi(name: str, a: np.ndarray, dyn: bool) -> onnx.ValueInfoProto:
        shape = [("N" if dyn and i == 0 else s) for i, s in enumerate(a.shape)]
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(a.dtype),
                                             shape)
    graph = helper.make_graph(
        nodes, "g", [vi(k, v, dyn_batch) for k, v in inputs.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _compare(model: onnx.ModelProto, inputs: dict[str, np.ndarray], device: str = "cpu",
             tol: float = 1e-5) -> float:
    data = model.SerializeToString()
    ref = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, inputs)
    out = eo.load(data, device=device)(**inputs)
    outs = out if isinstance(out, tuple) else (out,)
    worst = 0.0
    for r, o in zip(ref, outs):
        assert o.shape == r.shape, (o.shape, r.shape)
        worst = max(worst, float(np.abs(o.numpy() - r).max()) if r.size else 0.0)
    assert worst <= tol, worst
    return worst


def _f(*shape: int) -> np.ndarray:
    return RNG.normal(size=shape).astype(np.float32)


N = helper.make_node
CONV_CASES = {
    "conv_asym_pads_stride": [N("Conv", ["x", "w", "b"], ["y"], pads=[0, 1, 2, 1],
                                strides=[2, 1], dilations=[1, 2])],
    "conv_same_upper": [N("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", strides=[2, 2])],
    "conv_same_lower": [N("Conv", ["x", "w"], ["y"], auto_pad="SAME_LOWER")],
    "convT_stride_outpad": [N("ConvTranspose", ["x", "wt", "bt"], ["y"], strides=[2, 2],
                              pads=[1, 0, 0, 1], output_padding=[1, 1])],
    "convT_output_shape": [N("ConvTranspose", ["x", "wt"], ["y"], strides=[2, 3],
                             output_shape=[12, 20])],
    "maxpool_ceil_pads": [N("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                            pads=[1, 0, 0, 1], ceil_mode=1)],
    "avgpool_ceil_excl_pad": [N("AveragePool", ["x"], ["y"], kernel_shape=[3, 2],
                                strides=[2, 2], pads=[1, 1, 1, 0], ceil_mode=1)],
    "avgpool_incl_pad_same": [N("AveragePool", ["x"], ["y"], kernel_shape=[3, 3],
                                auto_pad="SAME_UPPER", count_include_pad=1)],
    "global_pools": [N("GlobalMaxPool", ["x"], ["a"]), N("GlobalAveragePool", ["x"], ["c"]),
                     N("Add", ["a", "c"], ["y"])],
    "batchnorm_eval": [N("BatchNormalization", ["x", "s", "bb", "m", "v"], ["y"],
                         epsilon=1e-3)],
}


@pytest.mark.parametrize("case", list(CONV_CASES))
def test_spatial_ops_match_ort(case: str) -> None:
    inits = {"w": _f(4, 3, 3, 3), "b": _f(4), "wt": _f(3, 2, 3, 3), "bt": _f(2),
             "s": _f(3), "bb": _f(3), "m": _f(3), "v": np.abs(_f(3)) + 0.5}
    nodes = CONV_CASES[case]
    used = {i for n in nodes for i in n.input}
    x = _f(2, 3, 7, 9) if not case.startswith("convT") else _f(2, 3, 6, 7)
    _compare(_model(nodes, {"x": x}, {k: v for k, v in inits.items() if k in used}, ["y"]),
             {"x": x})


def test_conv1d_and_pool1d() -> None:
    nodes = [N("Conv", ["x", "w"], ["c"], pads=[1, 1]),
             N("MaxPool", ["c"], ["y"], kernel_shape=[2], strides=[2])]
    x = _f(2, 3, 10)
    _compare(_model(nodes, {"x": x}, {"w": _f(4, 3, 3)}, ["y"]), {"x": x})


def test_shape_ops_match_ort() -> None:
    """Split/Slice/Gather/Squeeze/Unsqueeze/Transpose/Concat/Pad/Reduce/Clip/Cast/...:
    the shape arithmetic runs on the host, the data ops in the engine."""
    nodes = [
        N("Split", ["x", "split"], ["s0", "s1"], axis=1),
        N("Slice", ["s1", "st", "en", "ax", "sp"], ["sl"]),
        N("Shape", ["x"], ["shp"]),
        N("Gather", ["shp", "zero"], ["n"], axis=0),
        N("Unsqueeze", ["n", "zero1"], ["n1"]),
        N("Concat", ["n1", "minus1"], ["newshape"], axis=0),
        N("Reshape", ["sl", "newshape"], ["flat"]),
        N("Transpose", ["s0"], ["t"], perm=[0, 3, 2, 1]),
        N("ReduceMean", ["t", "ax12"], ["rm"], keepdims=0),
        N("ReduceMax", ["t", "ax12"], ["rx"], keepdims=0),
        N("ReduceSum", ["t", "ax12"], ["rs"], keepdims=0),
        N("Sum", ["rm", "rx", "rs"], ["r"]),
        N("Gather", ["flat", "idx"], ["g"], axis=1),
        N("Squeeze", ["g", "ax2"], ["sq"]),
        N("Concat", ["r", "sq"], ["cat"], axis=1),
        N("Pad", ["cat", "pads", "padv"], ["p"], mode="constant"),
        N("Clip", ["p", "lo", "hi"], ["c"]),
        N("Cast", ["c"], ["c64"], to=TensorProto.DOUBLE),
        N("Cast", ["c64"], ["c32"], to=TensorProto.FLOAT),
        N("ConstantOfShape", ["shp2"], ["ones"],
          value=numpy_helper.from_array(np.array([0.5], np.float32))),
        N("Max", ["c32", "ones"], ["mx"]), N("Min", ["mx", "c32"], ["mn"]),
        N("Pow", ["mn", "two"], ["pw"]), N("Sqrt", ["pw"], ["sq2"]),
        N("Flatten", ["sq2"], ["y"], axis=1),
    ]
    inits = {"split": np.array([2, 4]), "st": np.array([0, 1]), "en": np.array([5, 100]),
             "ax": np.array([2, 3]), "sp": np.array([2, 2]), "zero": np.array(0),
             "zero1": np.array([0]), "minus1": np.array([-1]), "ax12": np.array([2, 3]),
             "idx": np.array([[0], [3]]), "ax2": np.array([2]),
             "pads": np.array([0, 1, 0, 2]), "padv": np.array(0.25, np.float32),
             "lo": np.array(-0.7, np.float32), "hi": np.array(0.9, np.float32),
             "shp2": np.array([1, 1]), "two": np.array(2.0, np.float32)}
    x = _f(3, 6, 5, 4)
    _compare(_model(nodes, {"x": x}, inits, ["y"], opset=18, dyn_batch=True), {"x": x})


def test_activations_and_elementwise_match_ort() -> None:
    acts = [("Relu", {}), ("LeakyRelu", {"alpha": 0.2}), ("Elu", {"alpha": 0.7}),
            ("Sigmoid", {}), ("Tanh", {}), ("Softmax", {"axis": 1}), ("LogSoftmax", {}),
            ("Erf", {}), ("Exp", {}), ("Neg", {}), ("Softplus", {}), ("HardSigmoid", {}),
            ("HardSwish", {}), ("Abs", {}), ("Identity", {}), ("Dropout", {})]
    nodes, prev = [], "x"
    for i, (op, attrs) in enumerate(acts):
        nodes.append(N(op, [prev], [f"a{i}"], **attrs))
        nodes.append(N("Add", [f"a{i}", "x"], [f"b{i}"]))
        prev = f"b{i}"
    nodes += [N("Gemm", [prev, "w", "c"], ["g"], transB=1, alpha=0.5, beta=2.0),
              N("MatMul", ["g", "w2"], ["mm"]), N("Sub", ["mm", "one"], ["s"]),
              N("Mul", ["s", "s"], ["m"]), N("Div", ["m", "three"], ["d"]),
              N("Add", ["d", "one"], ["l0"]), N("Log", ["l0"], ["y"])]
    x = _f(4, 5)
    inits = {"w": _f(6, 5), "c": _f(6), "w2": _f(6, 3), "one": np.array(1.0, np.float32),
             "three": np.array(3.0, np.float32)}
    _compare(_model(nodes, {"x": x}, inits, ["y"]), {"x": x}, tol=1e-4)


def tf2onnx_style() -> onnx.ModelProto:
    """A graph in the shape tf2onnx writes for a Keras CNN (TensorFlow is not installed,
    so it is built by hand): NHWC input transposed to NCHW, Conv + Relu + MaxPool,
    Transpose back, Reshape with a constant shape of (-1, features), MatMul + Add (Dense,
    kernel stored as (in, out)), Softmax; initializer names like tf2onnx's."""
    nodes = [
        N("Transpose", ["input_1"], ["conv2d/Conv2D__6:0"], perm=[0, 3, 1, 2]),
        N("Conv", ["conv2d/Conv2D__6:0", "conv2d/kernel:0", "conv2d/bias:0"],
          ["conv2d/BiasAdd:0"], kernel_shape=[3, 3], strides=[1, 1], dilations=[1, 1],
          group=1, auto_pad="SAME_UPPER", name="conv2d/Conv2D"),
        N("Relu", ["conv2d/BiasAdd:0"], ["conv2d/Relu:0"]),
        N("MaxPool", ["conv2d/Relu:0"], ["max_pooling2d/MaxPool:0"], kernel_shape=[2, 2],
          strides=[2, 2], auto_pad="VALID"),
        N("Transpose", ["max_pooling2d/MaxPool:0"], ["max_pooling2d/MaxPool__12:0"],
          perm=[0, 2, 3, 1]),
        N("Reshape", ["max_pooling2d/MaxPool__12:0", "const_fold_opt__20"],
          ["flatten/Reshape:0"]),
        N("MatMul", ["flatten/Reshape:0", "dense/MatMul/ReadVariableOp:0"],
          ["dense/MatMul:0"]),
        N("Add", ["dense/MatMul:0", "dense/BiasAdd/ReadVariableOp:0"], ["dense/BiasAdd:0"]),
        N("Softmax", ["dense/BiasAdd:0"], ["dense"], axis=-1),
    ]
    inits = {"conv2d/kernel:0": _f(8, 3, 3, 3) * 0.3, "conv2d/bias:0": _f(8) * 0.1,
             "const_fold_opt__20": np.array([-1, 4 * 4 * 8]),
             "dense/MatMul/ReadVariableOp:0": _f(128, 10) * 0.1,
             "dense/BiasAdd/ReadVariableOp:0": _f(10)}
    return _model(nodes, {"input_1": _f(1, 8, 8, 3)}, inits, ["dense"], opset=13,
                  dyn_batch=True)


def test_tf2onnx_style_graph_matches_ort() -> None:
    model = tf2onnx_style()
    for batch in (1, 5):
        _compare(model, {"input_1": _f(batch, 8, 8, 3)})


def test_fine_tuning_an_imported_model_reduces_loss() -> None:
    model = eo.load(tf2onnx_style().SerializeToString(), device="cpu")
    params = dict(model.named_parameters())
    assert "conv2d/kernel:0" in params and params["conv2d/kernel:0"].requires_grad
    assert model.num_parameters() == 8 * 27 + 8 + 1280 + 10
    x = _f(32, 8, 8, 3)
    y = RNG.integers(0, 10, 32)
    opt = optim.SGD(model.parameters(), lr=0.1)
    model.train()
    losses = []
    for _ in range(8):
        loss = nn.functional.nll_loss(model(x).log(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
    # the trained weights are what the module (and a state dict) now holds
    assert "conv2d/kernel:0" in model.state_dict()


def test_dynamic_batch_and_state_dict_names() -> None:
    model = eo.load(tf2onnx_style().SerializeToString(), device="cpu")
    assert model.input_names() == ["input_1"] and model.output_names() == ["dense"]
    for b in (1, 2, 9):
        assert model(_f(b, 8, 8, 3)).shape == (b, 10)
    assert repr(model).startswith("OnnxModule(")


def _gpu_or_skip() -> None:
    gpu_backend_or_skip()


@pytest.mark.gpu
def test_import_runs_and_trains_on_gpu() -> None:
    _gpu_or_skip()
    model = tf2onnx_style()
    x = _f(3, 8, 8, 3)
    _compare(model, {"input_1": x}, device="gpu", tol=1e-4)
    m = eo.load(model.SerializeToString(), device="gpu")
    out = m(x)
    assert out.device == "gpu"
    out.sum().backward()
    grad = dict(m.named_parameters())["conv2d/kernel:0"].grad
    assert grad is not None and grad.device == "gpu"
    nodes = CONV_CASES["convT_stride_outpad"]
    inits = {"wt": _f(3, 2, 3, 3), "bt": _f(2)}
    xi = _f(2, 3, 6, 7)
    _compare(_model(nodes, {"x": xi}, inits, ["y"]), {"x": xi}, device="gpu", tol=1e-4)


def test_cli_info(tmp_path) -> None:
    path = tmp_path / "tf.onnx"
    onnx.save(tf2onnx_style(), path)
    run = subprocess.run([sys.executable, "-m", "engine.onnx", "info", str(path)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "input_1: float32 (N, 8, 8, 3)" in out and "dense: float32" in out
    assert "Conv" in out and "parameters: 1,514" in out and "every op is supported" in out
    bad = tmp_path / "bad.onnx"
    m = tf2onnx_style()
    m.graph.node[2].op_type = "Celu"
    m.graph.node[2].name = "act"
    onnx.save(m, bad)
    run = subprocess.run([sys.executable, "-m", "engine.onnx", "info", str(bad)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 1 and "act: Celu" in run.stdout and "NO" in run.stdout
    desc = eo.describe(str(path))
    assert desc["op_counts"]["Transpose"] == 2 and desc["supported"]


def test_one_table_serves_import_and_export(monkeypatch):
    from engine import functions
    from engine.onnx import exporter, table

    assert exporter.EXPORTERS is table.EXPORTERS  # the exporter has no table of its own
    rows = {k: name for name, row in table.OPS.items() for k in row.export}
    assert rows[functions.Conv2d] == "Conv" and rows[functions.RSub] == "Sub"
    assert {name for name, row in table.OPS.items() if row.layers} >= {
        "Gemm", "BatchNormalization", "Flatten", "GlobalAveragePool"}
    monkeypatch.setitem(table.OPS, "Twin", table.Op(lambda ctx, x: x,
                                                    export={functions.Add: lambda r: None}))
    with pytest.raises(RuntimeError, match="exported by two rows"):
        table._export_tables()

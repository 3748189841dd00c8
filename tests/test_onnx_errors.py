"""Bad input to the ONNX loader: clear errors of the engine's own types, before anything
runs; size limits; external data confined to the model's folder; and a fuzzer that feeds
mutated model files and accepts nothing but `OnnxError` subclasses."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import engine.onnx as eo
from engine.onnx import ops as onnx_ops

N = helper.make_node


def small_cnn(opset: int = 17) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    nodes = [N("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             N("Relu", ["c"], ["r"], name="relu"),
             N("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             N("Shape", ["p"], ["s"]), N("Gather", ["s", "zero"], ["n"], axis=0),
             N("Unsqueeze", ["n", "axes0"], ["n1"]),
             N("Concat", ["n1", "minus1"], ["shape"], axis=0),
             N("Reshape", ["p", "shape"], ["f"], name="flatten"),
             N("Gemm", ["f", "fc", "fcb"], ["y"], transB=1, name="fc")]
    inits = {"w": rng.normal(size=(4, 1, 3, 3)), "b": np.zeros(4), "zero": np.array(0),
             "axes0": np.array([0]), "minus1": np.array([-1]),
             "fc": rng.normal(size=(3, 16)), "fcb": np.zeros(3)}
    graph = helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(v.astype(np.float32) if v.dtype.kind == "f" else v, k)
         for k, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


X = np.random.default_rng(1).normal(size=(2, 1, 4, 4)).astype(np.float32)


def test_valid_model_loads() -> None:
    m = eo.load(small_cnn().SerializeToString(), device="cpu")
    assert m(X).shape == (2, 3)


def test_unsupported_ops_are_listed_together_before_running() -> None:
    m = small_cnn()
    m.graph.node[1].op_type = "Celu"
    m.graph.node[2].op_type = "LpPool"
    m.graph.node.append(N("Exec", ["y"], ["z"], domain="com.example", name="custom"))
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(eo.UnsupportedOpError) as err:
        eo.load(m.SerializeToString(), device="cpu")
    msg = str(err.value)
    for name, op in (("relu", "Celu"), ("pool", "LpPool"), ("custom", "com.example.Exec")):
        assert f"node {name!r}: {op}" in msg
    assert [o[0] for o in err.value.ops] == ["relu", "pool", "custom"]
    assert isinstance(err.value, eo.OnnxError) and isinstance(err.value, ValueError)


def test_unsupported_attribute_settings_are_reported() -> None:
    m = small_cnn()
    m.graph.node[0].attribute.append(helper.make_attribute("auto_pad", "WEIRD"))
    m.graph.node.insert(2, N("Pad", ["r", "pads"], ["r2"], mode="reflect", name="reflect"))
    with pytest.raises(eo.UnsupportedOpError, match="(?s)auto_pad.*reflect"):
        eo.load(m.SerializeToString(), device="cpu")


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9, 0.99])
def test_truncated_files(tmp_path, cut: float) -> None:
    data = small_cnn().SerializeToString()
    path = tmp_path / "t.onnx"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(eo.ModelFileError):
        eo.load(path, device="cpu")


def test_not_an_onnx_file(tmp_path) -> None:
    for payload in (b"", b"\x80\x04\x95 pickle?", b"PK\x03\x04 zip", b"\xff" * 100):
        with pytest.raises(eo.ModelFileError):
            eo.load(payload, device="cpu")
    with pytest.raises(eo.ModelFileError, match="no ONNX model file"):
        eo.load(tmp_path / "missing.onnx")


def test_size_limit(tmp_path) -> None:
    assert eo.DEFAULT_MAX_BYTES == 100 * 2**20
    path = tmp_path / "m.onnx"
    onnx.save(small_cnn(), path)
    with pytest.raises(eo.ModelFileError, match="limit"):
        eo.load(path, device="cpu", max_bytes=100)
    with pytest.raises(eo.ModelFileError, match="limit"):
        eo.load(path.read_bytes(), device="cpu", max_bytes=100)
    eo.load(path, device="cpu", max_bytes=10_000)


def _external(tmp_path, location: str) -> str:
    m = small_cnn()
    w = next(t for t in m.graph.initializer if t.name == "fc")
    raw = w.raw_data
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(len(raw)))):
        w.external_data.add(key=k, value=v)
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "secret.bin").write_bytes(raw)
    (tmp_path / "data" / "fc.bin").write_bytes(raw)
    path = tmp_path / "data" / "m.onnx"
    path.write_bytes(m.SerializeToString())
    return str(path)


def test_external_data_stays_in_the_model_folder(tmp_path) -> None:
    good = eo.load(_external(tmp_path, "fc.bin"), device="cpu")
    ref = eo.load(small_cnn().SerializeToString(), device="cpu")
    assert np.allclose(good(X).numpy(), ref(X).numpy())
    for bad in ("../secret.bin", str(tmp_path / "secret.bin"), "/etc/passwd",
                "sub/../../secret.bin"):
        with pytest.raises(eo.ModelFileError, match="folder|absolute"):
            eo.load(_external(tmp_path, bad), device="cpu")
    (tmp_path / "data" / "link.bin").symlink_to(tmp_path / "secret.bin")
    with pytest.raises(eo.ModelFileError, match="leaves"):
        eo.load(_external(tmp_path, "link.bin"), device="cpu")
    with pytest.raises(eo.ModelFileError, match="external"):  # bytes have no folder
        eo.load(open(_external(tmp_path, "fc.bin"), "rb").read(), device="cpu")


def test_wrong_inputs() -> None:
    m = eo.load(small_cnn().SerializeToString(), device="cpu")
    with pytest.raises(eo.InputError, match="no input named 'image'"):
        m(image=X)
    with pytest.raises(eo.InputError, match="missing input"):
        m()
    with pytest.raises(eo.InputError, match=r"shape \(N, 1, 4, 4\), got \(2, 3, 4, 4\)"):
        m(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(eo.InputError, match="shape"):
        m(np.zeros((1, 4, 4), np.float32))
    with pytest.raises(eo.InputError, match="must be float32, got float64"):
        m(X.astype(np.float64))
    with pytest.raises(eo.InputError, match="takes 1 input"):
        m(X, X)


def test_structural_errors() -> None:
    m = small_cnn()
    m.graph.node[1].input[0] = "nowhere"
    with pytest.raises(eo.ModelFileError, match="nowhere"):
        eo.load(m.SerializeToString(), device="cpu")
    m = small_cnn()  # a cycle
    m.graph.node[0].input[0] = "y"
    with pytest.raises(eo.ModelFileError, match="cycle"):
        eo.load(m.SerializeToString(), device="cpu")
    m = small_cnn()
    m.graph.initializer[0].raw_data = m.graph.initializer[0].raw_data[:-4]
    with pytest.raises(eo.ModelFileError, match="bytes of data"):
        eo.load(m.SerializeToString(), device="cpu")
    m = small_cnn(opset=3)
    with pytest.raises(eo.UnsupportedOpError, match="opset 3"):
        eo.load(m.SerializeToString(), device="cpu")
    m = small_cnn()  # a node failing at run time names itself
    m.graph.node[0].attribute.append(helper.make_attribute("group", 3))
    with pytest.raises(eo.ExecutionError, match="'conv' \\(Conv\\)"):
        eo.load(m.SerializeToString(), device="cpu")(X)


SEEDS = [small_cnn().SerializeToString(), small_cnn(13).SerializeToString()]
FUZZ_LIMITS = eo.Limits(max_elements=1 << 22, max_const_bytes=64 << 20, max_run_bytes=256 << 20)


@settings(max_examples=150, deadline=2000, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(seed=st.sampled_from(SEEDS),
       edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255),
                                st.sampled_from(["set", "insert", "delete"])),
                      min_size=1, max_size=8),
       cut=st.one_of(st.none(), st.floats(0.05, 1.0)))
def test_fuzz_loader_raises_only_onnx_errors(seed: bytes, edits, cut) -> None:
    data = bytearray(seed)
    for pos, byte, kind in edits:
        i = int(pos * len(data))
        if kind == "set" and data:
            data[i] = byte
        elif kind == "insert":
            data.insert(i, byte)
        elif data:
            del data[i]
    if cut is not None:
        data = data[: int(len(data) * cut)]
    try:  # small limits keep a mutated shape from allocating gigabytes
        model = eo.load(bytes(data), device="cpu", limits=FUZZ_LIMITS)
        model(*[np.zeros((2, 1, 4, 4), np.float32) for _ in model.input_names()])
    except eo.OnnxError:
        pass


_OPS = sorted(onnx_ops.OPS)
_INTS = [-2**62, -5, -1, 0, 1, 2, 3, 7, 100, 2**31, 2**62]


@settings(max_examples=100, deadline=2000, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(opset=st.sampled_from([11, 13, 17, 18]),
       edits=st.lists(st.tuples(st.integers(0, 8), st.sampled_from(["op", "attr", "input"]),
                                st.integers(0, 1000)), min_size=1, max_size=4))
def test_fuzz_structure_raises_only_onnx_errors(opset: int, edits) -> None:
    """Well-formed protobuf, wrong content: swapped ops, absurd attributes, rewired inputs
    (what byte flips rarely reach)."""
    m = small_cnn(opset)
    names = ["x"] + [t.name for t in m.graph.initializer] + \
        [o for n in m.graph.node for o in n.output]
    for i, kind, r in edits:
        node = m.graph.node[i]
        if kind == "op":
            node.op_type = _OPS[r % len(_OPS)]
        elif kind == "attr" and node.attribute:
            a = node.attribute[r % len(node.attribute)]
            if a.type == onnx.AttributeProto.INTS and a.ints:
                a.ints[r % len(a.ints)] = _INTS[r % len(_INTS)]
            elif a.type == onnx.AttributeProto.INT:
                a.i = _INTS[r % len(_INTS)]
        elif node.input:
            node.input[r % len(node.input)] = names[r % len(names)]
    try:
        eo.load(m.SerializeToString(), device="cpu", limits=FUZZ_LIMITS)(X)
    except eo.OnnxError:
        pass

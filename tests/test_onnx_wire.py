"""The pure-Python ONNX reader (`engine.onnx.wire`) against onnx's own protobuf parser:
same schema (field numbers, names, types), same decoded values on real files, and only
`ModelFileError` for malformed bytes. It is what lets the browser build load models
without the `onnx` package, so `engine.onnx.load` must not import onnx either."""

from __future__ import annotations

import math
import pathlib
import struct
import subprocess
import sys

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import engine.onnx as eo
from engine.onnx import wire

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODELS = ROOT / "webapp" / "models"
ONNX_DATA = pathlib.Path(onnx.__file__).parent / "backend" / "test" / "data"

PROTOS = {"ModelProto": onnx.ModelProto, "OperatorSetIdProto": onnx.OperatorSetIdProto,
          "StringStringEntryProto": onnx.StringStringEntryProto,
          "GraphProto": onnx.GraphProto, "NodeProto": onnx.NodeProto,
          "AttributeProto": onnx.AttributeProto, "TensorProto": onnx.TensorProto,
          "Segment": onnx.TensorProto.Segment, "ValueInfoProto": onnx.ValueInfoProto,
          "TypeProto": onnx.TypeProto, "Tensor": onnx.TypeProto.Tensor,
          "TensorShapeProto": onnx.TensorShapeProto,
          "Dimension": onnx.TensorShapeProto.Dimension}
# protobuf FieldDescriptor type codes
TYPE_CODES = {"double": 1, "float": 2, "int64": 3, "uint64": 4, "int32": 5, "string": 9,
              "bytes": 12, "enum": 14}


def test_schema_matches_onnx_descriptors() -> None:
    assert set(PROTOS) == set(wire.SCHEMA)
    for name, fields in wire.SCHEMA.items():
        desc = PROTOS[name].DESCRIPTOR
        for number, (fname, kind, repeated) in fields.items():
            f = desc.fields_by_number.get(number)
            assert f is not None and f.name == fname, f"{name}.{fname} is not field {number}"
            assert f.is_repeated == repeated, f"{name}.{fname} repeated"
            if kind in wire.SCHEMA or kind == "present":
                assert f.type == 11, f"{name}.{fname} is not a message"
                if kind != "present":
                    assert f.message_type.name == kind
            else:
                assert f.type == TYPE_CODES[kind], f"{name}.{fname}: {kind} vs {f.type}"
        for oneof in wire.ONEOFS.get(name, ()):
            assert desc.fields_by_name[oneof].containing_oneof is not None


def test_enum_names_match_onnx() -> None:
    for code, name in wire.DATA_TYPES.items():
        assert TensorProto.DataType.Name(code) == name
    for code, name in wire.ATTRIBUTE_TYPES.items():
        assert onnx.AttributeProto.AttributeType.Name(code) == name
    assert wire.EXTERNAL == TensorProto.EXTERNAL


def _same_float(a: float, b: float, kind: str) -> bool:
    code = "<f" if kind == "float" else "<d"
    return (math.isnan(a) and math.isnan(b)) or struct.pack(code, a) == struct.pack(code, b)


def assert_same(ours: wire.Message, theirs: object, where: str = "model") -> None:
    """Every field the schema knows reads the same as onnx's parsed message."""
    for fname, kind, repeated in wire.SCHEMA[ours._type].values():
        a, b = getattr(ours, fname), getattr(theirs, fname)
        here = f"{where}.{fname}"
        if repeated:
            assert len(a) == len(b), here
            pairs = list(zip(a, b))
        else:
            assert ours.HasField(fname) == theirs.HasField(fname), here
            pairs = [(a, b)]
        for i, (x, y) in enumerate(pairs):
            at = f"{here}[{i}]" if repeated else here
            if kind in wire.SCHEMA:
                assert_same(x, y, at)
            elif kind == "present":
                continue
            elif kind in ("float", "double"):
                assert _same_float(x, y, kind), at
            else:
                assert x == y, at


def both(data: bytes) -> tuple[wire.Message, onnx.ModelProto]:
    theirs = onnx.ModelProto()
    theirs.ParseFromString(data)
    return wire.parse(data), theirs


def every_attribute_model() -> onnx.ModelProto:
    """A model exercising every field kind: all attribute types, packed and unpacked
    numbers, negative int32/int64, big uint64, external data, symbolic dims, a subgraph."""
    sub = helper.make_graph([helper.make_node("Identity", ["a"], ["b"])], "sub",
                            [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1])],
                            [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])])
    t16 = numpy_helper.from_array(np.array([1.5, -2.0], np.float16), "h")
    tneg = helper.make_tensor("neg", TensorProto.INT32, [3], [-1, -(2**31), 7])
    tu64 = helper.make_tensor("u64", TensorProto.UINT64, [2], [2**64 - 1, 3])
    tdbl = helper.make_tensor("dbl", TensorProto.DOUBLE, [2], [math.pi, -0.0])
    tflt = helper.make_tensor("flt", TensorProto.FLOAT, [2, 1], [float("nan"), float("inf")])
    text = TensorProto(name="ext", data_type=TensorProto.FLOAT, dims=[4])
    text.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "w.bin"), ("offset", "0"), ("length", "16")):
        text.external_data.add(key=k, value=v)
    node = helper.make_node(
        "Custom", ["x", ""], ["y"], name="all attrs", domain="ai.example", f=0.25, i=-5,
        s=b"\xff bytes", t=tneg, g=sub, floats=[1.0, -2.5], ints=[-(2**62), 0, 3],
        strings=[b"a", b"\x00b"], tensors=[t16, tu64], graphs=[sub])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, None])
    y = onnx.ValueInfoProto(name="y")
    y.type.sequence_type.elem_type.tensor_type.elem_type = TensorProto.FLOAT
    graph = helper.make_graph([node], "g ünïcode", [x], [y], [tdbl, tflt, text, t16])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                helper.make_opsetid("ai.example", 1)],
                          producer_name="tests", producer_version="1")
    m.model_version = -3
    helper.set_model_props(m, {"k": "v"})
    return m


def test_every_field_kind_decodes_like_onnx() -> None:
    ours, theirs = both(every_attribute_model().SerializeToString())
    assert_same(ours, theirs)
    attrs = {a.name: a for a in ours.graph.node[0].attribute}
    assert attrs["i"].i == -5 and attrs["ints"].ints == [-(2**62), 0, 3]
    assert attrs["t"].t.int32_data == [-1, -(2**31), 7]
    assert attrs["tensors"].tensors[1].uint64_data == [2**64 - 1, 3]
    assert attrs["g"].HasField("g") and not attrs["f"].HasField("g")
    assert ours.graph.output[0].type.HasField("sequence_type")
    assert not ours.graph.output[0].type.HasField("tensor_type")
    dims = ours.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == 3
    assert not dims[2].HasField("dim_value") and not dims[2].HasField("dim_param")
    assert ours.ByteSize() == theirs.ByteSize()


def test_unpacked_repeated_numbers_and_merged_messages() -> None:
    # float_data packed=true in onnx.proto; hand-encode it unpacked (legal protobuf),
    # and send the graph twice (protobuf merges a repeated singular message)
    key = lambda number, wt: bytes([number << 3 | wt])  # noqa: E731
    floats = b"".join(key(4, 5) + struct.pack("<f", v) for v in (1.0, 2.0, 3.0))
    tensor = key(1, 0) + b"\x03" + key(2, 0) + b"\x01" + floats + key(8, 2) + b"\x01w"
    graph1 = key(5, 2) + bytes([len(tensor)]) + tensor
    graph2 = key(2, 2) + b"\x02g2"
    data = (key(7, 2) + bytes([len(graph1)]) + graph1 + key(7, 2) + bytes([len(graph2)])
            + graph2)
    ours, theirs = both(data)
    assert_same(ours, theirs)
    assert ours.graph.initializer[0].float_data == [1.0, 2.0, 3.0]
    assert ours.graph.name == "g2"


def onnx_files() -> list[pathlib.Path]:
    files = sorted(MODELS.glob("*.onnx")) + sorted(ONNX_DATA.rglob("*.onnx"))
    assert len(files) > 50, "expected onnx's backend test models"
    return files


def test_real_files_decode_like_onnx() -> None:
    for path in onnx_files():
        ours, theirs = both(path.read_bytes())
        assert_same(ours, theirs, path.name)


def test_shipped_models_load_without_the_onnx_package() -> None:
    code = """
import sys
sys.modules["onnx"] = None  # as in Pyodide: any `import onnx` fails
import numpy as np
import engine.onnx as eo
m = eo.load("webapp/models/lenet5.onnx", device="cpu")
print(m(np.zeros((1, 1, 28, 28), np.float32)).shape)
try:
    eo.export(m, np.zeros((1, 1, 28, 28), np.float32))
except eo.ExportError as exc:
    print("export:", exc)
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "(1, 10)" in out.stdout
    assert "export: exporting ONNX needs the onnx package" in out.stdout


MODEL_BYTES = (MODELS / "lenet5.onnx").read_bytes()


def test_truncated_files_fail_where_onnx_fails_and_never_load() -> None:
    for cut in range(1, len(MODEL_BYTES), 397):
        blob = MODEL_BYTES[:cut]
        theirs = onnx.ModelProto()
        try:
            theirs.ParseFromString(blob)
            onnx_ok = True
        except Exception:
            onnx_ok = False
        try:
            ours = wire.parse(blob)
        except eo.ModelFileError as exc:
            assert not onnx_ok, f"cut {cut}: onnx parses it, we said {exc}"
        else:
            assert onnx_ok, f"cut {cut}: onnx rejects it, we parsed it"
            assert_same(ours, theirs, f"cut {cut}")
        with pytest.raises(eo.OnnxError):
            eo.load(blob, device="cpu")


@pytest.mark.parametrize("data, why", [
    (b"\x08" + b"\xff" * 11, "longer than 10 bytes"),
    (b"\x3a\x05ab", "runs past the end"),
    (b"\x0b", "wire type 3"),
    (b"\x00\x01", "field number 0"),
    (b"\x12\x02\xc3\x28", "UTF-8"),
    (b"\x0d\x01\x02", "fixed-size"),
])
def test_malformed_bytes_name_the_problem(data: bytes, why: str) -> None:
    with pytest.raises(eo.ModelFileError, match=why):
        wire.parse(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_files_agree_with_onnx_or_fail_cleanly(data: st.DataObject) -> None:
    buf = bytearray(MODEL_BYTES[:4000])  # the head: model fields, graph, first nodes
    for _ in range(data.draw(st.integers(1, 4))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    blob = bytes(buf[:data.draw(st.integers(1, len(buf)))])
    try:
        ours = wire.parse(blob)
    except eo.ModelFileError:
        return
    theirs = onnx.ModelProto()
    try:
        theirs.ParseFromString(blob)
    except Exception:  # onnx is stricter in places (e.g. groups in unknown fields)
        return
    assert_same(ours, theirs)

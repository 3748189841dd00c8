"""A pure-Python reader for the protobuf messages of an ONNX file.

Why not `onnx.ModelProto.ParseFromString`: the browser build runs in Pyodide, which has
no `onnx` package, and loading a model only needs reading. This decoder knows the fields
the importer uses (table `SCHEMA`, checked against onnx's own descriptors in the tests),
skips every other field as protobuf does, and turns any malformed byte into a
`ModelFileError`. Decoded messages read like onnx's: `model.graph.node[0].op_type`,
absent fields give their defaults, `HasField` tells presence.
"""

from __future__ import annotations

import sys
from array import array
from typing import Any

from .errors import ModelFileError
from .limits import DEFAULT, DecodeBudget, Limits

# TensorProto.DataType and AttributeProto.AttributeType (onnx.proto)
DATA_TYPES = {
    0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32",
    7: "INT64", 8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32",
    13: "UINT64", 14: "COMPLEX64", 15: "COMPLEX128", 16: "BFLOAT16", 17: "FLOAT8E4M3FN",
    18: "FLOAT8E4M3FNUZ", 19: "FLOAT8E5M2", 20: "FLOAT8E5M2FNUZ", 21: "UINT4", 22: "INT4",
    23: "FLOAT4E2M1",
}
ATTRIBUTE_TYPES = {
    0: "UNDEFINED", 1: "FLOAT", 2: "INT", 3: "STRING", 4: "TENSOR", 5: "GRAPH", 6: "FLOATS",
    7: "INTS", 8: "STRINGS", 9: "TENSORS", 10: "GRAPHS", 11: "SPARSE_TENSOR",
    12: "SPARSE_TENSORS", 13: "TYPE_PROTO", 14: "TYPE_PROTOS",
}
EXTERNAL = 1  # TensorProto.DataLocation

# message -> {field number: (name, kind, repeated)}. Kinds: the protobuf scalar types, a
# message name, or "present" (a message whose contents the importer never reads: only its
# presence is kept, so a nested subgraph or sequence type cannot recurse here).
SCHEMA: dict[str, dict[int, tuple[str, str, bool]]] = {
    "ModelProto": {1: ("ir_version", "int64", False), 2: ("producer_name", "string", False),
                   3: ("producer_version", "string", False), 4: ("domain", "string", False),
                   5: ("model_version", "int64", False), 6: ("doc_string", "string", False),
                   7: ("graph", "GraphProto", False),
                   8: ("opset_import", "OperatorSetIdProto", True),
                   14: ("metadata_props", "StringStringEntryProto", True)},
    "OperatorSetIdProto": {1: ("domain", "string", False), 2: ("version", "int64", False)},
    "StringStringEntryProto": {1: ("key", "string", False), 2: ("value", "string", False)},
    "GraphProto": {1: ("node", "NodeProto", True), 2: ("name", "string", False),
                   5: ("initializer", "TensorProto", True),
                   10: ("doc_string", "string", False),
                   11: ("input", "ValueInfoProto", True),
                   12: ("output", "ValueInfoProto", True),
                   13: ("value_info", "ValueInfoProto", True),
                   15: ("sparse_initializer", "present", True)},
    "NodeProto": {1: ("input", "string", True), 2: ("output", "string", True),
                  3: ("name", "string", False), 4: ("op_type", "string", False),
                  5: ("attribute", "AttributeProto", True), 6: ("doc_string", "string", False),
                  7: ("domain", "string", False), 8: ("overload", "string", False)},
    "AttributeProto": {1: ("name", "string", False), 2: ("f", "float", False),
                       3: ("i", "int64", False), 4: ("s", "bytes", False),
                       5: ("t", "TensorProto", False), 6: ("g", "present", False),
                       7: ("floats", "float", True), 8: ("ints", "int64", True),
                       9: ("strings", "bytes", True), 10: ("tensors", "TensorProto", True),
                       11: ("graphs", "present", True), 13: ("doc_string", "string", False),
                       14: ("tp", "present", False), 20: ("type", "enum", False),
                       21: ("ref_attr_name", "string", False),
                       22: ("sparse_tensor", "present", False)},
    "TensorProto": {1: ("dims", "int64", True), 2: ("data_type", "int32", False),
                    3: ("segment", "Segment", False), 4: ("float_data", "float", True),
                    5: ("int32_data", "int32", True), 6: ("string_data", "bytes", True),
                    7: ("int64_data", "int64", True), 8: ("name", "string", False),
                    9: ("raw_data", "bytes", False), 10: ("double_data", "double", True),
                    11: ("uint64_data", "uint64", True), 12: ("doc_string", "string", False),
                    13: ("external_data", "StringStringEntryProto", True),
                    14: ("data_location", "enum", False)},
    "Segment": {1: ("begin", "int64", False), 2: ("end", "int64", False)},
    "ValueInfoProto": {1: ("name", "string", False), 2: ("type", "TypeProto", False),
                       3: ("doc_string", "string", False)},
    "TypeProto": {1: ("tensor_type", "Tensor", False), 4: ("sequence_type", "present", False),
                  5: ("map_type", "present", False), 6: ("denotation", "string", False),
                  7: ("opaque_type", "present", False),
                  8: ("sparse_tensor_type", "present", False),
                  9: ("optional_type", "present", False)},
    "Tensor": {1: ("elem_type", "int32", False), 2: ("shape", "TensorShapeProto", False)},
    "TensorShapeProto": {1: ("dim", "Dimension", True)},
    "Dimension": {1: ("dim_value", "int64", False), 2: ("dim_param", "string", False),
                  3: ("denotation", "string", False)},
}
# fields of a oneof: setting one clears the others, as in protobuf
ONEOFS = {"TypeProto": {"tensor_type", "sequence_type", "map_type", "opaque_type",
                        "sparse_tensor_type", "optional_type"},
          "Dimension": {"dim_value", "dim_param"}}

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_WIRE = {"int64": _VARINT, "int32": _VARINT, "uint64": _VARINT, "enum": _VARINT,
         "float": _I32, "double": _I64}
_FIXED = {"float": ("f", 4), "double": ("d", 8)}
_DEFAULTS = {"string": "", "bytes": b"", "float": 0.0, "double": 0.0}
_BY_NAME = {m: {name: (kind, rep) for name, kind, rep in f.values()} for m, f in SCHEMA.items()}
_MAX_DEPTH = 16  # the schema nests at most 7 deep (model.graph.node.attribute.t...)


class Message:
    """One decoded message: fields by name, defaults for absent ones."""

    __slots__ = ("_type", "_fields", "_size")

    def __init__(self, type_name: str) -> None:
        self._type = type_name
        self._fields: dict[str, Any] = {}
        self._size = 0

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._fields[name]
        except KeyError:
            pass
        try:
            kind, repeated = _BY_NAME.get(self._type, {})[name]
        except KeyError:
            raise AttributeError(f"{self._type} has no field {name!r}") from None
        if repeated:
            return ()
        if kind in SCHEMA or kind == "present":
            return Message(kind)
        return _DEFAULTS.get(kind, 0)

    def HasField(self, name: str) -> bool:  # noqa: N802  (protobuf's name)
        if name not in _BY_NAME.get(self._type, {}):
            raise ValueError(f"{self._type} has no field {name!r}")
        return name in self._fields

    def ByteSize(self) -> int:  # noqa: N802
        return self._size

    def __repr__(self) -> str:
        return f"<{self._type} {sorted(self._fields)}>"


def parse(data: bytes | bytearray | memoryview, type_name: str = "ModelProto",
          limits: Limits = DEFAULT) -> Message:
    """Decode a serialized message; raises ModelFileError for anything malformed or over
    `limits` (messages built, numbers decoded one by one: see `limits.DecodeBudget`)."""
    buf = memoryview(data).cast("B")
    msg = Message(type_name)
    _decode(buf, 0, len(buf), msg, 0, DecodeBudget(limits))
    msg._size = len(buf)
    return msg


def _fail(what: str) -> ModelFileError:
    return ModelFileError(f"not a valid ONNX file (truncated or corrupt): {what}")


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise _fail("a number runs past the end of its message")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _fail("a number is longer than 10 bytes")


def _scalar(kind: str, v: int) -> int:
    if kind == "uint64":
        return v & 0xFFFFFFFFFFFFFFFF
    v &= 0xFFFFFFFFFFFFFFFF  # int64/int32/enum: two's complement, as protobuf does
    if v >= 1 << 63:
        v -= 1 << 64
    if kind != "int64":  # int32 and enums are truncated to 32 bits
        v &= 0xFFFFFFFF
        if v >= 1 << 31:
            v -= 1 << 32
    return v


def _fixed(kind: str, raw: memoryview) -> list[float]:
    code, size = _FIXED[kind]
    if len(raw) % size:
        raise _fail(f"packed {kind} data is not a multiple of {size} bytes")
    out = array(code, raw.tobytes())
    if sys.byteorder != "little":
        out.byteswap()
    return out.tolist()


def _store(values: dict[str, Any], name: str, repeated: bool, value: Any) -> None:
    """One occurrence of a field: appended when repeated, else the last one wins."""
    if repeated:
        values.setdefault(name, []).append(value)
    else:
        values[name] = value


_CONTINUATION = bytes(range(0x80))  # deleted by translate: what is left are 0x80.. bytes


def _packed_count(raw: memoryview, kind: str) -> int:
    """How many numbers a packed field holds, counted at C speed before decoding."""
    if kind in _FIXED:
        return len(raw) // _FIXED[kind][1]
    return len(raw) - len(raw.tobytes().translate(None, _CONTINUATION))


def _decode(buf: memoryview, pos: int, end: int, msg: Message, depth: int,
            budget: DecodeBudget) -> None:
    if depth > _MAX_DEPTH:
        raise _fail("messages nest too deeply")
    fields = SCHEMA[msg._type]
    values = msg._fields
    oneof = ONEOFS.get(msg._type, ())
    while pos < end:
        budget.value()
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _fail("field number 0")
        if wire == _VARINT:
            v, pos = _varint(buf, pos, end)
            raw = None
        elif wire == _I64 or wire == _I32:
            n = 8 if wire == _I64 else 4
            if pos + n > end:
                raise _fail("a fixed-size number runs past the end of its message")
            raw, pos = buf[pos:pos + n], pos + n
        elif wire == _LEN:
            n, pos = _varint(buf, pos, end)
            if pos + n > end:
                raise _fail(f"a field of {n} bytes runs past the end of its message")
            raw, pos = buf[pos:pos + n], pos + n
        else:  # groups (3, 4) are not used by ONNX; 6 and 7 do not exist
            raise _fail(f"unsupported wire type {wire}")
        spec = fields.get(number)
        if spec is None:
            continue  # an unknown field: skipped, as protobuf does
        name, kind, repeated = spec
        if name in oneof:
            for other in oneof:
                values.pop(other, None)
        if wire == _LEN and kind in SCHEMA:
            budget.message()
            if repeated:
                sub = Message(kind)
                values.setdefault(name, []).append(sub)
            else:  # a repeated occurrence merges into the first, as protobuf does
                sub = values.setdefault(name, Message(kind))
            _decode(buf, pos - len(raw), pos, sub, depth + 1, budget)
            sub._size = len(raw)
        elif wire == _LEN and kind == "present":
            budget.message()
            _store(values, name, repeated, Message(kind))
        elif wire == _LEN and kind in ("string", "bytes"):
            if kind == "bytes":
                value: Any = raw.tobytes()
            else:
                try:
                    value = str(raw, "utf-8")
                except UnicodeDecodeError:
                    raise _fail(f"field {name!r} is not valid UTF-8 text") from None
            _store(values, name, repeated, value)
        elif wire == _LEN and repeated and kind in _WIRE:  # packed numbers
            budget.value(_packed_count(raw, kind))
            if kind in _FIXED:
                vals = _fixed(kind, raw)
            else:
                vals, p, stop = [], pos - len(raw), pos
                while p < stop:
                    v, p = _varint(buf, p, stop)
                    vals.append(_scalar(kind, v))
            values.setdefault(name, []).extend(vals)
        elif wire == _WIRE.get(kind, -1):
            _store(values, name, repeated,
                   _scalar(kind, v) if raw is None else _fixed(kind, raw)[0])
        # else: a known field with another wire type is kept aside by protobuf as an
        # unknown field; the importer would never read it, so it is skipped


__all__ = ["parse", "Message", "SCHEMA", "ONEOFS", "DATA_TYPES", "ATTRIBUTE_TYPES",
           "EXTERNAL"]

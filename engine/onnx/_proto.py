"""Careful readers for ONNX protobuf pieces: tensors, attributes and value types.

The loader never hands untrusted protos to ONNX's C++ checker or shape inference (a bad
file must give an `OnnxError`, not a crash); these small readers check every size and
type themselves before NumPy sees a byte.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .errors import LimitError, ModelFileError
from .limits import DEFAULT, cut, short
from .wire import ATTRIBUTE_TYPES, DATA_TYPES, EXTERNAL

# ONNX element type -> NumPy dtype (the ones a CNN/MLP file can reasonably hold)
_CODES = {name: code for code, name in DATA_TYPES.items()}
DTYPES: dict[int, np.dtype] = {_CODES[name]: np.dtype(dt) for name, dt in (
    ("FLOAT", np.float32), ("DOUBLE", np.float64), ("FLOAT16", np.float16),
    ("INT8", np.int8), ("INT16", np.int16), ("INT32", np.int32), ("INT64", np.int64),
    ("UINT8", np.uint8), ("UINT16", np.uint16), ("UINT32", np.uint32),
    ("UINT64", np.uint64), ("BOOL", np.bool_))}
ONNX_TYPE = {dt: code for code, dt in DTYPES.items()}
_ATTR = {name: code for code, name in ATTRIBUTE_TYPES.items()}

MAX_ELEMENTS = DEFAULT.max_elements  # per tensor, unless the loader passes its Limits


def type_name(code: int) -> str:
    return DATA_TYPES.get(code, f"type {code}")


def dtype_of(code: int, what: str) -> np.dtype:
    if code not in DTYPES:
        raise ModelFileError(f"{what}: element type {type_name(code)} is not supported "
                             "(use float32, float64, integer or bool tensors)")
    return DTYPES[code]


def check_elements(shape: tuple[int, ...], what: str, max_elements: int = MAX_ELEMENTS) -> int:
    n = 1
    for d in shape:
        if d < 0:
            raise ModelFileError(f"{what}: negative dimension in shape {cut(shape, 200)}")
        n *= d
        if n > max_elements:
            raise LimitError(f"{what}: shape {cut(shape, 200)} has more than "
                             f"{max_elements:,} elements, over the limit per tensor "
                             "(Limits.max_elements)")
    return n


def read_tensor(t: Any, what: str, external: Any = None,
                max_elements: int = MAX_ELEMENTS) -> np.ndarray:
    """A TensorProto as a NumPy array, with every length checked.

    `external(location, offset, length) -> bytes` reads external data; None refuses it.
    """
    what = f"{what} {short(t.name)}" if t.name else what
    dt = dtype_of(t.data_type, what)
    shape = tuple(int(d) for d in t.dims)
    n = check_elements(shape, what, max_elements)
    if t.segment.end or t.segment.begin:
        raise ModelFileError(f"{what}: segmented tensors are not supported")
    if t.data_location == EXTERNAL:
        if external is None:
            raise ModelFileError(f"{what}: stored as external data, which needs a model "
                                 "loaded from a file path (not bytes)")
        info = {e.key: e.value for e in t.external_data}
        try:
            offset, length = int(info.get("offset", 0)), info.get("length")
            length = None if length is None else int(length)
        except ValueError:
            raise ModelFileError(f"{what}: bad external-data offset/length") from None
        raw = external(info.get("location", ""), offset, length, n * dt.itemsize, what)
        return _from_raw(raw, dt, shape, n, what)
    if t.HasField("raw_data"):
        return _from_raw(t.raw_data, dt, shape, n, what)
    if dt == np.float32:
        vals, kind = t.float_data, np.float32
    elif dt == np.float64:
        vals, kind = t.double_data, np.float64
    elif dt == np.int64:
        vals, kind = t.int64_data, np.int64
    elif dt in (np.dtype(np.uint32), np.dtype(np.uint64)):
        vals, kind = t.uint64_data, np.uint64
    else:  # int8/16/32, uint8/16, bool and float16 (as bits) live in int32_data
        vals, kind = t.int32_data, np.int32
    if len(vals) != n:
        raise ModelFileError(f"{what}: holds {len(vals)} values but its shape {shape} needs "
                             f"{n}")
    arr = np.asarray(vals, dtype=kind)
    if dt == np.float16:
        arr = arr.astype(np.uint16).view(np.float16)
    return arr.astype(dt).reshape(shape)


def _from_raw(raw: bytes, dt: np.dtype, shape: tuple[int, ...], n: int, what: str):
    if len(raw) != n * dt.itemsize:
        raise ModelFileError(f"{what}: has {len(raw)} bytes of data but shape {shape} of "
                             f"{dt} needs {n * dt.itemsize} (truncated or corrupt file?)")
    return np.frombuffer(raw, dtype=dt.newbyteorder("<")).astype(dt).reshape(shape)


def read_attribute(a: Any, what: str) -> Any:
    """An attribute's value: int, float, str, list, or a NumPy array for tensors."""
    ty = a.type
    if ty == _ATTR["INT"]:
        return int(a.i)
    if ty == _ATTR["FLOAT"]:
        return float(a.f)
    if ty == _ATTR["STRING"]:
        return a.s.decode("utf-8", errors="replace")
    if ty == _ATTR["INTS"]:
        return [int(v) for v in a.ints]
    if ty == _ATTR["FLOATS"]:
        return [float(v) for v in a.floats]
    if ty == _ATTR["STRINGS"]:
        return [s.decode("utf-8", errors="replace") for s in a.strings]
    if ty == _ATTR["TENSOR"]:
        return read_tensor(a.t, f"{what} attribute {short(a.name)}")
    return UnsupportedAttribute(a.name, ty)


class UnsupportedAttribute:
    """Stands in for a subgraph / sparse / type attribute: the op check reports it."""

    def __init__(self, name: str, ty: int) -> None:
        self.name = name
        self.kind = ATTRIBUTE_TYPES.get(ty, f"type {ty}")

    def __repr__(self) -> str:
        return f"<{self.kind} attribute {short(self.name)}>"


def value_signature(vi: Any, what: str) -> tuple[np.dtype, tuple[int | str | None, ...] | None]:
    """(dtype, shape) of a graph input/output; dims are ints, names or None (unknown)."""
    if not vi.type.HasField("tensor_type"):
        raise ModelFileError(f"{what} {short(vi.name)}: only tensor inputs and outputs are "
                             "supported (not sequences, maps or optionals)")
    tt = vi.type.tensor_type
    dt = dtype_of(tt.elem_type, f"{what} {short(vi.name)}")
    if not tt.HasField("shape"):
        return dt, None
    dims: list[int | str | None] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dt, tuple(dims)


def safe_external_path(base_dir: str, location: str, what: str) -> str:
    """Resolve an external-data location, refusing anything outside the model's folder."""
    if not location or "\x00" in location:
        raise ModelFileError(f"{what}: external data has no valid location")
    if os.path.isabs(location) or location.startswith(("/", "\\")) or ":" in location:
        raise ModelFileError(f"{what}: external data location {short(location)} is absolute; it "
                             "must be a file inside the model's folder")
    base = os.path.realpath(base_dir)
    path = os.path.realpath(os.path.join(base, location))
    if os.path.commonpath([base, path]) != base:
        raise ModelFileError(f"{what}: external data location {short(location)} leaves the model's "
                             f"folder {base_dir!r}; refusing to read it")
    if not os.path.isfile(path):
        raise ModelFileError(f"{what}: external data file {short(location)} not found next to the "
                             "model")
    return path

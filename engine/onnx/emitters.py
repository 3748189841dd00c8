"""engine -> ONNX, per op: how one traced record (a core Function, a fused kernel, or a
whole known layer) is written as ONNX nodes. Which record an emitter serves is said by
the op's row in `table.py`, beside its import.

An emitter gets the exporter's record `r` (`r.arg(i)` names an input, `r.emit(op, ...)`
writes the node that produces the record's output, `r.kw` holds the op's parameters); a
layer emitter also gets the module. Nothing here needs the onnx package: the exporter's
builder makes the protos.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..backends.window import conv_transpose_out_size
from .errors import ExportError

INT_MAX = 2**63 - 1
_Rec = Any  # exporter._Rec: one traced op seen in both traces


# -- core ops and fused kernels ------------------------------------------------------

def binary(op: str) -> Callable[[_Rec], None]:
    return lambda r: r.emit(op, [r.arg(0), r.arg(1)])


def unary(op: str, **attrs: Callable[[_Rec], Any]) -> Callable[[_Rec], None]:
    return lambda r: r.emit(op, [r.arg(0)], **{k: f(r) for k, f in attrs.items()})


def reverse(op: str) -> Callable[[_Rec], None]:  # scalar (op) tensor
    return lambda r: r.emit(op, [r.scalar(r.args[1]), r.arg(0)])


def clip(r: _Rec) -> None:
    lo, hi = r.kw.get("lo"), r.kw.get("hi")
    r.emit("Clip", [r.arg(0), "" if lo is None else r.scalar(lo),
                    "" if hi is None else r.scalar(hi)])


def reshape(r: _Rec) -> None:
    shape = list(r.out.shape)
    batch = r.batch_dims()
    if len(batch) > 1:
        raise ExportError(f"{r.where}: reshape to {r.out.shape} has {len(batch)} dims that "
                          "depend on the batch size; only one can (it becomes -1)")
    for i in batch:
        shape[i] = -1
    r.emit("Reshape", [r.arg(0), r.b.ints(shape)])


def expand(r: _Rec) -> None:
    shape, x = list(r.out.shape), r.args[0]
    lead = len(shape) - x.ndim
    for i in r.batch_dims():
        if i < lead or x.shape[i - lead] != shape[i]:
            raise ExportError(f"{r.where}: broadcasting to a batch-dependent shape is not "
                              "exportable; broadcast with an operation instead (e.g. x + y)")
        shape[i] = 1  # Expand broadcasts both ways: 1 keeps the input's (batch) dim
    r.emit("Expand", [r.arg(0), r.b.ints(shape)])


def getitem(r: _Rec) -> None:
    x, index = r.args[0], list(r.kw["index"])
    if any(i is Ellipsis for i in index):
        at = index.index(Ellipsis)
        fill = x.ndim - sum(1 for i in index if i is not None and i is not Ellipsis)
        index[at: at + 1] = [slice(None)] * fill
    arrays = [i for i in index if isinstance(i, np.ndarray) and i.ndim > 0]
    ints = [i for i in index if isinstance(i, (int, np.integer)) or (
        isinstance(i, np.ndarray) and i.ndim == 0)]
    if len(arrays) > 1 or (arrays and ints) or any(
            isinstance(i, np.ndarray) and i.dtype == bool for i in index):
        raise ExportError(f"{r.where}: only basic indexing (slices, ints, None) and a single "
                          f"integer-array index can be exported, got {tuple(r.kw['index'])}")
    name = r.arg(0)
    starts, ends, axes, steps, picks, new = [], [], [], [], [], []
    axis = out_pos = 0
    for i in index:
        if i is None:
            new.append(out_pos)
            out_pos += 1
            continue
        if isinstance(i, slice):
            step = 1 if i.step is None else int(i.step)
            if (i.start, i.stop, step) != (None, None, 1):
                starts.append((0 if step > 0 else INT_MAX) if i.start is None else int(i.start))
                ends.append((INT_MAX if step > 0 else -INT_MAX) if i.stop is None
                            else int(i.stop))
                axes.append(axis)
                steps.append(step)
            out_pos += 1
        else:
            arr = np.asarray(i, dtype=np.int64)
            picks.append((axis, arr))
            out_pos += arr.ndim
        axis += 1
    if axes:
        name = r.node("Slice", [name, r.b.ints(starts), r.b.ints(ends), r.b.ints(axes),
                                r.b.ints(steps)])
    for ax, arr in reversed(picks):
        name = r.node("Gather", [name, r.b.const(arr, "index")], axis=ax)
    if new:
        name = r.node("Unsqueeze", [name, r.b.ints(new)])
    if name == r.arg(0):
        name = r.node("Identity", [name])
    r.ex.names[id(r.out)] = name


def pad(r: _Rec) -> None:
    widths = r.kw["widths"]
    pads = [int(lo) for lo, _ in widths] + [int(hi) for _, hi in widths]
    r.emit("Pad", [r.arg(0), r.b.ints(pads), r.scalar(r.kw.get("value", 0.0))])


def _pair_attrs(r: _Rec, padding: Any) -> dict[str, Any]:
    return {"strides": list(r.kw.get("stride", (1, 1))),
            "pads": [int(p) for p in padding] * 2}


def conv(r: _Rec) -> None:
    ins = [r.arg(0), r.arg(1)] + ([r.arg(2)] if len(r.args) > 2 and r.args[2] is not None
                                  else [])
    r.emit("Conv", ins, kernel_shape=list(r.args[1].shape[2:]),
           dilations=list(r.kw.get("dilation", (1, 1))), group=int(r.kw.get("groups", 1)),
           **_pair_attrs(r, r.kw.get("padding", (0, 0))))


def conv_transpose(r: _Rec) -> None:
    x, w = r.args[0], r.args[1]
    s, p = r.kw.get("stride", (1, 1)), r.kw.get("padding", (0, 0))
    d = r.kw.get("dilation", (1, 1))
    natural = [conv_transpose_out_size(x.shape[2 + i], w.shape[2 + i], s[i], p[i], d[i])
               for i in range(2)]
    outpad = [int(r.out.shape[2 + i] - natural[i]) for i in range(2)]
    r.emit("ConvTranspose", [r.arg(0), r.arg(1)], kernel_shape=list(w.shape[2:]),
           dilations=list(d), group=int(r.kw.get("groups", 1)),
           output_padding=outpad if any(outpad) else None, **_pair_attrs(r, p))


def maxpool(r: _Rec) -> None:
    d = list(r.kw.get("dilation", (1, 1)))
    r.emit("MaxPool", [r.arg(0)], kernel_shape=list(r.kw.get("kernel", (2, 2))),
           dilations=d if d != [1, 1] else None, **_pair_attrs(r, r.kw.get("padding", (0, 0))))


def avgpool(r: _Rec) -> None:
    r.emit("AveragePool", [r.arg(0)], kernel_shape=list(r.kw.get("kernel", (2, 2))),
           count_include_pad=int(r.kw.get("count_include_pad", True)),
           **_pair_attrs(r, r.kw.get("padding", (0, 0))))


def reduce_max(r: _Rec) -> None:
    op = "ReduceMin" if r.kw.get("op", "max") == "min" else "ReduceMax"
    r.axes_input(op, r.arg(0), r.kw.get("axes", ()), 18,
                 keepdims=int(bool(r.kw.get("keepdims", False))))


def batchnorm_train(r: _Rec) -> None:
    raise ExportError(f"{r.where}: batch norm with batch statistics (track_running_stats="
                      "False) has no ONNX inference equivalent; keep running statistics")


def maximum(r: _Rec) -> None:
    r.emit("Min" if r.kw.get("op") == "minimum" else "Max", [r.arg(0), r.arg(1)])


def reduce_sum(r: _Rec) -> None:
    r.axes_input("ReduceSum", r.arg(0), r.kw.get("axes", ()), 13,
                 keepdims=int(bool(r.kw.get("keepdims", False))))


def _inputs(n: int | None = None) -> Callable[[_Rec], list[str]]:
    return lambda r: [r.arg(i) for i in range(len(r.args) if n is None else n)]


def emit(op: str, n: int | None = None, **attrs: Callable[[_Rec], Any]) -> Callable[[_Rec], None]:
    """An emitter writing one `op` node over the first n inputs (all when None), with
    attributes computed from the record."""
    ins = _inputs(n)
    return lambda r: r.emit(op, ins(r), **{k: f(r) for k, f in attrs.items()})


# -- whole layers --------------------------------------------------------------------------

def linear(r: _Rec, m: Any) -> None:
    ins = [r.arg(1), r.ex.ref(m.weight, m.weight, m.weight, r.where)]
    if m.bias is not None:
        ins.append(r.ex.ref(m.bias, m.bias, m.bias, r.where))
    r.emit("Gemm", ins, transB=1)


def batchnorm(r: _Rec, m: Any) -> None:
    c, dt = m.num_features, m.running_mean.dtype
    scale = r.ex.ref(m.weight, m.weight, m.weight, r.where) if m.weight is not None else \
        r.b.const(np.ones(c, dt))
    bias = r.ex.ref(m.bias, m.bias, m.bias, r.where) if m.bias is not None else \
        r.b.const(np.zeros(c, dt))
    stats = [r.ex.ref(t, t, t, r.where) for t in (m.running_mean, m.running_var)]
    r.emit("BatchNormalization", [r.arg(1), scale, bias, *stats], epsilon=float(m.eps),
           momentum=1.0 - (m.momentum if m.momentum is not None else 0.1))


def global_avg_pool(r: _Rec, m: Any) -> None:
    r.emit("GlobalAveragePool", [r.arg(1)])


def flatten(r: _Rec, m: Any) -> None:
    r.emit("Flatten", [r.arg(1)], axis=1)


def elu(r: _Rec, m: Any) -> None:
    r.emit("Elu", [r.arg(1)], alpha=float(m.alpha))


def softplus(r: _Rec, m: Any) -> None:
    r.emit("Softplus", [r.arg(1)])


def gelu(r: _Rec, m: Any) -> None:
    r.emit("Gelu", [r.arg(1)], approximate=m.approximate)

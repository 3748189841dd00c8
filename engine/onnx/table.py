"""The one ONNX table: each row maps an ONNX op name to the engine both ways.

A row (`Op`) holds
- import: `fn`, the engine implementation (in `ops.py`, or a one-line lambda here), the
  spec's attribute defaults, which inputs are attribute-like host values, which
  initializers are buffers, a load-time attribute `check` and the outputs it produces;
- export: `export`, the traced records written as this op (a core `Function` class or a
  fused kernel -> its emitter in `emitters.py`), and `layers`, whole modules written as
  this one node (module class -> (when it applies, emitter)).

So adding an op is one row here: its implementation and emitter beside it, or in ops.py
and emitters.py when they are more than a line. The importer (`resolve`, `unsupported`)
and the exporter (`EXPORTERS`, `LAYER_EXPORTERS`) read only this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import functions as fn
from .. import fused, nn
from ..nn import functional as F
from ..tensor import Tensor, maximum, minimum
from . import emitters as E
from . import ops as I
from . import recurrent
from ._proto import DTYPES, UnsupportedAttribute
from .errors import UnsupportedOpError
from .limits import cut, listed, short

Emitter = Callable[[Any], None]
LayerRule = tuple[Callable[[Any, Any, int], bool], Callable[[Any, Any], None]]


@dataclass(frozen=True)
class Op:
    fn: Callable[..., Any]
    attrs: dict[str, Any] = field(default_factory=dict)  # ONNX spec defaults
    consts: tuple[int, ...] = ()   # attribute-like inputs (shapes, axes, pads): host values
    buffers: tuple[int, ...] = ()  # float initializers here are state, not parameters
    check: Callable[[dict[str, Any]], str | None] | None = None  # load-time attribute check
    outputs: int = 1  # how many outputs the implementation produces
    export: dict[Any, Emitter] = field(default_factory=dict)  # traced record -> emitter
    layers: dict[type, LayerRule] = field(default_factory=dict)  # module -> (applies, emit)


_POOL = {"auto_pad": "NOTSET", "kernel_shape": None, "pads": None, "strides": None,
         "ceil_mode": 0}
_REDUCE = {"keepdims": 1, "noop_with_empty_axes": 0, "axes_attr": None}
_CONV = {"auto_pad": "NOTSET", "dilations": None, "group": 1, "kernel_shape": None,
         "pads": None, "strides": None}
_AXIS = {"axis": lambda r: int(r.kw.get("axis", -1))}


def _eval_bn(m: Any, x: Any, opset: int) -> bool:
    return not m.training and m.running_mean is not None


def _always(m: Any, x: Any, opset: int) -> bool:
    return True


def _unary(name: str, f: Callable[[Tensor], Tensor]) -> Op:
    """An elementwise op that imports as `f` and exports from the Function of that name."""
    return Op(I.unary(f), export={getattr(fn, name): E.unary(name)})


def _binary(name: str, reverse: Any = None) -> Op:
    export = {getattr(fn, name): E.binary(name)}
    if reverse is not None:  # scalar (op) tensor
        export[reverse] = E.reverse(name)
    return Op(I.binary(name), export=export)


# Attribute defaults are the ONNX spec's; `axes_attr`, `pads_attr`, ... are the older
# opsets' attribute forms of what later became inputs (the importer renames them).
OPS: dict[str, Op] = {
    "Conv": Op(I.conv, _CONV, check=I.check_auto_pad, export={fn.Conv2d: E.conv}),
    "ConvTranspose": Op(I.conv_transpose, {**_CONV, "output_padding": None,
                                           "output_shape": None},
                        check=I.check_auto_pad, export={fn.ConvTranspose2d: E.conv_transpose}),
    "Gemm": Op(I.gemm, {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0},
               layers={nn.Linear: (lambda m, x, o: x.ndim == 2, E.linear)}),
    "MatMul": Op(lambda ctx, a, b: ctx.t(a) @ ctx.t(b), export={fn.MatMul: E.binary("MatMul")}),
    "Add": _binary("Add"), "Sub": _binary("Sub", fn.RSub), "Mul": _binary("Mul"),
    "Div": _binary("Div", fn.RDiv), "Pow": _binary("Pow"),
    "Sqrt": _unary("Sqrt", Tensor.sqrt), "Exp": _unary("Exp", Tensor.exp),
    "Log": _unary("Log", Tensor.log), "Neg": _unary("Neg", Tensor.__neg__),
    "Abs": _unary("Abs", Tensor.abs), "Reciprocal": Op(I.unary(lambda x: 1.0 / x)),
    "Erf": _unary("Erf", lambda x: fn.Erf.apply(x)),
    "Relu": _unary("Relu", F.relu), "Sigmoid": _unary("Sigmoid", F.sigmoid),
    "Tanh": _unary("Tanh", F.tanh),
    "Softplus": Op(I.unary(F.softplus), layers={nn.Softplus: (_always, E.softplus)}),
    "LeakyRelu": Op(lambda ctx, x, *, alpha: F.leaky_relu(ctx.t(x), alpha), {"alpha": 0.01},
                    export={fn.LeakyRelu: E.unary(
                        "LeakyRelu", alpha=lambda r: float(r.kw.get("slope", 0.01)))}),
    "Elu": Op(lambda ctx, x, *, alpha: F.elu(ctx.t(x), alpha), {"alpha": 1.0},
              layers={nn.ELU: (_always, E.elu)}),
    "PRelu": Op(I.prelu),
    "HardSigmoid": Op(lambda ctx, x, *, alpha, beta: F.hardsigmoid(ctx.t(x), alpha, beta),
                      {"alpha": 0.2, "beta": 0.5}),
    "HardSwish": Op(I.unary(F.hardswish)),
    "Gelu": Op(lambda ctx, x, *, approximate: F.gelu(ctx.t(x), approximate),
               {"approximate": "none"},
               layers={nn.GELU: (lambda m, x, opset: opset >= 20, E.gelu)}),
    # axis: the spec's default is -1 from opset 13 and 1 (with 2-D coercion) before it
    "Softmax": Op(I.axis_softmax("softmax"), {"axis": None},
                  export={fn.Softmax: E.unary("Softmax", **_AXIS)}),
    "LogSoftmax": Op(I.axis_softmax("log_softmax"), {"axis": None},
                     export={fn.LogSoftmax: E.unary("LogSoftmax", **_AXIS)}),
    "MaxPool": Op(I.max_pool, {**_POOL, "dilations": None, "storage_order": 0},
                  check=lambda a: I.check_auto_pad(a) or (
                      "storage_order=1 is not supported" if a.get("storage_order") else None),
                  export={fn.MaxPool2d: E.maxpool}),
    "AveragePool": Op(I.avg_pool, {**_POOL, "count_include_pad": 0, "dilations": None},
                      check=I.check_auto_pad, export={fn.AvgPool2d: E.avgpool}),
    "GlobalAveragePool": Op(I.global_pool("avg"), layers={nn.AdaptiveAvgPool2d: (
        lambda m, x, o: x.ndim == 4 and m.output_size in (1, (1, 1), [1, 1]),
        E.global_avg_pool)}),
    "GlobalMaxPool": Op(I.global_pool("max")),
    "BatchNormalization": Op(I.batch_norm, {"epsilon": 1e-5, "momentum": 0.9,
                                            "training_mode": 0, "spatial": 1},
                             buffers=(3, 4), outputs=3,
                             export={fn.BatchNormTrain: E.batchnorm_train},
                             layers={nn.BatchNorm1d: (_eval_bn, E.batchnorm),
                                     nn.BatchNorm2d: (_eval_bn, E.batchnorm)}),
    "Dropout": Op(I.dropout, {"seed": None, "is_test": 0}, consts=(1, 2), outputs=2),
    "Flatten": Op(I.flatten, {"axis": 1}, layers={nn.Flatten: (
        lambda m, x, o: m.start_dim == 1 and m.end_dim == -1 and x.ndim >= 2, E.flatten)}),
    "Reshape": Op(I.reshape, {"allowzero": 0}, consts=(1,), export={fn.Reshape: E.reshape}),
    "Transpose": Op(I.transpose, {"perm": None}, export={fn.Permute: E.unary(
        "Transpose", perm=lambda r: list(r.kw["axes"]))}),
    "Concat": Op(I.concat, {"axis": None}, export={fn.Concat: E.emit(
        "Concat", axis=lambda r: int(r.kw.get("axis", 0)))}),
    "Split": Op(I.split, {"axis": 0, "num_outputs": None}, consts=(1,), outputs=1 << 16),
    # basic indexing exports as Slice (+ Gather for an index array, Unsqueeze for None)
    "Slice": Op(I.slice_, consts=(1, 2, 3, 4), export={fn.GetItem: E.getitem}),
    "Gather": Op(I.gather, {"axis": 0},
                 export={fn.GatherRows: E.emit("Gather", 2, axis=lambda r: 0)}),
    "Shape": Op(I.shape, {"start": 0, "end": None}),
    "Size": Op(I.size),
    "Constant": Op(I.constant, {k: None for k in (
        "value", "value_float", "value_floats", "value_int", "value_ints", "value_string",
        "value_strings", "sparse_value")}),
    "ConstantOfShape": Op(I.constant_of_shape, {"value": None}, consts=(0,)),
    "Identity": Op(I.identity),
    "Squeeze": Op(I.squeeze, {"axes_attr": None}, consts=(1,)),
    "Unsqueeze": Op(I.unsqueeze, {"axes_attr": None}, consts=(1,)),
    "ReduceMean": Op(I.reduce("mean"), _REDUCE, consts=(1,)),
    # the engine's Max Function reduces with max or min: ReduceMax or ReduceMin
    "ReduceMax": Op(I.reduce("max"), _REDUCE, consts=(1,), export={fn.Max: E.reduce_max}),
    "ReduceMin": Op(I.reduce("min"), _REDUCE, consts=(1,)),
    "ReduceSum": Op(I.reduce("sum"), _REDUCE, consts=(1,), export={fn.Sum: E.reduce_sum}),
    "ReduceSumSquare": Op(I.reduce("sumsquare"), _REDUCE, consts=(1,)),
    "ReduceL2": Op(I.reduce("l2"), _REDUCE, consts=(1,)),
    "Clip": Op(I.clip, {"min": None, "max": None}, consts=(1, 2), export={fn.Clip: E.clip}),
    "Pad": Op(I.pad, {"mode": "constant", "pads_attr": None, "value_attr": 0.0},
              consts=(1, 2, 3), check=I.check_pad, export={fn.Pad: E.pad}),
    "Cast": Op(I.cast, {"to": None, "saturate": 1, "round_mode": "up"}, check=I.check_cast),
    "CastLike": Op(lambda ctx, x, like, *, saturate=1, round_mode="up": I.cast(
        ctx, x, to=next(k for k, v in DTYPES.items() if v == like.dtype)),
        {"saturate": 1, "round_mode": "up"}),
    "GatherElements": Op(I.gather_elements, {"axis": 0}, export={fn.TakeAlong: E.emit(
        "GatherElements", 2, axis=lambda r: int(r.kw.get("axis", -1)))}),
    # the engine's Maximum Function is maximum or minimum: Max or Min
    "Max": Op(I.variadic(maximum), export={fn.Maximum: E.maximum}),
    "Min": Op(I.variadic(minimum)),
    "Sum": Op(I.variadic(Tensor.__add__)), "Mean": Op(I.variadic(Tensor.__add__, mean=True)),
    "Expand": Op(I.expand, consts=(1,), export={fn.BroadcastTo: E.expand}),
    "Where": Op(I.where_, export={fn.Where: E.emit("Where", 3)}),
    "Equal": Op(I.compare("eq")), "Less": Op(I.compare("lt")), "Greater": Op(I.compare("gt")),
    "LessOrEqual": Op(I.compare("le")), "GreaterOrEqual": Op(I.compare("ge")),
    "Range": Op(I.range_, consts=(0, 1, 2)),
    # recurrent layers (issue 15, onnx/recurrent.py): sequence_lens (input 4) is read on the
    # host; a traced fused.recurrent_scan exports as one RNN, GRU or LSTM node (its mode)
    "RNN": Op(recurrent.rnn, recurrent.ATTRS["RNN"], consts=(4,), outputs=2,
              check=recurrent.check("RNN"), export={fused.recurrent_scan: recurrent.export_scan}),
    "GRU": Op(recurrent.gru, recurrent.ATTRS["GRU"], consts=(4,), outputs=2,
              check=recurrent.check("GRU")),
    "LSTM": Op(recurrent.lstm, recurrent.ATTRS["LSTM"], consts=(4,), outputs=3,
               check=recurrent.check("LSTM")),
}

# Attributes that older opsets used for what is now an input: (op, opset below which it is
# an attribute, attribute name, name the implementation takes).
LEGACY_ATTRS: dict[str, tuple[int, dict[str, str]]] = {
    "Squeeze": (13, {"axes": "axes_attr"}), "Unsqueeze": (13, {"axes": "axes_attr"}),
    "ReduceSum": (13, {"axes": "axes_attr"}), "ReduceMean": (18, {"axes": "axes_attr"}),
    "ReduceMax": (18, {"axes": "axes_attr"}), "ReduceMin": (18, {"axes": "axes_attr"}),
    "ReduceSumSquare": (18, {"axes": "axes_attr"}), "ReduceL2": (18, {"axes": "axes_attr"}),
    "Pad": (11, {"pads": "pads_attr", "value": "value_attr"}),
}

# Ops whose older forms take everything as attributes: a separate implementation each.
LEGACY_OPS: dict[tuple[str, int], Op] = {
    ("Split", 13): Op(I.split_legacy, {"axis": 0, "split": None}, outputs=1 << 16),
    ("Slice", 10): Op(I.slice_legacy, {"starts": None, "ends": None, "axes": None}),
    ("Dropout", 12): Op(I.dropout_legacy, {"ratio": 0.5, "is_test": 0, "seed": None},
                        outputs=2),
}


def resolve(op_type: str, opset: int) -> Op | None:
    """The table row for an op at an opset (older attribute-only forms included)."""
    for (name, below), row in LEGACY_OPS.items():
        if name == op_type and opset < below:
            return row
    return OPS.get(op_type)


def unsupported(nodes: list[Any], opset: int, attrs: list[dict[str, Any]]) -> None:
    """Raise one UnsupportedOpError naming every node the engine cannot run (its message
    lists the first few, `ops` has them all)."""
    bad: list[tuple[str, str, str]] = []
    for i, (node, a) in enumerate(zip(nodes, attrs)):
        why = _unsupported_reason(node, opset, a)
        if why is not None:
            op = f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") \
                else node.op_type
            bad.append((node.name or f"#{i}", op, why))
    if bad:
        lines = listed([f"  node {short(n)}: {cut(op)} ({why})" for n, op, why in bad],
                       sep="\n")
        kinds = listed([cut(k) for k in sorted({op for _, op, _ in bad})])
        raise UnsupportedOpError(
            f"the model uses {len(bad):,} node(s) the engine does not support ({kinds}):\n"
            f"{lines}\nSupported ops: {', '.join(sorted(OPS))}", bad)


def _unsupported_reason(node: Any, opset: int, a: dict[str, Any]) -> str | None:
    if node.domain not in ("", "ai.onnx"):
        return "custom domain"
    row = resolve(node.op_type, opset)
    if row is None:
        return "op not implemented"
    unknown = sorted(set(a) - set(row.attrs))
    n_out = max((j + 1 for j, o in enumerate(node.output) if o), default=0)
    odd = [v for v in a.values() if isinstance(v, UnsupportedAttribute)]
    if odd:
        return f"{odd[0]!r} is not supported"
    if unknown:
        return f"unknown attribute(s) {listed([cut(u) for u in unknown], limit=5)}"
    if n_out > row.outputs:
        return f"{n_out} outputs requested, only the first {row.outputs} are supported"
    if row.check is not None:
        return row.check({**row.attrs, **a})
    return None


def _export_tables() -> tuple[dict[Any, Emitter], dict[type, LayerRule]]:
    """The exporter's view of the table: traced record -> emitter, module -> rule. A
    record or module claimed by two rows is a mistake in the table, caught at import."""
    records: dict[Any, Emitter] = {}
    layers: dict[type, LayerRule] = {}
    for name, row in OPS.items():
        for kinds, out in ((row.export, records), (row.layers, layers)):
            for kind, rule in kinds.items():
                if kind in out:
                    raise RuntimeError(f"ONNX table: {kind!r} is exported by two rows "
                                       f"(one is {name!r})")
                out[kind] = rule
    return records, layers


EXPORTERS, LAYER_EXPORTERS = _export_tables()

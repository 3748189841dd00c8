"""engine -> ONNX: trace a module's forward and write each recorded op as ONNX nodes.

Tracing (`engine.autograd.trace`) records every differentiable op a forward applies, so
any module (Sequential or a custom `forward`) exports without a second definition of its
ops. Known layers are written whole, as the single ONNX op a runtime expects (Linear ->
Gemm, eval BatchNorm -> BatchNormalization, AdaptiveAvgPool2d(1) -> GlobalAveragePool,
Flatten -> Flatten); everything else is written op by op from `FUNCTION_EMITTERS`.

The forward is traced twice, the second time with a different batch size and values:
dims that change with the batch become symbolic (Reshape gets -1, the graph's inputs and
outputs a "batch" dim), and a constant that changes between the two traces means the
model computed something from its input outside the traced ops (a `.numpy()` round trip,
a comparison mask): that is an `ExportError`, never a silently wrong file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import helper

from .. import functions as ops
from .. import fused, nn
from ..autograd import no_grad, trace
from ..nn.utils import model_device
from ..tensor import Tensor
from ._proto import ONNX_TYPE
from .errors import ExportError
from .recurrent import export_scan

MIN_OPSET, MAX_OPSET = 13, 21
INT_MAX = 2**63 - 1


class ModuleCall:
    """Stands in the trace for a whole known layer (see MODULE_EMITTERS)."""


class _Builder:
    def __init__(self, opset: int) -> None:
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, onnx.TensorProto] = {}
        self.counter = 0

    def fresh(self, hint: str) -> str:
        self.counter += 1
        return f"{hint}_{self.counter}"

    def const(self, arr: np.ndarray, hint: str = "const") -> str:
        arr = np.asarray(arr)
        if arr.dtype not in ONNX_TYPE:
            raise ExportError(f"cannot store a constant of dtype {arr.dtype} in ONNX")
        name = self.fresh(hint)
        self.inits[name] = onnx.numpy_helper.from_array(arr, name)
        return name

    def ints(self, vals: Any) -> str:
        return self.const(np.asarray(list(vals), dtype=np.int64), "shape")

    def node(self, op: str, inputs: list[str], outputs: list[str] | None = None,
             tag: str = "", **attrs: Any) -> str:
        outputs = outputs or [self.fresh(op.lower())]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(helper.make_node(op, inputs, outputs,
                                           name=f"{tag}/{op}_{len(self.nodes)}".lstrip("/"),
                                           **attrs))
        return outputs[0]


class _Exporter:
    def __init__(self, model: nn.Module, opset: int) -> None:
        self.b = _Builder(opset)
        self.opset = opset
        self.names: dict[int, str] = {}
        self.state = {id(t): n for n, t in list(model.named_parameters())
                      + list(model.named_buffers())}
        self.tags: dict[int, str] = {}

    def ref(self, x: Any, other: Any, like: Any, where: str) -> str:
        """ONNX name for a traced op's argument (adding an initializer when needed)."""
        if isinstance(x, Tensor) and id(x) in self.names:
            return self.names[id(x)]
        if isinstance(x, Tensor) and id(x) in self.state:
            name = self.state[id(x)]
            self.b.inits[name] = onnx.numpy_helper.from_array(np.ascontiguousarray(x.numpy()),
                                                              name)
            self.names[id(x)] = name
            return name
        a1, a2 = _host(x, like), _host(other, like)
        if a1.shape != a2.shape or not np.array_equal(a1, a2, equal_nan=True):
            raise ExportError(
                f"{where}: an argument changes with the input but was not computed by the "
                "engine's differentiable ops (e.g. .numpy(), .astype() or a comparison "
                "mask built from the input), so it cannot be traced; write it with Tensor "
                "ops or export the layer differently")
        name = self.b.const(a1)
        if isinstance(x, Tensor):
            self.names[id(x)] = name
        return name


def _host(x: Any, like: Any) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.numpy()
    if hasattr(x, "shape") and hasattr(x, "dtype"):  # a raw backend array
        return like.backend.to_numpy(x) if isinstance(like, Tensor) else np.asarray(x)
    dt = like.dtype if isinstance(like, Tensor) else np.float32
    return np.asarray(x, dtype=dt)


class _Rec:
    """One traced op, seen in both traces, with helpers for its emitter."""

    def __init__(self, ex: _Exporter, r1: tuple, r2: tuple, tag: str) -> None:
        self.ex, self.b, self.opset, self.tag = ex, ex.b, ex.opset, tag
        self.fn, self.args, self.kw, self.out = r1
        self.args2, self.out2 = r2[1], r2[3]
        self.like = next((a for a in self.args if isinstance(a, Tensor)), None)
        self.where = f"{self.fn.__name__}" + (f" in {tag!r}" if tag else "")

    def arg(self, i: int) -> str:
        return self.ex.ref(self.args[i], self.args2[i], self.like, self.where)

    def scalar(self, v: float) -> str:
        return self.b.const(np.asarray(v, dtype=self.like.dtype))

    def emit(self, op: str, inputs: list[str], **attrs: Any) -> None:
        name = self.b.node(op, inputs, tag=self.tag, **attrs)
        self.ex.names[id(self.out)] = name

    def node(self, op: str, inputs: list[str], **attrs: Any) -> str:
        return self.b.node(op, inputs, tag=self.tag, **attrs)

    def batch_dims(self) -> list[int]:
        s1, s2 = self.out.shape, self.out2.shape
        return [i for i, (a, b) in enumerate(zip(s1, s2)) if a != b]

    def axes_input(self, op: str, x: str, axes: Any, since: int, **attrs: Any) -> None:
        """A reduce op, its axes as an input from `since` on, an attribute before."""
        if self.opset >= since:
            self.emit(op, [x, self.b.ints(axes)], **attrs)
        else:
            self.emit(op, [x], axes=list(axes), **attrs)


# -- emitters for differentiable ops ------------------------------------------------------

def _binary(op: str) -> Callable[[_Rec], None]:
    return lambda r: r.emit(op, [r.arg(0), r.arg(1)])


def _unary(op: str, **attrs: Callable[[_Rec], Any]) -> Callable[[_Rec], None]:
    return lambda r: r.emit(op, [r.arg(0)], **{k: f(r) for k, f in attrs.items()})


def _reverse(op: str) -> Callable[[_Rec], None]:  # scalar (op) tensor
    return lambda r: r.emit(op, [r.scalar(r.args[1]), r.arg(0)])


def _clip(r: _Rec) -> None:
    lo, hi = r.kw.get("lo"), r.kw.get("hi")
    r.emit("Clip", [r.arg(0), "" if lo is None else r.scalar(lo),
                    "" if hi is None else r.scalar(hi)])


def _reshape(r: _Rec) -> None:
    shape = list(r.out.shape)
    batch = r.batch_dims()
    if len(batch) > 1:
        raise ExportError(f"{r.where}: reshape to {r.out.shape} has {len(batch)} dims that "
                          "depend on the batch size; only one can (it becomes -1)")
    for i in batch:
        shape[i] = -1
    r.emit("Reshape", [r.arg(0), r.b.ints(shape)])


def _expand(r: _Rec) -> None:
    shape, x = list(r.out.shape), r.args[0]
    lead = len(shape) - x.ndim
    for i in r.batch_dims():
        if i < lead or x.shape[i - lead] != shape[i]:
            raise ExportError(f"{r.where}: broadcasting to a batch-dependent shape is not "
                              "exportable; broadcast with an operation instead (e.g. x + y)")
        shape[i] = 1  # Expand broadcasts both ways: 1 keeps the input's (batch) dim
    r.emit("Expand", [r.arg(0), r.b.ints(shape)])


def _getitem(r: _Rec) -> None:
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


def _pad(r: _Rec) -> None:
    widths = r.kw["widths"]
    pads = [int(lo) for lo, _ in widths] + [int(hi) for _, hi in widths]
    r.emit("Pad", [r.arg(0), r.b.ints(pads), r.scalar(r.kw.get("value", 0.0))])


def _pair_attrs(r: _Rec, padding: Any) -> dict[str, Any]:
    return {"strides": list(r.kw.get("stride", (1, 1))),
            "pads": [int(p) for p in padding] * 2}


def _conv(r: _Rec) -> None:
    ins = [r.arg(0), r.arg(1)] + ([r.arg(2)] if len(r.args) > 2 and r.args[2] is not None
                                  else [])
    r.emit("Conv", ins, kernel_shape=list(r.args[1].shape[2:]),
           dilations=list(r.kw.get("dilation", (1, 1))), group=int(r.kw.get("groups", 1)),
           **_pair_attrs(r, r.kw.get("padding", (0, 0))))


def _conv_transpose(r: _Rec) -> None:
    x, w = r.args[0], r.args[1]
    s, p = r.kw.get("stride", (1, 1)), r.kw.get("padding", (0, 0))
    d = r.kw.get("dilation", (1, 1))
    natural = [s[i] * (x.shape[2 + i] - 1) + (w.shape[2 + i] - 1) * d[i] + 1 - 2 * p[i]
               for i in range(2)]
    outpad = [int(r.out.shape[2 + i] - natural[i]) for i in range(2)]
    r.emit("ConvTranspose", [r.arg(0), r.arg(1)], kernel_shape=list(w.shape[2:]),
           dilations=list(d), group=int(r.kw.get("groups", 1)),
           output_padding=outpad if any(outpad) else None, **_pair_attrs(r, p))


def _maxpool(r: _Rec) -> None:
    d = list(r.kw.get("dilation", (1, 1)))
    r.emit("MaxPool", [r.arg(0)], kernel_shape=list(r.kw.get("kernel", (2, 2))),
           dilations=d if d != [1, 1] else None, **_pair_attrs(r, r.kw.get("padding", (0, 0))))


def _avgpool(r: _Rec) -> None:
    r.emit("AveragePool", [r.arg(0)], kernel_shape=list(r.kw.get("kernel", (2, 2))),
           count_include_pad=int(r.kw.get("count_include_pad", True)),
           **_pair_attrs(r, r.kw.get("padding", (0, 0))))


def _reduce_max(r: _Rec) -> None:
    op = "ReduceMin" if r.kw.get("op", "max") == "min" else "ReduceMax"
    r.axes_input(op, r.arg(0), r.kw.get("axes", ()), 18,
                 keepdims=int(bool(r.kw.get("keepdims", False))))


def _batchnorm_train(r: _Rec) -> None:
    raise ExportError(f"{r.where}: batch norm with batch statistics (track_running_stats="
                      "False) has no ONNX inference equivalent; keep running statistics")


FUNCTION_EMITTERS: dict[type, Callable[[_Rec], None]] = {
    ops.Add: _binary("Add"), ops.Sub: _binary("Sub"), ops.Mul: _binary("Mul"),
    ops.Div: _binary("Div"), ops.Pow: _binary("Pow"), ops.MatMul: _binary("MatMul"),
    ops.RSub: _reverse("Sub"), ops.RDiv: _reverse("Div"),
    ops.Maximum: lambda r: r.emit("Min" if r.kw.get("op") == "minimum" else "Max",
                                  [r.arg(0), r.arg(1)]),
    ops.Where: lambda r: r.emit("Where", [r.arg(0), r.arg(1), r.arg(2)]),
    ops.Neg: _unary("Neg"), ops.Exp: _unary("Exp"), ops.Log: _unary("Log"),
    ops.Sqrt: _unary("Sqrt"), ops.Abs: _unary("Abs"), ops.Relu: _unary("Relu"),
    ops.Tanh: _unary("Tanh"), ops.Sigmoid: _unary("Sigmoid"), ops.Erf: _unary("Erf"),
    ops.LeakyRelu: _unary("LeakyRelu", alpha=lambda r: float(r.kw.get("slope", 0.01))),
    ops.Softmax: _unary("Softmax", axis=lambda r: int(r.kw.get("axis", -1))),
    ops.LogSoftmax: _unary("LogSoftmax", axis=lambda r: int(r.kw.get("axis", -1))),
    ops.Clip: _clip,
    ops.Sum: lambda r: r.axes_input("ReduceSum", r.arg(0), r.kw.get("axes", ()), 13,
                                    keepdims=int(bool(r.kw.get("keepdims", False)))),
    ops.Max: _reduce_max,
    ops.Reshape: _reshape,
    ops.Permute: _unary("Transpose", perm=lambda r: list(r.kw["axes"])),
    ops.BroadcastTo: _expand,
    ops.GetItem: _getitem,
    ops.Pad: _pad,
    ops.Concat: lambda r: r.emit("Concat", [r.arg(i) for i in range(len(r.args))],
                                 axis=int(r.kw.get("axis", 0))),
    ops.TakeAlong: lambda r: r.emit("GatherElements", [r.arg(0), r.arg(1)],
                                    axis=int(r.kw.get("axis", -1))),
    ops.GatherRows: lambda r: r.emit("Gather", [r.arg(0), r.arg(1)], axis=0),
    ops.Conv2d: _conv,
    ops.ConvTranspose2d: _conv_transpose,
    ops.MaxPool2d: _maxpool,
    ops.AvgPool2d: _avgpool,
    ops.BatchNormTrain: _batchnorm_train,
    fused.recurrent_scan: export_scan,  # one RNN/LSTM/GRU node (issue 15)
}


# -- whole layers --------------------------------------------------------------------------

def _linear(r: _Rec, m: nn.Linear) -> None:
    ins = [r.arg(1), r.ex.ref(m.weight, m.weight, m.weight, r.where)]
    if m.bias is not None:
        ins.append(r.ex.ref(m.bias, m.bias, m.bias, r.where))
    r.emit("Gemm", ins, transB=1)


def _batchnorm(r: _Rec, m: Any) -> None:
    c, dt = m.num_features, m.running_mean.dtype
    scale = r.ex.ref(m.weight, m.weight, m.weight, r.where) if m.weight is not None else \
        r.b.const(np.ones(c, dt))
    bias = r.ex.ref(m.bias, m.bias, m.bias, r.where) if m.bias is not None else \
        r.b.const(np.zeros(c, dt))
    stats = [r.ex.ref(t, t, t, r.where) for t in (m.running_mean, m.running_var)]
    r.emit("BatchNormalization", [r.arg(1), scale, bias, *stats], epsilon=float(m.eps),
           momentum=1.0 - (m.momentum if m.momentum is not None else 0.1))


MODULE_EMITTERS: dict[type, tuple[Callable[[nn.Module, Any, int], bool],
                                  Callable[[_Rec, Any], None]]] = {
    nn.Linear: (lambda m, x, o: x.ndim == 2, _linear),
    nn.BatchNorm1d: (lambda m, x, o: not m.training and m.running_mean is not None,
                     _batchnorm),
    nn.BatchNorm2d: (lambda m, x, o: not m.training and m.running_mean is not None,
                     _batchnorm),
    nn.AdaptiveAvgPool2d: (lambda m, x, o: x.ndim == 4 and m.output_size in (1, (1, 1), [1, 1]),
                           lambda r, m: r.emit("GlobalAveragePool", [r.arg(1)])),
    nn.Flatten: (lambda m, x, o: m.start_dim == 1 and m.end_dim == -1 and x.ndim >= 2,
                 lambda r, m: r.emit("Flatten", [r.arg(1)], axis=1)),
    nn.ELU: (lambda m, x, o: True,
             lambda r, m: r.emit("Elu", [r.arg(1)], alpha=float(m.alpha))),
    nn.Softplus: (lambda m, x, o: True, lambda r, m: r.emit("Softplus", [r.arg(1)])),
    nn.GELU: (lambda m, x, o: o >= 20,
              lambda r, m: r.emit("Gelu", [r.arg(1)], approximate=m.approximate)),
}


# -- tracing -------------------------------------------------------------------------------

def _trace(model: nn.Module, inputs: list[Tensor], opset: int) -> tuple[list, Any, dict]:
    """Run forward under the tracer; known layers collapse into one ModuleCall record."""
    tags: dict[int, str] = {}
    patched = []
    with trace() as tr:
        for name, mod in model.named_modules():
            rule = MODULE_EMITTERS.get(type(mod))

            def fwd(*a: Any, _m: nn.Module = mod, _name: str = name, _rule: Any = rule,
                    _orig: Any = mod.forward, **k: Any) -> Any:
                start = len(tr.records)
                out = _orig(*a, **k)
                x = a[0] if a else None
                if _rule is not None and isinstance(x, Tensor) and isinstance(out, Tensor) \
                        and not k and len(a) == 1 and _rule[0](_m, x, opset) \
                        and len(tr.records) > start:
                    del tr.records[start:]
                    tr.records.append((ModuleCall, (_m, x), {}, out))
                for rec in tr.records[start:]:
                    tags.setdefault(id(rec[3]), _name)
                return out
            object.__setattr__(mod, "forward", fwd)
            patched.append(mod)
        try:
            with no_grad():
                out = model(*inputs)
        finally:
            for mod in patched:
                del mod.__dict__["forward"]
    return tr.records, out, tags


def _outputs(out: Any) -> list[Tensor]:
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    if not outs or not all(isinstance(o, Tensor) for o in outs):
        raise ExportError("the model's forward must return a Tensor or a tuple of Tensors, "
                          f"got {type(out).__name__}")
    return outs


def _second_input(x: Tensor, dynamic: bool, rng: np.random.Generator) -> Tensor:
    arr = x.numpy()
    if dynamic and arr.ndim:
        arr = np.concatenate([arr[::-1], arr[:1]])
    if arr.dtype.kind == "f":
        arr = arr + rng.normal(0.0, 0.05, arr.shape).astype(arr.dtype)
    return Tensor(arr, device=x.device, dtype=arr.dtype)


def _value_info(name: str, t: Tensor, t2: Tensor, dynamic: bool, batch: int,
                batch2: int) -> onnx.ValueInfoProto:
    dims: list[Any] = []
    for i, (a, b) in enumerate(zip(t.shape, t2.shape)):
        if dynamic and a != b:
            dims.append("batch" if (a, b) == (batch, batch2) else f"{name}_dim{i}")
        else:
            dims.append(int(a))
    return helper.make_tensor_value_info(name, ONNX_TYPE[t.dtype], dims)


def export(model: nn.Module, example_input: Any, path: Any = None, opset: int = 17,
           dynamic_batch: bool = True, input_names: list[str] | None = None,
           output_names: list[str] | None = None) -> onnx.ModelProto:
    """Write `model` as an ONNX file (and return the ModelProto).

    The model is traced in eval mode on `example_input` (a Tensor or array, or a tuple of
    them for several inputs); parameter and buffer names become initializer names. With
    `dynamic_batch` the first dim of every input is symbolic, so the file runs at any batch
    size. The result passes `onnx.checker.check_model(full_check=True)`.
    """
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"opset {opset} is not supported for export; use "
                          f"{MIN_OPSET}..{MAX_OPSET}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"export: expected an engine nn.Module, got {type(model).__name__}")
    device = model_device(model)
    raw = list(example_input) if isinstance(example_input, (tuple, list)) else [example_input]
    xs = [x if isinstance(x, Tensor) else Tensor(np.asarray(x), device=device) for x in raw]
    xs = [x.to(device) for x in xs]
    rng = np.random.default_rng(0)
    dynamic = dynamic_batch and all(x.ndim >= 1 for x in xs)
    xs2 = [_second_input(x, dynamic, rng) for x in xs]
    in_names = list(input_names or (["input"] if len(xs) == 1 else
                                    [f"input_{i}" for i in range(len(xs))]))
    was_training = model.training
    model.eval()
    try:
        rec1, out1, tags = _trace(model, xs, opset)
        rec2, out2, _ = _trace(model, xs2, opset)
    finally:
        model.train(was_training)
    outs1, outs2 = _outputs(out1), _outputs(out2)
    if len(rec1) != len(rec2) or any(a[0] is not b[0] for a, b in zip(rec1, rec2)) \
            or len(outs1) != len(outs2):
        raise ExportError("the model runs different ops for different inputs (data-dependent "
                          "control flow), which a static ONNX graph cannot express")

    ex = _Exporter(model, opset)
    for x, name in zip(xs, in_names):
        ex.names[id(x)] = name
    for r1, r2 in zip(rec1, rec2):
        tag = tags.get(id(r1[3]), "")
        r = _Rec(ex, r1, r2, tag)
        if r1[0] is ModuleCall:
            mod = r1[1][0]
            r.like = r1[1][1]
            MODULE_EMITTERS[type(mod)][1](r, mod)
            continue
        emit = FUNCTION_EMITTERS.get(r1[0])
        if emit is None:
            raise ExportError(f"op {r1[0].__name__} (in {tag or 'the model'!r}) has no ONNX "
                              "export rule")
        emit(r)

    out_names = list(output_names or (["output"] if len(outs1) == 1 else
                                      [f"output_{i}" for i in range(len(outs1))]))
    for o, name in zip(outs1, out_names):
        src = ex.ref(o, o, o, "output")
        ex.b.node("Identity", [src], [name])
    # the final Identity nodes could be avoided by renaming; they keep the code simple and
    # runtimes remove them
    b1 = xs[0].shape[0] if dynamic else -1
    b2 = xs2[0].shape[0] if dynamic else -1
    graph = helper.make_graph(
        ex.b.nodes, "demystify",
        [_value_info(n, x, x2, dynamic, b1, b2) for n, x, x2 in zip(in_names, xs, xs2)],
        [_value_info(n, o, o2, dynamic, b1, b2) for n, o, o2 in zip(out_names, outs1, outs2)],
        list(ex.b.inits.values()))
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="demystify", producer_version=_version())
    proto.ir_version = min(proto.ir_version, 9 if opset <= 20 else 10)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:  # a bug in an emitter: say which check failed
        raise ExportError(f"the exported graph does not pass the ONNX checker: {exc}") from exc
    if path is not None:
        onnx.save(proto, path)
    return proto


def _version() -> str:
    from .. import __version__
    return __version__


def parameter_count(proto: onnx.ModelProto) -> int:
    return sum(math.prod(t.dims) for t in proto.graph.initializer)

"""ONNX -> engine: read a model file safely and build a runnable, trainable `nn.Module`.

Order of work, so that a bad file fails before anything runs: size limit, protobuf parse,
structure (every value defined once, nodes sortable, tensors the right size), one
`UnsupportedOpError` for every op the engine lacks, then constant folding on the host.
Nothing in the file is ever executed as code: ops are looked up in the table in `ops.py`.
What a file may make us spend (bytes, messages, nodes, elements, memory) is bounded by a
`limits.Limits`, checked before anything is allocated.
"""

from __future__ import annotations

import math
import os
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import backends
from ..autograd import no_grad
from ..nn import Module, Parameter
from ..tensor import Tensor
from . import _proto, wire
from .errors import (
    ExecutionError,
    InputError,
    LimitError,
    ModelFileError,
    OnnxError,
    UnsupportedOpError,
)
from .limits import (
    DEFAULT,
    Limits,
    SpendBudget,
    check_node,
    check_nodes,
    cut,
    listed,
    nbytes,
    short,
)
from .ops import LEGACY_ATTRS, Ctx, Op, resolve, unsupported

DEFAULT_MAX_BYTES = DEFAULT.max_bytes
MIN_OPSET, MAX_OPSET = 6, 28  # newer versions of the supported ops only add dtypes


@dataclass
class Node:
    proto: Any
    op: Op
    attrs: dict[str, Any]
    inputs: list[str]
    outputs: list[str]
    name: str


@dataclass
class Graph:
    """A checked, topologically sorted graph: what the module runs."""

    opset: int
    inputs: list[tuple[str, np.dtype, tuple | None]]
    outputs: list[str]
    initializers: dict[str, np.ndarray]
    nodes: list[Node]
    producer: str
    limits: Limits = DEFAULT
    const_bytes: int = 0  # bytes of the initializers and Constant attributes read


def read_model(source: Any, max_bytes: int | None = None, limits: Limits | None = None
               ) -> tuple[wire.Message, str | None]:
    """Parse a path, bytes or onnx.ModelProto (never following anything but external
    data) with the pure-Python reader in `wire`: the `onnx` package is not needed.
    `max_bytes`, when given, overrides `limits.max_bytes`."""
    limits = (limits or DEFAULT).with_max_bytes(max_bytes)
    limit = limits.max_bytes
    base_dir = None
    if type(source).__name__ == "ModelProto" and hasattr(source, "SerializeToString"):
        source = source.SerializeToString()
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise ModelFileError(f"no ONNX model file at {short(path)}")
        size = os.path.getsize(path)
        if size > limit:
            raise LimitError(f"{short(path)} is {size / 2**20:.1f} MB, over the "
                             f"{limit / 2**20:.1f} MB limit; pass max_bytes= to "
                             "engine.onnx.load to allow larger models")
        with open(path, "rb") as f:
            data = f.read(limit + 1)
        base_dir = os.path.dirname(os.path.abspath(path))
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        raise TypeError(f"engine.onnx.load: expected a file path, bytes or an "
                        f"onnx.ModelProto, got {type(source).__name__}")
    if len(data) > limit:
        raise LimitError(f"the model is {len(data) / 2**20:.1f} MB, over the "
                         f"{limit / 2**20:.1f} MB limit; pass max_bytes= to allow it")
    if not data:
        raise ModelFileError("the model file is empty")
    model = wire.parse(data, limits=limits)
    if not model.HasField("graph"):
        raise ModelFileError("not a valid ONNX file: it has no graph (is it an ONNX model?)")
    return model, base_dir


def _external_reader(base_dir: str | None, budget: list[int]):
    if base_dir is None:
        return None

    def read(location: str, offset: int, length: int | None, need: int, what: str) -> bytes:
        path = _proto.safe_external_path(base_dir, location, what)
        size = os.path.getsize(path)
        length = need if length is None else length
        if offset < 0 or length < 0 or offset + length > size:
            raise ModelFileError(f"{what}: external data range {offset}+{length} lies outside "
                                 f"{location!r} ({size} bytes)")
        budget[0] -= length
        if budget[0] < 0:
            raise LimitError(f"{what}: model plus external data exceed the size limit; "
                             "pass max_bytes= to allow larger models")
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(length)
    return read


def parse(model: wire.Message, base_dir: str | None = None, max_bytes: int | None = None,
          limits: Limits | None = None) -> Graph:
    """Check a parsed model's structure and ops; raise OnnxError subclasses only."""
    try:
        return _parse(model, base_dir, (limits or DEFAULT).with_max_bytes(max_bytes))
    except OnnxError:
        raise
    except (RecursionError, MemoryError, ValueError, TypeError, KeyError, IndexError,
            OverflowError, AttributeError, UnicodeError) as exc:
        raise ModelFileError(f"malformed ONNX model ({type(exc).__name__}: "
                             f"{cut(exc, 300)})") from None


def _read_initializer(t: Any, ext: Any, limits: Limits, consts: SpendBudget) -> np.ndarray:
    """One initializer, its size checked against the constants' budget before reading."""
    what = f"initializer {short(t.name)}"
    dt = _proto.DTYPES.get(t.data_type)
    shape = [int(d) for d in t.dims]
    if dt is not None and all(d >= 0 for d in shape):
        consts.before(what, shape, dt.itemsize)
    arr = _proto.read_tensor(t, "initializer", ext, limits.max_elements)
    consts.spend(arr.nbytes)
    return arr


def _parse(model: wire.Message, base_dir: str | None, limits: Limits) -> Graph:
    opsets = {imp.domain: int(imp.version) for imp in model.opset_import}
    opset = opsets.get("", opsets.get("ai.onnx"))
    if opset is None:
        raise ModelFileError("the model imports no version of the default ONNX opset")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise UnsupportedOpError(f"opset {opset} is outside the supported range "
                                 f"{MIN_OPSET}..{MAX_OPSET}; re-export with opset 13 to 20")
    g = model.graph
    check_nodes(len(g.node), limits)
    budget = [int(limits.max_bytes) - model.ByteSize()]
    ext = _external_reader(base_dir, budget)
    consts = SpendBudget(limits.max_const_bytes, "max_const_bytes",
                         "the model's constants (initializers and folded values)")
    inits: dict[str, np.ndarray] = {}
    for t in g.initializer:
        if not t.name:
            raise ModelFileError("an initializer has no name")
        if t.name in inits:
            raise ModelFileError(f"initializer {short(t.name)} is defined twice")
        inits[t.name] = _read_initializer(t, ext, limits, consts)
    if len(g.sparse_initializer):
        raise UnsupportedOpError("sparse initializers are not supported")
    inputs = []
    for vi in g.input:
        if vi.name in inits:
            continue  # IR < 4 lists initializers as inputs too: they are constants here
        if not vi.name:
            raise ModelFileError("a graph input has no name")
        dt, shape = _proto.value_signature(vi, "graph input")
        if dt not in _ENGINE_DTYPES:
            raise UnsupportedOpError(f"graph input {short(vi.name)} has element type {dt}; the "
                                     "engine computes in float32, float64, int32, int64 and "
                                     "bool (cast the input in the exporting framework)")
        inputs.append((vi.name, dt, shape))
    defined = set(inits) | {n for n, _, _ in inputs}
    if len(defined) != len(inits) + len(inputs):
        raise ModelFileError("two graph inputs share a name")

    attrs, protos = [], list(g.node)
    for i, node in enumerate(protos):
        what = f"node {short(node.name or '#' + str(i))} ({cut(node.op_type)})"
        a = {}
        for at in node.attribute:
            if at.name in a:
                raise ModelFileError(f"{what}: attribute {short(at.name)} given twice")
            a[at.name] = _proto.read_attribute(at, what)
            consts.spend(nbytes(a[at.name]) if isinstance(a[at.name], np.ndarray) else 0)
        legacy = LEGACY_ATTRS.get(node.op_type)
        if legacy and opset < legacy[0]:
            a = {legacy[1].get(k, k): v for k, v in a.items()}
        attrs.append(a)
    unsupported(protos, opset, attrs)  # one error naming every unsupported node

    nodes = [Node(p, resolve(p.op_type, opset), a, list(p.input), list(p.output),
                  p.name or f"{p.op_type}_{i}") for i, (p, a) in enumerate(zip(protos, attrs))]
    nodes = _toposort(nodes, defined)
    outputs = [o.name for o in g.output]
    produced = defined | {o for n in nodes for o in n.outputs if o}
    missing = [o for o in outputs if o not in produced]
    if not outputs or missing:
        raise ModelFileError(f"graph outputs {listed([short(m) for m in missing]) or '(none)'}"
                             " are not produced by any node, input or initializer (truncated "
                             "or corrupt file?)")
    for o in g.output:
        _proto.value_signature(o, "graph output")
    return Graph(opset, inputs, outputs, inits, nodes,
                 f"{model.producer_name} {model.producer_version}".strip(), limits,
                 limits.max_const_bytes - consts.left)


def _toposort(nodes: list[Node], defined: set[str]) -> list[Node]:
    """Nodes in dependency order (ONNX files should already be sorted; we do not rely on
    it). Undefined inputs, values produced twice or cycles are errors."""
    producer: dict[str, int] = {}
    for i, n in enumerate(nodes):
        for o in n.outputs:
            if not o:
                continue
            if o in producer or o in defined:
                raise ModelFileError(f"value {short(o)} is produced twice (node "
                                     f"{short(n.name)})")
            producer[o] = i
    waiting = [0] * len(nodes)
    users: dict[int, list[int]] = {}
    for i, n in enumerate(nodes):
        for name in n.inputs:
            if not name or name in defined:
                continue
            if name not in producer:
                raise ModelFileError(f"node {short(n.name)} ({cut(n.proto.op_type)}) reads "
                                     f"{short(name)}, which no input, initializer or node "
                                     "defines")
            waiting[i] += 1
            users.setdefault(producer[name], []).append(i)
    ready = deque(i for i in range(len(nodes)) if waiting[i] == 0)
    order = []
    while ready:
        i = ready.popleft()
        order.append(i)
        for j in users.get(i, []):
            waiting[j] -= 1
            if waiting[j] == 0:
                ready.append(j)
    if len(order) != len(nodes):
        raise ModelFileError("the graph has a cycle (a node depends on its own output)")
    return [nodes[i] for i in order]


def _run_node(node: Node, vals: list[Any], ctx: Ctx) -> list[Any]:
    """One node: its output checked against the limits first, then run, then what it made
    charged to the context's budget."""
    what = f"node {short(node.name)} ({cut(node.proto.op_type)})"
    attrs = {**node.op.attrs, **node.attrs}
    check_node(node.proto.op_type, what, vals, attrs, ctx.limits, ctx.budget)
    try:
        out = node.op.fn(ctx, *vals, **attrs)
    except OnnxError as exc:
        raise type(exc)(f"{what}: {exc}") from exc
    except backends.DeviceError:
        raise
    except Exception as exc:  # an engine error (shape, dtype, ...): name the node
        raise ExecutionError(f"{what} failed: {type(exc).__name__}: {cut(exc, 500)}") from exc
    out = list(out) if isinstance(out, tuple) else [out]
    if ctx.host_mode:
        out = [o.numpy() if isinstance(o, Tensor) else o for o in out]
    if ctx.budget is not None:
        ctx.budget.spend(sum(nbytes(o) for o in out))
    return out


def _is_host(v: Any) -> bool:
    return v is None or isinstance(v, np.ndarray)


class _Holder(Module):
    """A plain container so dotted initializer names become nested state-dict keys."""


class OnnxModule(Module):
    """An ONNX graph as an engine module: call it like any model.

    Floating initializers (of rank >= 1) are `Parameter`s under their ONNX names (dots nest,
    as in `features.0.weight`), BatchNormalization statistics are buffers; so
    `parameters()`, `state_dict()`, optimizers and `.to(device)` work as for a hand-built
    model. `train()` makes BatchNormalization use batch statistics and Dropout drop,
    as in PyTorch; a loaded model starts in eval mode.
    """

    def __init__(self, graph: Graph, device: str) -> None:
        super().__init__()
        object.__setattr__(self, "graph", graph)
        object.__setattr__(self, "_values", {})   # name -> Tensor (params, buffers)
        object.__setattr__(self, "_consts", {})   # name -> np.ndarray (host, folded)
        object.__setattr__(self, "_cache", {})    # uploads of host constants per device
        object.__setattr__(self, "_device_hint", device)  # the device when nothing is held
        self._classify(device)
        self._fold()
        self.eval()

    # -- construction --------------------------------------------------------------------
    def _classify(self, device: str) -> None:
        """Initializers -> Parameters, buffers or host constants."""
        g = self.graph
        uses: dict[str, list[tuple[Op, int]]] = {}
        for n in g.nodes:
            for i, name in enumerate(n.inputs):
                if name in g.initializers:
                    uses.setdefault(name, []).append((n.op, i))
        for name, arr in g.initializers.items():
            slots = uses.get(name, [])
            data_slots = [(op, i) for op, i in slots if i not in op.consts]
            if arr.dtype.kind == "f" and arr.ndim >= 1 and data_slots:
                if arr.dtype not in (np.float32, np.float64):
                    arr = arr.astype(np.float32)
                if all(i in op.buffers for op, i in data_slots):
                    t = Tensor(arr, device=device, dtype=arr.dtype)
                    self._register(name, t, buffer=True)
                else:
                    t = Parameter(arr, device=device, dtype=arr.dtype)
                    self._register(name, t, buffer=False)
                self._values[name] = t
            else:
                self._consts[name] = arr

    def _register(self, name: str, t: Tensor, buffer: bool) -> None:
        parts = name.split(".")
        owner: Module = self
        if all(parts) and len(parts) > 1:
            for p in parts[:-1]:
                child = owner._modules.get(p)
                if child is None:
                    if p in owner._parameters or p in owner._buffers or p in owner.__dict__:
                        owner, parts = self, [name.replace(".", "_")]
                        break
                    child = _Holder()
                    owner.add_module(p, child)
                owner = child
        leaf = parts[-1] if all(parts) else name.replace(".", "_")
        if leaf in owner._modules or leaf in owner._parameters or leaf in owner._buffers \
                or leaf in owner.__dict__ or hasattr(type(owner), leaf):
            owner, leaf = self, f"init_{len(self._values)}_" + name.replace(".", "_")
        if buffer:
            owner.register_buffer(leaf, t)
        else:
            owner.register_parameter(leaf, t)  # type: ignore[arg-type]

    def _fold(self) -> None:
        """Constant propagation: run every node whose inputs are all host constants, with
        NumPy, once. What is left runs per call (shape arithmetic stays on the host).
        Everything folded is charged to `max_const_bytes`; only what the remaining nodes
        or the outputs read is kept."""
        remaining = []
        g = self.graph
        budget = SpendBudget(g.limits.max_const_bytes, "max_const_bytes",
                             "the model's constants (initializers and folded values)",
                             spent=g.const_bytes)
        for n in g.nodes:
            vals = [None if not name else self._consts.get(name, _MISSING)
                    for name in n.inputs]
            if any(v is _MISSING for v in vals) or n.proto.op_type == "Dropout":
                remaining.append(n)
                continue
            ctx = Ctx("cpu", False, g.opset, n.proto, limits=g.limits, budget=budget)
            with no_grad():
                for name, v in zip(n.outputs, _run_node(n, vals, ctx)):
                    if name:
                        self._consts[name] = v
        needed = {name for n in remaining for name in n.inputs} | set(g.outputs)
        for name in [k for k in self._consts if k not in needed]:
            del self._consts[name]
        object.__setattr__(self, "plan", remaining)
        object.__setattr__(self, "_frees", _last_uses(remaining, set(g.outputs)))
        # uploads are cached only for these (load-time) constants; values computed per
        # call (shape arithmetic) are uploaded fresh, so the cache cannot grow
        self._cache["const_ids"] = frozenset(id(v) for v in self._consts.values())
        for name in g.outputs:
            if name in self._consts and not isinstance(self._consts[name], np.ndarray):
                raise ModelFileError(f"output {name!r} is not a tensor")

    # -- running ---------------------------------------------------------------------------
    @property
    def device(self) -> str:
        for t in self._values.values():
            return t.device
        return self._device_hint

    def input_names(self) -> list[str]:
        return [n for n, _, _ in self.graph.inputs]

    def output_names(self) -> list[str]:
        return list(self.graph.outputs)

    def _inputs(self, args: tuple, kwargs: dict, device: str) -> dict[str, Tensor]:
        spec = self.graph.inputs
        names = [n for n, _, _ in spec]
        if len(args) > len(spec):
            raise InputError(f"the model takes {len(spec)} input(s) {names}, got {len(args)}")
        given = dict(zip(names, args))
        for k, v in kwargs.items():
            if k not in names:
                raise InputError(f"the model has no input named {k!r}; its inputs are {names}")
            if k in given:
                raise InputError(f"input {k!r} given twice (positionally and by name)")
            given[k] = v
        missing = [n for n in names if n not in given]
        if missing:
            raise InputError(f"missing input(s) {missing}; the model's inputs are "
                             + ", ".join(f"{n} {_fmt(s)} {dt}" for n, dt, s in spec))
        out = {}
        for name, dt, shape in spec:
            v = given[name]
            if not isinstance(v, Tensor):
                arr = np.asarray(v)
                if isinstance(v, (list, tuple, int, float)) and arr.dtype.kind in "fiu":
                    arr = arr.astype(dt)
                v = arr
            if np.dtype(v.dtype) != dt:
                raise InputError(f"input {name!r} must be {dt}, got {np.dtype(v.dtype)}; "
                                 f"convert it (e.g. .astype(np.{dt.name}))")
            if shape is not None:
                vs = tuple(v.shape)
                bad = len(vs) != len(shape) or any(
                    isinstance(d, int) and d > 0 and d != s for d, s in zip(shape, vs))
                if bad:
                    raise InputError(f"input {name!r} must have shape {_fmt(shape)}, got {vs}")
            out[name] = v if isinstance(v, Tensor) and v.device == device else \
                Tensor(v, device=device, dtype=dt)
        return out

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        device = self.device
        env: dict[str, Any] = dict(self._consts)
        env.update(self._values)
        env.update(self._inputs(args, kwargs, device))
        opset, limits = self.graph.opset, self.graph.limits
        budget = SpendBudget(limits.max_run_bytes, "max_run_bytes",
                             "the values this call computes")
        for n, frees in zip(self.plan, self._frees):
            vals = [env[name] if name else None for name in n.inputs]
            host = all(_is_host(v) for v in vals) and n.proto.op_type != "Dropout"
            if n.proto.op_type == "Shape":
                host = True
            ctx = Ctx("cpu" if host else device, self.training, opset, n.proto,
                      None if host else self._cache, limits, budget)
            for name, v in zip(n.outputs, _run_node(n, vals, ctx)):
                if name:
                    env[name] = v
            for name in frees:  # values no later node reads: freed as the call goes
                env.pop(name, None)
        outs = [env[o] for o in self.graph.outputs]
        try:
            outs = [Tensor(o, device=device, dtype=o.dtype) if isinstance(o, np.ndarray)
                    else o for o in outs]
        except (TypeError, ValueError) as exc:
            raise ExecutionError(f"an output cannot be a Tensor: {exc}") from None
        return outs[0] if len(outs) == 1 else tuple(outs)

    def to(self, device: str | None = None, dtype: Any = None) -> OnnxModule:
        super().to(device, dtype)
        if device is not None:
            object.__setattr__(self, "_device_hint", backends.resolve(device))
        return self

    def extra_repr(self) -> str:
        ins = ", ".join(f"{n}: {_fmt(s)} {dt}" for n, dt, s in self.graph.inputs)
        return (f"inputs=[{ins}], outputs={self.graph.outputs}, nodes={len(self.graph.nodes)}"
                f", opset={self.graph.opset}")


def _last_uses(plan: list[Node], keep: set[str]) -> list[tuple[str, ...]]:
    """For each node of the plan, the values read for the last time there (not outputs)."""
    last: dict[str, int] = {}
    for i, n in enumerate(plan):
        for name in n.inputs:
            if name and name not in keep:
                last[name] = i
    frees: list[list[str]] = [[] for _ in plan]
    for name, i in last.items():
        frees[i].append(name)
    return [tuple(f) for f in frees]


_MISSING = object()
_ENGINE_DTYPES = tuple(np.dtype(t) for t in (np.float32, np.float64, np.int32, np.int64,
                                             np.bool_))


def _fmt(shape: tuple | None) -> str:
    if shape is None:
        return "(any shape)"
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def load(source: Any, device: str | None = "auto", *, max_bytes: int | None = None,
         limits: Limits | None = None) -> OnnxModule:
    """Load an ONNX model (path, bytes or ModelProto) as a trainable engine module.

    `limits` (default `limits.DEFAULT`) bounds what the file may cost; `max_bytes` overrides
    its file-size limit. Raises `ModelFileError` (bad/oversized file, external data outside
    its folder), `LimitError` (over a limit), `UnsupportedOpError` (listing the unsupported
    nodes, before anything runs) or another `OnnxError`; never executes anything from the
    file.
    """
    dev = backends.resolve(device)
    limits = (limits or DEFAULT).with_max_bytes(max_bytes)
    model, base_dir = read_model(source, limits=limits)
    graph = parse(model, base_dir, limits=limits)
    try:
        module = OnnxModule(graph, dev)
    except OnnxError:
        raise
    except (ValueError, TypeError, MemoryError, OverflowError) as exc:
        raise ModelFileError(f"cannot build the model: {type(exc).__name__}: "
                             f"{cut(exc, 300)}") from None
    return module


def count_parameters(graph: Graph) -> int:
    """Scalars in the initializers that become trainable parameters (or statistics)."""
    return sum(int(math.prod(a.shape)) for a in graph.initializers.values()
               if a.dtype.kind == "f" and a.ndim >= 1)


__all__ = ["load", "read_model", "parse", "OnnxModule", "Graph", "DEFAULT_MAX_BYTES"]

"""The resource budget for loading and running an ONNX file: what a file may make us spend.

A few hundred bytes of ONNX can ask for gigabytes (a `ConstantOfShape` of (65536, 65536), an
`Add` of (65536, 1) and (1, 65536)) or a 20 MB file can hold ten million empty nodes. So
every cost a file controls has a limit, checked *before* the memory is allocated, and a
breach raises an `OnnxError` that names the node, the shape and the limit to raise:

- `max_bytes`: the file plus its external data, on disk;
- `max_messages`, `max_values`: protobuf messages, and fields plus packed numbers, that
  `wire.parse` decodes (the work and the memory of reading the file);
- `max_nodes`: nodes in the graph;
- `max_elements`: elements of any one tensor a node produces (at load or run time);
- `max_const_bytes`: all constants together, initializers plus values folded at load;
- `max_run_bytes`: the values one forward call holds at once.

The same checks run in the browser build (Pyodide runs this code unchanged). Messages list
a bounded number of items (`listing`) and cut long names (`short`), so a hostile file cannot
turn an error into a 100 MB report either.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .errors import ExecutionError, LimitError

MAX_LISTED = 20   # items an error message or report lists before "... and N more"
MAX_NAME = 80     # characters of a name (node, value, op) quoted in a message


@dataclass(frozen=True)
class Limits:
    """What one model may cost; pass `limits=` to `engine.onnx.load` to change it."""

    max_bytes: int = 100 * 2**20
    max_messages: int = 1_000_000
    max_values: int = 4_000_000
    max_nodes: int = 100_000
    max_elements: int = 1 << 28
    max_const_bytes: int = 512 << 20
    max_run_bytes: int = 4 << 30

    def with_max_bytes(self, max_bytes: int | None) -> Limits:
        return self if max_bytes is None else replace(self, max_bytes=int(max_bytes))


DEFAULT = Limits()


# -- bounded messages --------------------------------------------------------------------

def cut(name: Any, limit: int = MAX_NAME) -> str:
    """A name from the file cut to `limit` characters (saying how long it was)."""
    text = str(name)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text):,} characters)"


def short(name: Any, limit: int = MAX_NAME) -> str:
    """A name from the file, quoted (repr) and clipped."""
    return repr(cut(name, limit))


def listing(items: Sequence[Any] | Iterable[Any], total: int | None = None,
            limit: int = MAX_LISTED) -> tuple[list[Any], str]:
    """(the first `limit` items, "" or "… and 10,499,990 more") for a message."""
    items = list(items) if not isinstance(items, Sequence) else items
    total = len(items) if total is None else total
    head = list(items[:limit])
    rest = total - len(head)
    return head, (f"… and {rest:,} more" if rest > 0 else "")


def listed(items: Sequence[Any], limit: int = MAX_LISTED, sep: str = ", ") -> str:
    """Items joined for a message, the rest counted: "a, b, … and 10,499,990 more"."""
    head, more = listing(items, limit=limit)
    return sep.join(str(i) for i in head) + (sep + more if more else "")


def _fmt_bytes(n: int) -> str:
    return f"{n / 2**20:,.1f} MB" if n >= 2**20 else f"{n:,} bytes"


def _fmt_shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(f"{int(d):,}" for d in shape) + ("," if len(shape) == 1 else "") + ")"


# -- decoding ----------------------------------------------------------------------------

class DecodeBudget:
    """Counts what `wire.parse` builds; raises LimitError past the limits."""

    __slots__ = ("messages", "values", "limits")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.messages = limits.max_messages
        self.values = limits.max_values

    def message(self) -> None:
        self.messages -= 1
        if self.messages < 0:
            raise LimitError(
                f"the file holds more than {self.limits.max_messages:,} protobuf messages "
                "(nodes, attributes, tensors, ...), over this loader's limit "
                "(Limits.max_messages); a model this large needs limits= raised")

    def value(self, n: int = 1) -> None:
        self.values -= n
        if self.values < 0:
            raise LimitError(
                f"the file holds more than {self.limits.max_values:,} fields and numbers "
                "stored one by one (tensor data not saved as raw bytes counts here), over "
                "this loader's limit (Limits.max_values); re-save it with raw tensor data "
                "(onnx.numpy_helper.from_array) or raise limits=")


def check_nodes(count: int, limits: Limits) -> None:
    if count > limits.max_nodes:
        raise LimitError(f"the graph has {count:,} nodes, over the limit of "
                             f"{limits.max_nodes:,} (Limits.max_nodes)")


# -- tensors a node produces -------------------------------------------------------------

def check_shape(shape: Sequence[int], what: str, limits: Limits) -> tuple[int, ...]:
    """A shape the file asks for, refused when negative or over `max_elements`."""
    shape = tuple(int(s) for s in shape)
    at = f"{what}: " if what else ""
    if any(s < 0 for s in shape):
        raise ExecutionError(f"{at}refusing to create a tensor of shape {_fmt_shape(shape)} "
                             "(negative dimension)")
    n = math.prod(shape)
    if n > limits.max_elements:
        raise LimitError(f"{at}refusing to create a tensor of shape {_fmt_shape(shape)} = "
                         f"{n:,} elements, over the limit of {limits.max_elements:,} per "
                         "tensor (Limits.max_elements)")
    return shape


def _shape(v: Any) -> tuple[int, ...] | None:
    s = getattr(v, "shape", None)
    return None if s is None else tuple(int(d) for d in s)


def broadcast_shapes(*shapes: Sequence[int]) -> tuple[int, ...] | None:
    """NumPy's broadcasting rule in Python ints (None when the shapes do not broadcast):
    `np.broadcast_shapes` fails on sizes past 2**31 where NumPy is 32-bit (Pyodide), which
    would hide exactly the shapes this module must refuse."""
    rank = max((len(s) for s in shapes), default=0)
    out = [1] * rank
    for s in shapes:
        for i, d in enumerate(s, rank - len(s)):
            d = int(d)
            if d != 1 and out[i] not in (1, d):
                return None
            out[i] = d if d != 1 else out[i]
    return tuple(out)


def _broadcast(vals: Sequence[Any]) -> tuple[int, ...] | None:
    shapes = [s for s in (_shape(v) for v in vals) if s is not None]
    return broadcast_shapes(*shapes) if shapes else None  # None: the op reports it


def _matmul(vals: Sequence[Any], attrs: dict) -> tuple[int, ...] | None:
    a, b = (_shape(v) for v in vals[:2])
    if not a or not b:
        return None
    if attrs.get("transA"):
        a = a[::-1]
    if attrs.get("transB"):
        b = b[::-1]
    if len(a) == 1 or len(b) == 1:
        return (*a[:-1], *b[:-2], *b[-1:]) if len(a) == 1 else (*a[:-1],)
    batch = broadcast_shapes(a[:-2], b[:-2])
    return None if batch is None else (*batch, a[-2], b[-1])


def _gather(vals: Sequence[Any], attrs: dict) -> tuple[int, ...] | None:
    x, idx = (_shape(v) for v in vals[:2])
    if not x or idx is None:
        return None
    axis = int(attrs.get("axis") or 0) % len(x)
    return (*x[:axis], *idx, *x[axis + 1:])


def _concat(vals: Sequence[Any], attrs: dict) -> tuple[int, ...] | None:
    shapes = [s for s in (_shape(v) for v in vals) if s]
    if not shapes:
        return None
    axis = int(attrs.get("axis") or 0) % len(shapes[0])
    out = list(shapes[0])
    out[axis] = sum(s[axis] if len(s) > axis else 0 for s in shapes)
    return tuple(out)


def _conv(vals: Sequence[Any], attrs: dict) -> tuple[int, ...] | None:
    """Conv's output shape; with odd attributes (the op rejects them itself) an upper
    bound: every padded input position for every output channel."""
    x, w = (_shape(v) for v in vals[:2])
    if not x or not w or len(x) < 3:
        return None
    nd = len(x) - 2
    pads = [int(p) for p in attrs.get("pads") or [0] * 2 * nd]
    padded = [n + (pads[i] + pads[i + nd] if len(pads) == 2 * nd else 0)
              for i, n in enumerate(x[2:])]
    strides = [int(s) for s in attrs.get("strides") or [1] * nd]
    dilations = [int(d) for d in attrs.get("dilations") or [1] * nd]
    if len(w) != len(x) or len(strides) != nd or len(dilations) != nd or \
            min(strides + dilations + pads + [0]) < 0 or 0 in strides:
        return (x[0], w[0], *(max(n, 0) for n in padded))
    if attrs.get("auto_pad") in ("SAME_UPPER", "SAME_LOWER"):
        return (x[0], w[0], *(-(-n // s) for n, s in zip(x[2:], strides)))
    spans = [(k - 1) * d + 1 for k, d in zip(w[2:], dilations)]
    return (x[0], w[0], *(max(0, (n - k) // s + 1) for n, k, s in zip(padded, spans, strides)))


def _largest_input(vals: Sequence[Any], attrs: dict) -> tuple[int, ...] | None:
    shapes = [s for s in (_shape(v) for v in vals) if s is not None]
    return max(shapes, key=math.prod) if shapes else None


# Output shape (or an upper bound) of the ops that can produce more elements than their
# largest input; every other op (elementwise, reductions, pooling, reshapes) makes at most
# as many as its largest input. Ops that build shapes from values (ConstantOfShape,
# Expand, Range, Pad, ConvTranspose) check them in ops.py through `Ctx.guard`.
_BROADCASTING = ("Add", "Sub", "Mul", "Div", "Pow", "Where", "Equal", "Less", "Greater",
                 "LessOrEqual", "GreaterOrEqual", "Max", "Min", "Sum", "Mean", "PRelu")
OUTPUT_BOUNDS: dict[str, Callable[[Sequence[Any], dict], tuple[int, ...] | None]] = {
    **{op: (lambda vals, attrs: _broadcast(vals)) for op in _BROADCASTING},
    "MatMul": _matmul, "Gemm": _matmul, "Gather": _gather, "Concat": _concat, "Conv": _conv,
}


def output_bound(op_type: str, vals: Sequence[Any], attrs: dict) -> tuple[int, ...] | None:
    return OUTPUT_BOUNDS.get(op_type, _largest_input)(vals, attrs)


def itemsize(vals: Sequence[Any], attrs: dict) -> int:
    """Bytes per output element: the widest input's (Cast: its target type's)."""
    if "to" in attrs:
        from ._proto import DTYPES

        dt = DTYPES.get(attrs.get("to"))
        if dt is not None:
            return dt.itemsize
    sizes = [np.dtype(v.dtype).itemsize for v in vals if getattr(v, "dtype", None) is not None]
    return max(sizes, default=8)


def nbytes(v: Any) -> int:
    """Bytes a value holds (a NumPy array, a Tensor, or anything small)."""
    shape = _shape(v)
    if shape is None:
        return 0
    return math.prod(shape) * np.dtype(getattr(v, "dtype", np.float64)).itemsize


class SpendBudget:
    """Bytes spent on values, against one limit (constants at load, values in a call)."""

    __slots__ = ("left", "limit", "field", "what")

    def __init__(self, limit: int, field: str, what: str, spent: int = 0) -> None:
        self.limit, self.field, self.what = limit, field, what
        self.left = limit - spent

    def before(self, node_what: str, shape: Sequence[int], size: int) -> None:
        """Refuse a value of `shape` x `size` bytes that does not fit what is left."""
        need = math.prod(shape) * size
        if need > self.left:
            at = f"{node_what}: " if node_what else ""
            raise LimitError(
                f"{at}a tensor of shape {_fmt_shape(shape)} ({_fmt_bytes(need)}) would take "
                f"{self.what} past the limit of {_fmt_bytes(self.limit)} "
                f"(Limits.{self.field})")

    def spend(self, n: int) -> None:
        self.left -= n


def check_node(op_type: str, node_what: str, vals: Sequence[Any], attrs: dict,
               limits: Limits, budget: SpendBudget | None) -> None:
    """Before running a node: its output must fit `max_elements` and what `budget` has
    left."""
    shape = output_bound(op_type, vals, attrs)
    if shape is None:
        return
    check_shape(shape, node_what, limits)
    if budget is not None:
        budget.before(node_what, shape, itemsize(vals, attrs))


__all__ = ["Limits", "DEFAULT", "DecodeBudget", "SpendBudget", "broadcast_shapes",
           "check_nodes", "check_shape", "check_node", "output_bound", "listing", "listed",
           "short", "cut", "nbytes", "MAX_LISTED"]

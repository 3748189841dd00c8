"""The one table: ONNX op name -> engine implementation, with the spec's attribute defaults.

Each implementation takes a `Ctx` and the node's inputs, which are either NumPy arrays
(constants and shape arithmetic, known on the host) or engine Tensors (data on the
device), plus the attributes as keyword arguments. It returns one value or a tuple.

When every input of a node is a host array, the importer runs the same implementation on
CPU Tensors and keeps the result on the host: shape subgraphs (Shape -> Gather -> Concat
-> Reshape, as PyTorch emits them) are folded with NumPy and never reach the GPU. So
there is one implementation per op, and it is written with engine ops, which makes an
imported model differentiable (trainable) on every device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import functions as ops
from ..nn import functional as F
from ..tensor import Tensor, cat, maximum, minimum, where
from . import recurrent
from ._proto import DTYPES, UnsupportedAttribute
from .errors import ExecutionError, UnsupportedOpError
from .limits import (
    DEFAULT,
    Limits,
    SpendBudget,
    broadcast_shapes,
    check_shape,
    cut,
    listed,
    short,
)

Value = Any  # np.ndarray (host) or Tensor (device)
INT_MAX = 2**63 - 1


class Ctx:
    """Where a node runs: device, training flag, opset, and how to turn values into
    Tensors (host constants are uploaded once per device and cached), and the budget
    that shapes built from the file's values are checked against (`limits`)."""

    def __init__(self, device: str, training: bool, opset: int, node: Any = None,
                 cache: dict | None = None, limits: Limits = DEFAULT,
                 budget: SpendBudget | None = None) -> None:
        self.device, self.training, self.opset, self.node = device, training, opset, node
        self.n_outputs = len(node.output) if node is not None else 1
        self.cache = cache
        self.limits, self.budget = limits, budget

    @property
    def host_mode(self) -> bool:
        return self.cache is None

    def t(self, x: Value) -> Tensor:
        """x as a Tensor on this context's device."""
        if isinstance(x, Tensor):
            return x
        arr = np.asarray(x)
        if self.cache is None:  # host mode: CPU tensors over the same memory, any dtype
            return Tensor._wrap(arr, "cpu")
        key = (id(x), self.device)
        hit = self.cache.get(key)
        if hit is not None and hit[0] is x:
            return hit[1]
        t = Tensor(arr, device=self.device, dtype=arr.dtype)
        if key[0] in self.cache.get("const_ids", ()):  # only the model's own constants
            self.cache[key] = (x, t)
        return t

    @staticmethod
    def h(x: Value) -> np.ndarray:
        """x on the host (a Tensor is read back: only for attribute-like inputs)."""
        return x.numpy() if isinstance(x, Tensor) else np.asarray(x)

    def ints(self, x: Value | None) -> list[int] | None:
        return None if x is None else [int(v) for v in self.h(x).reshape(-1)]

    def guard(self, shape: Any, what: str, itemsize: int = 4) -> tuple[int, ...]:
        """A shape computed from the file's values, checked before it is allocated (in a
        node, the importer's message names the node: `what` is left out)."""
        what = "" if self.node is not None else what
        shape = check_shape(shape, what, self.limits)
        if self.budget is not None:
            self.budget.before(what, shape, itemsize)
        return shape


@dataclass(frozen=True)
class Op:
    fn: Callable[..., Any]
    attrs: dict[str, Any] = field(default_factory=dict)  # ONNX spec defaults
    consts: tuple[int, ...] = ()   # attribute-like inputs (shapes, axes, pads): host values
    buffers: tuple[int, ...] = ()  # float initializers here are state, not parameters
    check: Callable[[dict[str, Any]], str | None] | None = None  # load-time attribute check
    outputs: int = 1  # how many outputs the implementation produces


# -- helpers ---------------------------------------------------------------------------

def _is_int(t: Tensor) -> bool:
    return t.dtype.kind in "iub"


def _scalar(x: Value) -> float | None:
    """A 0-d host float as a Python float (engine ops take scalars without an upload)."""
    if isinstance(x, np.ndarray) and x.ndim == 0 and x.dtype.kind == "f":
        return float(x)
    return None


def _binary(name: str) -> Callable[..., Any]:
    def fn(ctx: Ctx, a: Value, b: Value) -> Value:
        sb = _scalar(b) if isinstance(a, Tensor) else None
        if sb is not None and not _is_int(a):
            return {"Add": a.__add__, "Sub": a.__sub__, "Mul": a.__mul__, "Div": a.__truediv__,
                    "Pow": a.__pow__}[name](sb)
        ta, tb = ctx.t(a), ctx.t(b)
        if name == "Pow" and tb.dtype != ta.dtype:
            tb = tb.astype(ta.dtype)
        if name == "Div" and _is_int(ta):  # integer division truncates toward zero
            q = np.trunc(ctx.h(ta) / ctx.h(tb)).astype(ta.dtype)
            return q if ctx.host_mode else ctx.t(q)
        return {"Add": ta.__add__, "Sub": ta.__sub__, "Mul": ta.__mul__, "Div": ta.__truediv__,
                "Pow": ta.__pow__}[name](tb)
    return fn


def _unary(f: Callable[[Tensor], Tensor]) -> Callable[..., Any]:
    return lambda ctx, x: f(ctx.t(x))


def _axis_softmax(kind: str) -> Callable[..., Any]:
    f = F.softmax if kind == "softmax" else F.log_softmax

    def fn(ctx: Ctx, x: Value, axis: int | None = None) -> Tensor:
        x = ctx.t(x)
        if ctx.opset >= 13:
            return f(x, -1 if axis is None else axis)
        a = (1 if axis is None else axis) % max(x.ndim, 1)  # opset < 13: coerce to 2-D
        shape = x.shape
        return f(x.reshape(math.prod(shape[:a]), -1), 1).reshape(shape)
    return fn


def _spatial(x: Tensor, what: str) -> int:
    nd = x.ndim - 2
    if nd not in (1, 2):
        raise ExecutionError(f"{what}: only 1-D and 2-D spatial inputs (N, C, L) or "
                             f"(N, C, H, W) are supported, got shape {x.shape}")
    return nd


def _to2d(vals: list[int] | None, nd: int, fill: int) -> list[int]:
    vals = list(vals) if vals else [fill] * nd
    return [fill] + vals if nd == 1 else vals


def _pads(auto_pad: str, pads: list[int] | None, size: list[int], k: list[int],
          s: list[int], d: list[int], nd: int, ceil: bool = False) -> tuple[list, list]:
    """(begin, end) pads for 2 spatial dims, from explicit pads or auto_pad."""
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for n, kk, ss, dd in zip(size, k, s, d):
            total = max(0, (-(-n // ss) - 1) * ss + (kk - 1) * dd + 1 - n)
            lo = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            begin.append(lo)
            end.append(total - lo)
        return begin, end
    if auto_pad == "VALID" or not pads:
        begin, end = [0, 0], [0, 0]
    else:
        begin, end = _to2d(pads[:nd], nd, 0), _to2d(pads[nd:], nd, 0)
    if ceil:  # ceil-mode output size as extra end padding (windows may not start in it)
        for i in range(2):
            span = (k[i] - 1) * d[i] + 1
            total = size[i] + begin[i] + end[i]
            out = -(-(total - span) // s[i]) + 1
            if (out - 1) * s[i] >= size[i] + begin[i]:
                out -= 1
            end[i] += max(0, (out - 1) * s[i] + span - total)
    return begin, end


def _pad_hw(x: Tensor, begin: list[int], end: list[int], value: float,
            ctx: Ctx | None = None) -> Tensor:
    if ctx is not None:  # padding comes from the file: bound what it makes us allocate
        ctx.guard((*x.shape[:2], x.shape[2] + begin[0] + end[0], x.shape[3] + begin[1]
                   + end[1]), ctx.node.op_type if ctx.node is not None else "pad")
    if not any(begin) and not any(end):
        return x
    return ops.Pad.apply(x, widths=[(0, 0), (0, 0), (begin[0], end[0]), (begin[1], end[1])],
                         value=value)


def _as4d(x: Tensor, nd: int) -> Tensor:
    return x.reshape(x.shape[0], x.shape[1], 1, x.shape[2]) if nd == 1 else x


def _from4d(y: Tensor, nd: int) -> Tensor:
    return y.reshape(y.shape[0], y.shape[1], y.shape[3]) if nd == 1 else y


def _check_auto_pad(a: dict) -> str | None:
    ap = a.get("auto_pad", "NOTSET")
    return None if ap in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER") else \
        f"auto_pad={ap!r} is not a valid setting"


# -- convolution and pooling -------------------------------------------------------------

def conv(ctx: Ctx, x: Value, w: Value, b: Value = None, *, auto_pad: str, dilations: Any,
         group: int, kernel_shape: Any, pads: Any, strides: Any) -> Tensor:
    x, w = ctx.t(x), ctx.t(w)
    nd = _spatial(x, "Conv")
    x4, w4 = _as4d(x, nd), (w.reshape(*w.shape[:2], 1, w.shape[2]) if nd == 1 else w)
    k, s, d = list(w4.shape[2:]), _to2d(strides, nd, 1), _to2d(dilations, nd, 1)
    begin, end = _pads(auto_pad, pads, list(x4.shape[2:]), k, s, d, nd)
    ctx.guard((*x4.shape[:2], x4.shape[2] + begin[0] + end[0], x4.shape[3] + begin[1] + end[1]),
              "Conv")
    sym = [min(begin[i], end[i]) for i in range(2)]
    x4 = _pad_hw(x4, [begin[i] - sym[i] for i in range(2)], [end[i] - sym[i] for i in range(2)],
                 0.0)
    y = F.conv2d(x4, w4, None if b is None else ctx.t(b), tuple(s), tuple(sym), tuple(d),
                 int(group))
    return _from4d(y, nd)


def conv_transpose(ctx: Ctx, x: Value, w: Value, b: Value = None, *, auto_pad: str,
                   dilations: Any, group: int, kernel_shape: Any, output_padding: Any,
                   output_shape: Any, pads: Any, strides: Any) -> Tensor:
    """The adjoint of Conv (its input gradient), computed unpadded and then cropped."""
    x, w = ctx.t(x), ctx.t(w)
    nd = _spatial(x, "ConvTranspose")
    x4, w4 = _as4d(x, nd), (w.reshape(*w.shape[:2], 1, w.shape[2]) if nd == 1 else w)
    k, s, d = list(w4.shape[2:]), _to2d(strides, nd, 1), _to2d(dilations, nd, 1)
    op = _to2d(output_padding, nd, 0)
    size = list(x4.shape[2:])
    full = [s[i] * (size[i] - 1) + (k[i] - 1) * d[i] + 1 + op[i] for i in range(2)]
    if output_shape or auto_pad in ("SAME_UPPER", "SAME_LOWER"):  # the spec's formula
        want = _to2d(list(output_shape)[-nd:], nd, 1) if output_shape else \
            [size[i] * s[i] for i in range(2)]
        full = [max(f, w) for f, w in zip(full, want)]  # larger: extra output padding
        total = [full[i] - want[i] for i in range(2)]
        begin = [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in total]
        end = [total[i] - begin[i] for i in range(2)]
    else:
        begin, end = _pads(auto_pad, pads, size, k, s, d, nd)
    ctx.guard((x4.shape[0], w4.shape[1] * int(group), *full), "ConvTranspose")
    y = ops.ConvTranspose2d.apply(x4, w4, out_hw=tuple(full), stride=tuple(s),
                                  padding=(0, 0), dilation=tuple(d), groups=int(group))
    if any(begin) or any(end):
        y = y[:, :, begin[0]: full[0] - end[0], begin[1]: full[1] - end[1]]
    if b is not None:
        y = y + ctx.t(b).reshape(1, -1, 1, 1)
    return _from4d(y, nd)


def max_pool(ctx: Ctx, x: Value, *, auto_pad: str, ceil_mode: int, dilations: Any,
             kernel_shape: list[int], pads: Any, storage_order: int, strides: Any) -> Tensor:
    x = ctx.t(x)
    nd = _spatial(x, "MaxPool")
    x4 = _as4d(x, nd)
    k, s, d = _to2d(kernel_shape, nd, 1), _to2d(strides, nd, 1), _to2d(dilations, nd, 1)
    begin, end = _pads(auto_pad, pads, list(x4.shape[2:]), k, s, d, nd, bool(ceil_mode))
    x4 = _pad_hw(x4, begin, end, -math.inf, ctx)
    y = ops.MaxPool2d.apply(x4, kernel=tuple(k), stride=tuple(s), padding=(0, 0),
                            dilation=tuple(d))
    return _from4d(y, nd)


def avg_pool(ctx: Ctx, x: Value, *, auto_pad: str, ceil_mode: int, count_include_pad: int,
             dilations: Any, kernel_shape: list[int], pads: Any, strides: Any) -> Tensor:
    """Sum of each padded window divided by the count of cells that ONNX counts."""
    x = ctx.t(x)
    nd = _spatial(x, "AveragePool")
    if dilations and any(v != 1 for v in dilations):
        raise ExecutionError("AveragePool: dilations other than 1 are not supported")
    x4 = _as4d(x, nd)
    k, s = _to2d(kernel_shape, nd, 1), _to2d(strides, nd, 1)
    size = list(x4.shape[2:])
    begin, end = _pads(auto_pad, pads, size, k, s, [1, 1], nd)
    _, cend = _pads("NOTSET", begin + end, size, k, s, [1, 1], 2, bool(ceil_mode))
    kw = {"kernel": tuple(k), "stride": tuple(s), "padding": (0, 0), "count_include_pad": True}
    if cend == end and (not any(begin + end) or count_include_pad):
        return _from4d(ops.AvgPool2d.apply(_pad_hw(x4, begin, end, 0.0, ctx), **kw), nd)
    counted = np.zeros((1, 1, size[0] + begin[0] + cend[0], size[1] + begin[1] + cend[1]),
                       dtype=x.dtype)
    if count_include_pad:
        counted[:, :, : size[0] + begin[0] + end[0], : size[1] + begin[1] + end[1]] = 1
    else:
        counted[:, :, begin[0]: begin[0] + size[0], begin[1]: begin[1] + size[1]] = 1
    num = ops.AvgPool2d.apply(_pad_hw(x4, begin, cend, 0.0, ctx), **kw)
    den = ops.AvgPool2d.apply(Tensor._wrap(counted, "cpu"), **kw).numpy()
    return _from4d(num / ctx.t(den), nd)


def global_pool(kind: str) -> Callable[..., Any]:
    def fn(ctx: Ctx, x: Value) -> Tensor:
        x = ctx.t(x)
        axes = tuple(range(2, x.ndim))
        return x.mean(axes, keepdims=True) if kind == "avg" else x.max(axes, keepdims=True)
    return fn


# -- normalisation, dropout, activations -------------------------------------------------

def batch_norm(ctx: Ctx, x: Value, scale: Value, bias: Value, mean: Value, var: Value, *,
               epsilon: float, momentum: float, training_mode: int, spatial: int = 1
               ) -> Any:
    """Eval: running statistics. Training (module.train() or training_mode=1): batch
    statistics, and the running ones are updated in place as PyTorch does."""
    train = bool(training_mode) or ctx.training
    m, v = ctx.t(mean), ctx.t(var)
    if train and ctx.host_mode:  # never update constants
        m, v = Tensor(m.numpy()), Tensor(v.numpy())
    y = F.batch_norm(ctx.t(x), m, v, ctx.t(scale), ctx.t(bias), train, 1.0 - momentum,
                     epsilon)
    return (y, m, v) if ctx.n_outputs > 1 else y


def dropout(ctx: Ctx, x: Value, ratio: Value = None, training_mode: Value = None, *,
            seed: int | None = None, is_test: int = 0) -> Any:
    p = 0.5 if ratio is None else float(ctx.h(ratio))
    train = ctx.training or (training_mode is not None and bool(ctx.h(training_mode)))
    y = F.dropout(ctx.t(x), p, train and not is_test)
    if ctx.n_outputs > 1:
        mask = (y != 0) if train else np.ones(ctx.t(x).shape, dtype=bool)
        return y, mask
    return y


def _dropout_legacy(ctx: Ctx, x: Value, *, ratio: float = 0.5, is_test: int = 0,
                    seed: Any = None) -> Any:
    return dropout(ctx, x, np.asarray(ratio, np.float32), None, is_test=is_test)


def prelu(ctx: Ctx, x: Value, slope: Value) -> Tensor:
    x = ctx.t(x)
    return where(x > 0, x, x * ctx.t(slope))


def hard_sigmoid(ctx: Ctx, x: Value, *, alpha: float, beta: float) -> Tensor:
    return (ctx.t(x) * alpha + beta).clip(0.0, 1.0)


def gelu(ctx: Ctx, x: Value, *, approximate: str) -> Tensor:
    return F.gelu(ctx.t(x), approximate)


# -- shape and movement ------------------------------------------------------------------

def flatten(ctx: Ctx, x: Value, *, axis: int) -> Tensor:
    x = ctx.t(x)
    a = axis + x.ndim if axis < 0 else axis
    return x.reshape(math.prod(x.shape[:a]), math.prod(x.shape[a:]))


def reshape(ctx: Ctx, x: Value, shape: Value, *, allowzero: int) -> Tensor:
    x = ctx.t(x)
    target = ctx.ints(shape)
    if not allowzero:
        target = [x.shape[i] if s == 0 and i < x.ndim else s for i, s in enumerate(target)]
    return x.reshape(*target)


def transpose(ctx: Ctx, x: Value, *, perm: list[int] | None) -> Tensor:
    x = ctx.t(x)
    return x.permute(*(perm if perm is not None else reversed(range(x.ndim))))


def concat(ctx: Ctx, *xs: Value, axis: int) -> Tensor:
    ts = [ctx.t(x) for x in xs if x is not None]
    return ts[0] if len(ts) == 1 else cat(ts, axis)


def split(ctx: Ctx, x: Value, split: Value = None, *, axis: int,
          num_outputs: int | None = None) -> tuple:
    x = ctx.t(x)
    axis %= x.ndim
    n = x.shape[axis]
    sizes = ctx.ints(split)
    if sizes is None:
        k = num_outputs or ctx.n_outputs
        step = -(-n // k)
        sizes = [min(step, n - i * step) for i in range(k)]
    if sum(sizes) != n or min(sizes) < 0:
        raise ExecutionError(f"Split: sizes {sizes} do not add up to {n} along axis {axis}")
    out, start = [], 0
    for sz in sizes:
        out.append(x[(slice(None),) * axis + (slice(start, start + sz),)])
        start += sz
    return tuple(out)


def _split_legacy(ctx: Ctx, x: Value, *, axis: int, split: Any = None) -> tuple:
    return globals()["split"](ctx, x, None if split is None else np.asarray(split), axis=axis)


def slice_(ctx: Ctx, x: Value, starts: Value, ends: Value, axes: Value = None,
           steps: Value = None) -> Tensor:
    x = ctx.t(x)
    st, en = ctx.ints(starts), ctx.ints(ends)
    ax = ctx.ints(axes) or list(range(len(st)))
    sp = ctx.ints(steps) or [1] * len(st)
    index = [slice(None)] * x.ndim
    for a, b, e, s in zip(ax, st, en, sp):
        if s == 0:
            raise ExecutionError("Slice: steps must not be 0")
        index[a % x.ndim] = slice(max(min(b, INT_MAX), -INT_MAX), max(min(e, INT_MAX),
                                                                      -INT_MAX), s)
    return x[tuple(index)]


def _slice_legacy(ctx: Ctx, x: Value, *, starts: list, ends: list, axes: Any = None) -> Tensor:
    return slice_(ctx, x, np.asarray(starts), np.asarray(ends),
                  None if axes is None else np.asarray(axes))


def gather(ctx: Ctx, x: Value, idx: Value, *, axis: int) -> Tensor:
    x = ctx.t(x)
    axis %= x.ndim
    if isinstance(idx, np.ndarray):  # host indices: a plain (advanced) index
        return x[(slice(None),) * axis + (idx.astype(np.int64),)]
    idx = ctx.t(idx)  # device indices: a row gather, never read back
    moved = x if axis == 0 else x.permute(axis, *[i for i in range(x.ndim) if i != axis])
    rows = ops.GatherRows.apply(moved.reshape(moved.shape[0], -1), idx.long())
    out = rows.reshape(*idx.shape, *moved.shape[1:])
    if axis:
        r = idx.ndim
        order = list(range(r, r + axis)) + list(range(r)) + list(range(r + axis, out.ndim))
        out = out.permute(*order)
    return out


def shape(ctx: Ctx, x: Value, *, start: int = 0, end: int | None = None) -> np.ndarray:
    return np.asarray(x.shape[start:end], dtype=np.int64)


def size(ctx: Ctx, x: Value) -> np.ndarray:
    return np.asarray(math.prod(x.shape), dtype=np.int64)


def constant(ctx: Ctx, **a: Any) -> np.ndarray:
    given = {k: v for k, v in a.items() if v is not None}
    if len(given) != 1:
        raise ExecutionError(f"Constant: needs exactly one value attribute, got {sorted(given)}")
    k, v = next(iter(given.items()))
    if k in ("value_string", "value_strings", "sparse_value"):
        raise ExecutionError(f"Constant: {k} is not supported")
    dt = np.float32 if k.startswith("value_float") else np.int64 if k.startswith("value_int") \
        else None
    return np.asarray(v, dtype=dt)


def constant_of_shape(ctx: Ctx, shp: Value, *, value: Any = None) -> np.ndarray:
    fill = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    shape = ctx.guard(ctx.ints(shp), "ConstantOfShape", fill.dtype.itemsize)
    return np.full(shape, fill[0], dtype=fill.dtype)


def _axes(ctx: Ctx, axes_in: Value, axes_attr: Any) -> list[int] | None:
    return ctx.ints(axes_in) if axes_in is not None else axes_attr


def squeeze(ctx: Ctx, x: Value, axes: Value = None, *, axes_attr: Any = None) -> Tensor:
    x = ctx.t(x)
    ax = _axes(ctx, axes, axes_attr)
    ax = [i for i, s in enumerate(x.shape) if s == 1] if ax is None else [a % x.ndim for a in ax]
    if any(x.shape[a] != 1 for a in ax):
        raise ExecutionError(f"Squeeze: axes {ax} of shape {x.shape} are not all 1")
    return x.reshape(*[s for i, s in enumerate(x.shape) if i not in ax])


def unsqueeze(ctx: Ctx, x: Value, axes: Value = None, *, axes_attr: Any = None) -> Tensor:
    x = ctx.t(x)
    ax = _axes(ctx, axes, axes_attr) or []
    r = x.ndim + len(ax)
    ax = sorted(a % r for a in ax)
    dims = iter(x.shape)
    return x.reshape(*[1 if i in ax else next(dims) for i in range(r)])


def _reduce(kind: str) -> Callable[..., Any]:
    def fn(ctx: Ctx, x: Value, axes: Value = None, *, keepdims: int,
           noop_with_empty_axes: int, axes_attr: Any = None) -> Tensor:
        x = ctx.t(x)
        ax = _axes(ctx, axes, axes_attr)
        if not ax:
            if noop_with_empty_axes:
                return x
            ax = list(range(x.ndim))
        ax = tuple(sorted({a % x.ndim for a in ax}))
        k = bool(keepdims)
        if x.size == 0 and kind in ("max", "min"):  # the spec's identities: -inf / +inf
            shape = [1 if i in ax else n for i, n in enumerate(x.shape) if k or i not in ax]
            big = True if x.dtype == bool else np.inf if x.dtype.kind == "f" else \
                np.iinfo(x.dtype).max
            fill = np.full(shape, (not big) if x.dtype == bool and kind == "max" else
                           (-big if kind == "max" else big), dtype=x.dtype)
            return fill if ctx.host_mode else ctx.t(fill)
        return _REDUCERS[kind](x, ax, k)
    return fn


_REDUCERS: dict[str, Callable[[Tensor, tuple, bool], Tensor]] = {
    "mean": lambda x, ax, k: x.mean(ax, keepdims=k),
    "sum": lambda x, ax, k: x.sum(ax, keepdims=k),
    "max": lambda x, ax, k: x.max(ax, keepdims=k),
    "min": lambda x, ax, k: x.min(ax, keepdims=k),
    "sumsquare": lambda x, ax, k: (x * x).sum(ax, keepdims=k),
    "l2": lambda x, ax, k: (x * x).sum(ax, keepdims=k).sqrt(),
}


def clip(ctx: Ctx, x: Value, lo: Value = None, hi: Value = None, *, min: Any = None,  # noqa: A002
         max: Any = None) -> Tensor:  # noqa: A002
    x = ctx.t(x)
    lo_v = min if lo is None else ctx.h(lo).item()
    hi_v = max if hi is None else ctx.h(hi).item()
    if lo_v is None and hi_v is None:
        return x
    return x.clip(lo_v, hi_v)


def pad(ctx: Ctx, x: Value, pads: Value = None, value: Value = None, axes: Value = None, *,
        mode: str, pads_attr: Any = None, value_attr: float = 0.0) -> Tensor:
    x = ctx.t(x)
    p = ctx.ints(pads) if pads is not None else list(pads_attr or [])
    ax = ctx.ints(axes) if axes is not None else list(range(x.ndim))
    if len(p) != 2 * len(ax):
        raise ExecutionError(f"Pad: {len(p)} pad values for {len(ax)} axes")
    fill = value_attr if value is None or ctx.h(value).size == 0 else ctx.h(value).item()
    widths, crop = [(0, 0)] * x.ndim, [slice(None)] * x.ndim
    for i, a in enumerate(ax):
        lo, hi = p[i], p[i + len(ax)]
        widths[a % x.ndim] = (max(lo, 0), max(hi, 0))
        crop[a % x.ndim] = slice(-min(lo, 0), x.shape[a % x.ndim] + min(hi, 0))
    if any(lo < 0 or hi < 0 for lo, hi in zip(p[:len(ax)], p[len(ax):])):
        x = x[tuple(crop)]
    if all(w == (0, 0) for w in widths):
        return x
    ctx.guard([s + lo + hi for s, (lo, hi) in zip(x.shape, widths)], "Pad", x.dtype.itemsize)
    return ops.Pad.apply(x, widths=widths, value=float(fill))


def _check_pad(a: dict) -> str | None:
    return None if a.get("mode", "constant") == "constant" else \
        f"mode={a['mode']!r} (only 'constant' padding is supported)"


def cast(ctx: Ctx, x: Value, *, to: int, saturate: int = 1, round_mode: str = "up") -> Value:
    if to not in DTYPES:
        raise ExecutionError(f"Cast: target type {to} is not supported")
    dt = DTYPES[to]
    if isinstance(x, np.ndarray):  # host values: NumPy handles every dtype
        return x.astype(dt)
    return x if x.dtype == dt else x.astype(dt)


def _check_cast(a: dict) -> str | None:
    return None if a.get("to") in DTYPES else f"to={a.get('to')} is not a supported type"


def variadic(combine: Callable[[Tensor, Tensor], Tensor], mean: bool = False
             ) -> Callable[..., Any]:
    def fn(ctx: Ctx, *xs: Value) -> Tensor:
        ts = [ctx.t(x) for x in xs]
        out = ts[0]
        for t in ts[1:]:
            out = combine(out, t)
        return out * (1.0 / len(ts)) if mean else out
    return fn


def gather_elements(ctx: Ctx, x: Value, idx: Value, *, axis: int) -> Tensor:
    x = ctx.t(x)
    axis %= x.ndim
    if isinstance(idx, np.ndarray):  # negative indices count from the end
        idx = np.where(idx < 0, idx + x.shape[axis], idx).astype(np.int64)
    idx = ctx.t(idx)
    crop = tuple(slice(None) if a == axis else slice(0, n) for a, n in enumerate(idx.shape))
    if any(n != s for a, (n, s) in enumerate(zip(idx.shape, x.shape)) if a != axis):
        x = x[crop]
    return ops.TakeAlong.apply(x, idx.long(), axis=axis)


def expand(ctx: Ctx, x: Value, shp: Value) -> Tensor:
    x = ctx.t(x)
    want = tuple(ctx.ints(shp))
    target = broadcast_shapes(x.shape, want)  # in Python ints: see limits.broadcast_shapes
    if target is None:
        raise ExecutionError(f"Expand: shape {x.shape} cannot be broadcast to {want}")
    target = ctx.guard(target, "Expand", x.dtype.itemsize)
    x = x.reshape(*(1,) * (len(target) - x.ndim), *x.shape)
    return x if x.shape == target else ops.BroadcastTo.apply(x, shape=target)


def where_(ctx: Ctx, c: Value, a: Value, b: Value) -> Tensor:
    return where(ctx.t(c), ctx.t(a), ctx.t(b))


def compare(op: str) -> Callable[..., Any]:
    return lambda ctx, a, b: ctx.t(a)._compare(op, ctx.t(b))


def range_(ctx: Ctx, start: Value, limit: Value, delta: Value) -> np.ndarray:
    s, lim, d = (ctx.h(v).item() for v in (start, limit, delta))
    n = max(0, math.ceil((lim - s) / d)) if d else 0
    ctx.guard([n], "Range", 8)
    return np.arange(n, dtype=ctx.h(start).dtype) * d + s


def gemm(ctx: Ctx, a: Value, b: Value, c: Value = None, *, alpha: float, beta: float,
         transA: int, transB: int) -> Tensor:
    a, b = ctx.t(a), ctx.t(b)
    y = (a.T if transA else a) @ (b.T if transB else b)
    if alpha != 1.0:
        y = y * alpha
    if c is not None and beta != 0.0:
        y = y + (ctx.t(c) if beta == 1.0 else ctx.t(c) * beta)
    return y


def identity(ctx: Ctx, x: Value) -> Value:
    return x


_POOL = {"auto_pad": "NOTSET", "kernel_shape": None, "pads": None, "strides": None,
         "ceil_mode": 0}
_REDUCE = {"keepdims": 1, "noop_with_empty_axes": 0, "axes_attr": None}

# The table. Attribute defaults are the ONNX spec's; `axes_attr`, `pads_attr`, ... are the
# older opsets' attribute forms of what later became inputs (the importer renames them).
OPS: dict[str, Op] = {
    "Conv": Op(conv, {"auto_pad": "NOTSET", "dilations": None, "group": 1,
                      "kernel_shape": None, "pads": None, "strides": None},
               check=_check_auto_pad),
    "ConvTranspose": Op(conv_transpose, {"auto_pad": "NOTSET", "dilations": None, "group": 1,
                                         "kernel_shape": None, "output_padding": None,
                                         "output_shape": None, "pads": None, "strides": None},
                        check=_check_auto_pad),
    "Gemm": Op(gemm, {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0}),
    "MatMul": Op(lambda ctx, a, b: ctx.t(a) @ ctx.t(b)),
    "Add": Op(_binary("Add")), "Sub": Op(_binary("Sub")), "Mul": Op(_binary("Mul")),
    "Div": Op(_binary("Div")), "Pow": Op(_binary("Pow")),
    "Sqrt": Op(_unary(Tensor.sqrt)), "Exp": Op(_unary(Tensor.exp)),
    "Log": Op(_unary(Tensor.log)), "Neg": Op(_unary(Tensor.__neg__)),
    "Abs": Op(_unary(Tensor.abs)), "Reciprocal": Op(_unary(lambda x: 1.0 / x)),
    "Erf": Op(_unary(lambda x: ops.Erf.apply(x))),
    "Relu": Op(_unary(F.relu)), "Sigmoid": Op(_unary(F.sigmoid)), "Tanh": Op(_unary(F.tanh)),
    "Softplus": Op(_unary(F.softplus)),
    "LeakyRelu": Op(lambda ctx, x, *, alpha: F.leaky_relu(ctx.t(x), alpha), {"alpha": 0.01}),
    "Elu": Op(lambda ctx, x, *, alpha: F.elu(ctx.t(x), alpha), {"alpha": 1.0}),
    "PRelu": Op(prelu),
    "HardSigmoid": Op(hard_sigmoid, {"alpha": 0.2, "beta": 0.5}),
    "HardSwish": Op(lambda ctx, x: ctx.t(x) * hard_sigmoid(ctx, x, alpha=1 / 6, beta=0.5)),
    "Gelu": Op(gelu, {"approximate": "none"}),
    # axis: the spec's default is -1 from opset 13 and 1 (with 2-D coercion) before it
    "Softmax": Op(_axis_softmax("softmax"), {"axis": None}),
    "LogSoftmax": Op(_axis_softmax("log_softmax"), {"axis": None}),
    "MaxPool": Op(max_pool, {**_POOL, "dilations": None, "storage_order": 0},
                  check=lambda a: _check_auto_pad(a) or (
                      "storage_order=1 is not supported" if a.get("storage_order") else None)),
    "AveragePool": Op(avg_pool, {**_POOL, "count_include_pad": 0, "dilations": None},
                      check=_check_auto_pad),
    "GlobalAveragePool": Op(global_pool("avg")), "GlobalMaxPool": Op(global_pool("max")),
    "BatchNormalization": Op(batch_norm, {"epsilon": 1e-5, "momentum": 0.9, "training_mode": 0,
                                          "spatial": 1},
                             buffers=(3, 4), outputs=3),
    "Dropout": Op(dropout, {"seed": None, "is_test": 0}, consts=(1, 2), outputs=2),
    "Flatten": Op(flatten, {"axis": 1}),
    "Reshape": Op(reshape, {"allowzero": 0}, consts=(1,)),
    "Transpose": Op(transpose, {"perm": None}),
    "Concat": Op(concat, {"axis": None}),
    "Split": Op(split, {"axis": 0, "num_outputs": None}, consts=(1,), outputs=1 << 16),
    "Slice": Op(slice_, consts=(1, 2, 3, 4)),
    "Gather": Op(gather, {"axis": 0}),
    "Shape": Op(shape, {"start": 0, "end": None}),
    "Size": Op(size),
    "Constant": Op(constant, {k: None for k in (
        "value", "value_float", "value_floats", "value_int", "value_ints", "value_string",
        "value_strings", "sparse_value")}),
    "ConstantOfShape": Op(constant_of_shape, {"value": None}, consts=(0,)),
    "Identity": Op(identity),
    "Squeeze": Op(squeeze, {"axes_attr": None}, consts=(1,)),
    "Unsqueeze": Op(unsqueeze, {"axes_attr": None}, consts=(1,)),
    "ReduceMean": Op(_reduce("mean"), _REDUCE, consts=(1,)),
    "ReduceMax": Op(_reduce("max"), _REDUCE, consts=(1,)),
    "ReduceMin": Op(_reduce("min"), _REDUCE, consts=(1,)),
    "ReduceSum": Op(_reduce("sum"), _REDUCE, consts=(1,)),
    "ReduceSumSquare": Op(_reduce("sumsquare"), _REDUCE, consts=(1,)),
    "ReduceL2": Op(_reduce("l2"), _REDUCE, consts=(1,)),
    "Clip": Op(clip, {"min": None, "max": None}, consts=(1, 2)),
    "Pad": Op(pad, {"mode": "constant", "pads_attr": None, "value_attr": 0.0},
              consts=(1, 2, 3), check=_check_pad),
    "Cast": Op(cast, {"to": None, "saturate": 1, "round_mode": "up"}, check=_check_cast),
    "CastLike": Op(lambda ctx, x, like, *, saturate=1, round_mode="up": cast(
        ctx, x, to=next(k for k, v in DTYPES.items() if v == like.dtype)),
        {"saturate": 1, "round_mode": "up"}),
    "GatherElements": Op(gather_elements, {"axis": 0}),
    "Max": Op(variadic(maximum)), "Min": Op(variadic(minimum)),
    "Sum": Op(variadic(Tensor.__add__)), "Mean": Op(variadic(Tensor.__add__, mean=True)),
    "Expand": Op(expand, consts=(1,)),
    "Where": Op(where_),
    "Equal": Op(compare("eq")), "Less": Op(compare("lt")), "Greater": Op(compare("gt")),
    "LessOrEqual": Op(compare("le")), "GreaterOrEqual": Op(compare("ge")),
    "Range": Op(range_, consts=(0, 1, 2)),
    # recurrent layers (issue 15): sequence_lens (input 4) is read on the host
    "RNN": Op(recurrent.rnn, recurrent.ATTRS["RNN"], consts=(4,), outputs=2,
              check=recurrent.check("RNN")),
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
    ("Split", 13): Op(_split_legacy, {"axis": 0, "split": None}, outputs=1 << 16),
    ("Slice", 10): Op(_slice_legacy, {"starts": None, "ends": None, "axes": None}),
    ("Dropout", 12): Op(_dropout_legacy, {"ratio": 0.5, "is_test": 0, "seed": None},
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

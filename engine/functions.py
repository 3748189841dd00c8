"""The core differentiable ops: each forward beside its backward, on Backend primitives.

Forward and backward take and return backend arrays, so every op runs on every device.
Composite ops (convolution, pooling, batch norm, softmax, pad, concat, clip, the FM
interaction) are fused kernels in `engine.fused`; their old names here (`Conv2d`,
`MaxPool2d`, `FMPairwise`, ...) still work: `functions.Conv2d.apply(x, w, ...)`.
"""

from __future__ import annotations

import math
from typing import Any

from .autograd import Function

Array = Any


def unbroadcast(b, g: Array, shape: tuple[int, ...]) -> Array:
    """Sum a broadcast gradient back down to `shape`."""
    if tuple(g.shape) == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1)
    if axes:
        g = b.reduce("sum", g, axes, keepdims=True)
    return b.reshape(g, shape)


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(x.shape) if hasattr(x, "shape") else ()


# -- elementwise binary (NumPy broadcasting) -------------------------------------------

class Add(Function):
    def forward(self, a, b):
        self.sa, self.sb = _shape(a), _shape(b)
        return self.b.binary("add", a, b)

    def backward(self, g):
        return unbroadcast(self.b, g, self.sa), unbroadcast(self.b, g, self.sb)


class Sub(Function):
    def forward(self, a, b):
        self.sa, self.sb = _shape(a), _shape(b)
        return self.b.binary("sub", a, b)

    def backward(self, g):
        gb = unbroadcast(self.b, self.b.unary("neg", g), self.sb) if self.needs[-1] else None
        return unbroadcast(self.b, g, self.sa), gb


class RSub(Function):  # scalar - tensor
    def forward(self, a, c):
        return self.b.binary("add", self.b.unary("neg", a), c)

    def backward(self, g):
        return self.b.unary("neg", g)


class Mul(Function):
    def forward(self, a, b):
        self.a, self.bb = a, b
        return self.b.binary("mul", a, b)

    def backward(self, g):
        bk = self.b
        ga = gb = None
        if self.needs[0]:
            ga = unbroadcast(bk, bk.binary("mul", g, self.bb), _shape(self.a))
        if len(self.needs) > 1 and self.needs[1]:
            gb = unbroadcast(bk, bk.binary("mul", g, self.a), _shape(self.bb))
        return ga, gb


class Div(Function):
    def forward(self, a, b):
        self.a, self.bb = a, b
        self.out = self.b.binary("div", a, b)
        return self.out

    def backward(self, g):
        bk = self.b
        ga = gb = None
        gq = bk.binary("div", g, self.bb)
        if self.needs[0] and hasattr(self.a, "shape"):
            ga = unbroadcast(bk, gq, _shape(self.a))
        if self.needs[-1] and hasattr(self.bb, "shape"):
            gb = unbroadcast(bk, bk.unary("neg", bk.binary("mul", gq, self.out)), _shape(self.bb))
        return ga, gb


class RDiv(Function):  # scalar / tensor
    def forward(self, a, c):
        self.c = c
        self.out = self.b.binary("div", self.b.full(a.shape, c, a.dtype), a)
        self.a = a
        return self.out

    def backward(self, g):
        bk = self.b
        return bk.unary("neg", bk.binary("div", bk.binary("mul", g, self.out), self.a))


class Pow(Function):
    def forward(self, a, b):
        self.a, self.bb = a, b
        self.out = self.b.binary("pow", a, b)
        return self.out

    def backward(self, g):
        bk = self.b
        ga = gb = None
        if self.needs[0]:
            if hasattr(self.bb, "shape"):
                d = bk.binary("mul", self.bb, bk.binary("pow", self.a,
                                                        bk.binary("sub", self.bb, 1.0)))
            else:
                d = bk.binary("mul", bk.binary("pow", self.a, float(self.bb) - 1.0),
                              float(self.bb))
            ga = unbroadcast(bk, bk.binary("mul", g, d), _shape(self.a))
        if len(self.needs) > 1 and self.needs[1]:
            d = bk.binary("mul", self.out, bk.unary("log", self.a))
            gb = unbroadcast(bk, bk.binary("mul", g, d), _shape(self.bb))
        return ga, gb


class Maximum(Function):
    """Elementwise max/min; ties send the gradient to the first argument."""

    def forward(self, a, b, op: str = "maximum"):
        self.a, self.bb = a, b
        self.mask = self.b.binary("ge" if op == "maximum" else "le", a, b)
        return self.b.binary(op, a, b)

    def backward(self, g):
        bk = self.b
        ga = unbroadcast(bk, bk.where(self.mask, g, 0.0), _shape(self.a))
        gb = unbroadcast(bk, bk.where(self.mask, 0.0, g), _shape(self.bb)) \
            if hasattr(self.bb, "shape") else None
        return ga, gb


class Where(Function):
    """where(cond, a, b) for Tensors a, b; cond is a raw bool array (no gradient)."""

    def forward(self, cond, a, b):
        self.cond, self.sa, self.sb = cond, _shape(a), _shape(b)
        return self.b.where(cond, a, b)

    def backward(self, g):
        bk = self.b
        ga = unbroadcast(bk, bk.where(self.cond, g, 0.0), self.sa) if self.needs[0] else None
        gb = unbroadcast(bk, bk.where(self.cond, 0.0, g), self.sb) if self.needs[1] else None
        return ga, gb


# -- elementwise unary -----------------------------------------------------------------

class Neg(Function):
    def forward(self, a):
        return self.b.unary("neg", a)

    def backward(self, g):
        return self.b.unary("neg", g)


class Exp(Function):
    def forward(self, a):
        self.out = self.b.unary("exp", a)
        return self.out

    def backward(self, g):
        return self.b.binary("mul", g, self.out)


class Log(Function):
    def forward(self, a):
        self.a = a
        return self.b.unary("log", a)

    def backward(self, g):
        return self.b.binary("div", g, self.a)


class Sqrt(Function):
    def forward(self, a):
        self.out = self.b.unary("sqrt", a)
        return self.out

    def backward(self, g):
        return self.b.binary("div", self.b.binary("mul", g, 0.5), self.out)


class Abs(Function):
    def forward(self, a):
        self.a = a
        return self.b.unary("abs", a)

    def backward(self, g):
        return self.b.binary("mul", g, self.b.unary("sign", self.a))


class Relu(Function):
    def forward(self, a):
        self.out = self.b.unary("relu", a)
        return self.out

    def backward(self, g):
        return self.b.where(self.b.binary("gt", self.out, 0.0), g, 0.0)


class LeakyRelu(Function):
    def forward(self, a, slope: float = 0.01):
        self.pos, self.slope = self.b.binary("gt", a, 0.0), slope
        return self.b.where(self.pos, a, self.b.binary("mul", a, slope))

    def backward(self, g):
        return self.b.where(self.pos, g, self.b.binary("mul", g, self.slope))


class Tanh(Function):
    def forward(self, a):
        self.out = self.b.unary("tanh", a)
        return self.out

    def backward(self, g):
        bk = self.b
        one_minus_sq = bk.binary("add", bk.unary("neg", bk.binary("mul", self.out, self.out)), 1.0)
        return bk.binary("mul", g, one_minus_sq)


class Sigmoid(Function):
    def forward(self, a):
        self.out = self.b.unary("sigmoid", a)
        return self.out

    def backward(self, g):
        bk = self.b
        one_minus = bk.binary("add", bk.unary("neg", self.out), 1.0)
        return bk.binary("mul", g, bk.binary("mul", self.out, one_minus))


class Erf(Function):
    def forward(self, a):
        self.a = a
        return self.b.unary("erf", a)

    def backward(self, g):
        bk = self.b
        d = bk.unary("exp", bk.unary("neg", bk.binary("mul", self.a, self.a)))
        return bk.binary("mul", g, bk.binary("mul", d, 2.0 / math.sqrt(math.pi)))


# -- reductions ------------------------------------------------------------------------

def _keep_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


class Sum(Function):
    def forward(self, a, axes: tuple[int, ...] = (), keepdims: bool = False):
        self.shape, self.axes = tuple(a.shape), axes
        return self.b.reduce("sum", a, axes, keepdims)

    def backward(self, g):
        bk = self.b
        return bk.broadcast_to(bk.reshape(g, _keep_shape(self.shape, self.axes)), self.shape)


class Max(Function):
    """max/min over axes; the gradient is shared equally among tied maxima."""

    def forward(self, a, axes: tuple[int, ...] = (), keepdims: bool = False, op: str = "max"):
        bk = self.b
        self.shape, self.axes = tuple(a.shape), axes
        out = bk.reduce(op, a, axes, True)
        self.mask = bk.astype(bk.binary("eq", a, out), a.dtype)
        self.count = bk.reduce("sum", self.mask, axes, True)
        return out if keepdims else bk.reshape(out, [s for i, s in enumerate(a.shape)
                                                     if i not in axes])

    def backward(self, g):
        bk = self.b
        g = bk.binary("div", bk.reshape(g, _keep_shape(self.shape, self.axes)), self.count)
        return bk.binary("mul", self.mask, g)


# -- linear algebra --------------------------------------------------------------------

class MatMul(Function):
    def forward(self, a, b):
        self.a, self.bb = a, b
        return self.b.matmul(a, b)

    def backward(self, g):
        bk = self.b
        ga = gb = None
        if self.needs[0]:
            ga = unbroadcast(bk, bk.matmul(g, self.bb, trans_b=True), tuple(self.a.shape))
        if self.needs[1]:
            gb = unbroadcast(bk, bk.matmul(self.a, g, trans_a=True), tuple(self.bb.shape))
        return ga, gb


# -- movement --------------------------------------------------------------------------

def reshape_target(old: tuple[int, ...], new: tuple[int, ...]) -> tuple[int, ...] | None:
    """`new` with its one -1 resolved, or None if a tensor of shape `old` cannot take it
    (NumPy's rule in plain Python: no array is made just to ask NumPy, 1-2 us a call)."""
    size, known, free = math.prod(old), math.prod(d for d in new if d != -1), new.count(-1)
    if free > 1 or min(new, default=0) < -1:
        return None
    if not free:
        return new if known == size else None
    if known == 0 or size % known:
        return None
    return tuple(size // known if d == -1 else d for d in new)


class Reshape(Function):
    def forward(self, a, shape: tuple[int, ...] = ()):
        self.shape = tuple(a.shape)
        return self.b.reshape(a, shape)

    def backward(self, g):
        return self.b.reshape(g, self.shape)


class Permute(Function):
    def forward(self, a, axes: tuple[int, ...] = ()):
        self.inv = tuple(sorted(range(len(axes)), key=lambda i: axes[i]))
        return self.b.permute(a, axes)

    def backward(self, g):
        return self.b.permute(g, self.inv)


class BroadcastTo(Function):
    def forward(self, a, shape: tuple[int, ...] = ()):
        self.shape = tuple(a.shape)
        return self.b.broadcast_to(a, shape)

    def backward(self, g):
        return unbroadcast(self.b, g, self.shape)


class GetItem(Function):
    def forward(self, a, index: tuple = ()):
        self.shape, self.index = tuple(a.shape), index
        return self.b.getitem(a, index)

    def backward(self, g):
        return self.b.index_add(self.shape, self.index, g)


class IndexAdd(Function):
    """zeros(shape) with `values` added at a host index: GetItem's adjoint (scatter into
    a bigger array: padding, concatenation, placing a tap's contribution)."""

    def forward(self, values, shape: tuple[int, ...] = (), index: tuple = ()):
        self.index = index
        return self.b.index_add(shape, index, values)

    def backward(self, g):
        return self.b.getitem(g, self.index)


class TakeAlong(Function):
    def forward(self, a, idx, axis: int = -1):
        self.shape, self.idx, self.axis = tuple(a.shape), idx, axis
        return self.b.take_along(a, idx, axis)

    def backward(self, g):
        return self.b.put_along(self.shape, self.idx, g, self.axis), None


class GatherRows(Function):
    def forward(self, table, idx):
        self.n, self.idx = table.shape[0], idx
        return self.b.gather_rows(table, idx)

    def backward(self, g):
        return self.b.scatter_rows_add(self.n, self.idx, g), None


# -- fused kernels under their old names (PEP 562: resolved on first use) ----------------

_FUSED = {"Conv2d": "conv2d", "ConvTranspose2d": "conv_transpose2d", "MaxPool2d": "max_pool2d",
          "AvgPool2d": "avg_pool2d", "Softmax": "softmax", "LogSoftmax": "log_softmax",
          "BatchNormTrain": "batch_norm", "FMPairwise": "fm_pairwise", "Clip": "clip",
          "Pad": "pad", "Concat": "concat"}


def __getattr__(name: str) -> Any:
    if name in _FUSED:
        from . import fused

        return getattr(fused, _FUSED[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

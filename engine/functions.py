"""Differentiable ops: each forward beside its backward, written against Backend primitives.

Forward and backward take and return backend arrays, so every op runs on every device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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


class Clip(Function):
    def forward(self, a, lo: float | None = None, hi: float | None = None):
        bk = self.b
        self.inside = None
        if lo is not None:
            self.inside = bk.binary("ge", a, lo)
        if hi is not None:
            le = bk.binary("le", a, hi)
            self.inside = le if self.inside is None else bk.where(self.inside, le, self.inside)
        return bk.clip(a, lo, hi)

    def backward(self, g):
        return g if self.inside is None else self.b.where(self.inside, g, 0.0)


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


class Pad(Function):
    def forward(self, a, widths: Sequence[tuple[int, int]] = (), value: float = 0.0):
        self.index = tuple(slice(lo, lo + s) for (lo, _), s in zip(widths, a.shape))
        return self.b.pad(a, widths, value)

    def backward(self, g):
        return self.b.getitem(g, self.index)


class Concat(Function):
    def forward(self, *arrays, axis: int = 0):
        self.axis, self.sizes = axis, [x.shape[axis] for x in arrays]
        return self.b.concat(arrays, axis)

    def backward(self, g):
        out, start = [], 0
        lead = (slice(None),) * self.axis
        for n in self.sizes:
            out.append(self.b.getitem(g, lead + (slice(start, start + n),)))
            start += n
        return tuple(out)


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


# -- convolution and pooling -----------------------------------------------------------

class Conv2d(Function):
    def forward(self, x, w, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                groups: int = 1):
        self.x, self.w = x, w
        self.p = (stride, padding, dilation, groups)
        y = self.b.conv2d(x, w, *self.p)
        if bias is not None:
            y = self.b.binary("add", y, self.b.reshape(bias, (1, -1, 1, 1)))
        return y

    def backward(self, g):
        bk = self.b
        gx = bk.conv2d_grad_input(g, self.w, self.x.shape, *self.p) if self.needs[0] else None
        gw = bk.conv2d_grad_weight(g, self.x, self.w.shape, *self.p) if self.needs[1] else None
        gb = bk.reduce("sum", g, (0, 2, 3), False) if len(self.needs) > 2 else None
        return gx, gw, gb


class ConvTranspose2d(Function):
    """Transposed convolution: Conv2d's input gradient run forwards (its adjoint), so it
    needs no primitive of its own; its gradients are a Conv2d and a weight gradient.
    w is (C_in, C_out / groups, kH, kW); out_hw is the output's (H, W)."""

    def forward(self, x, w, out_hw=(0, 0), stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                groups: int = 1):
        self.x, self.w = x, w
        self.p = (stride, padding, dilation, groups)
        shape = (x.shape[0], w.shape[1] * groups, *out_hw)
        return self.b.conv2d_grad_input(x, w, shape, *self.p)

    def backward(self, g):
        bk = self.b
        gx = bk.conv2d(g, self.w, *self.p) if self.needs[0] else None
        gw = bk.conv2d_grad_weight(self.x, g, self.w.shape, *self.p) if self.needs[1] else None
        return gx, gw


class MaxPool2d(Function):
    def forward(self, x, kernel=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1)):
        self.shape = tuple(x.shape)
        out, self.argmax = self.b.maxpool2d(x, kernel, stride, padding, dilation)
        return out

    def backward(self, g):
        return self.b.maxpool2d_grad(g, self.argmax, self.shape)


class AvgPool2d(Function):
    def forward(self, x, kernel=(2, 2), stride=(2, 2), padding=(0, 0),
                count_include_pad: bool = True):
        self.shape, self.p = tuple(x.shape), (kernel, stride, padding, count_include_pad)
        return self.b.avgpool2d(x, *self.p)

    def backward(self, g):
        return self.b.avgpool2d_grad(g, self.shape, *self.p)


# -- fused numerics --------------------------------------------------------------------

class Softmax(Function):
    def forward(self, a, axis: int = -1):
        self.axis = axis
        self.out = self.b.softmax(a, axis)
        return self.out

    def backward(self, g):
        bk = self.b
        dot = bk.reduce("sum", bk.binary("mul", g, self.out), (self.axis,), True)
        return bk.binary("mul", self.out, bk.binary("sub", g, dot))


class LogSoftmax(Function):
    def forward(self, a, axis: int = -1):
        self.axis = axis
        self.out = self.b.log_softmax(a, axis)
        return self.out

    def backward(self, g):
        bk = self.b
        total = bk.reduce("sum", g, (self.axis,), True)
        return bk.binary("sub", g, bk.binary("mul", bk.unary("exp", self.out), total))


class BatchNormTrain(Function):
    """Batch statistics over `axes`; `mean` and `invstd` are kept for running stats."""

    def forward(self, x, gamma, beta, axes: tuple[int, ...] = (0,), eps: float = 1e-5):
        self.x, self.gamma, self.axes = x, gamma, axes
        y, self.mean, self.invstd = self.b.batch_norm_train(x, gamma, beta, axes, eps)
        return y

    def backward(self, g):
        return self.b.batch_norm_grad(g, self.x, self.gamma, self.mean, self.invstd, self.axes)


class FMPairwise(Function):
    """Factorization-machine interactions of padded sparse rows in one fused primitive:
    v (B, N, K) gathered factor rows, x (B, N) values -> (B,) sum_{n<m} <v_n, v_m> x_n x_m.
    Fused because composing it from gathers and sums keeps several (B, N, K) temporaries
    alive for the backward pass; this keeps only v and x."""

    def forward(self, v, x):
        self.v, self.x = v, x
        return self.b.fm_pairwise(v, x)

    def backward(self, g):
        gv, gx = self.b.fm_pairwise_grad(g, self.v, self.x)
        return (gv if self.needs[0] else None), (gx if self.needs[-1] else None)

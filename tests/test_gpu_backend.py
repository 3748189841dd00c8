"""GpuBackend against the NumPy CpuBackend, primitive by primitive, on random float32 data.

Tolerances (float32 on both sides): exact for movement, integer and comparison ops;
rtol 1e-5 / atol 1e-6 for plain arithmetic; rtol 1e-4 / atol 1e-5 for transcendental
functions and reductions (different summation order); rtol/atol 1e-4 scaled by the
reduction length for matmul and convolutions.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from engine.backends.cpu import CpuBackend
from tests.gpu_helpers import check, gpu_backend_or_skip

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def gpu():
    return gpu_backend_or_skip()


@pytest.fixture(scope="module")
def cpu():
    return CpuBackend()

rng = np.random.default_rng(0)


def rand(*shape: int, positive: bool = False) -> np.ndarray:
    a = rng.standard_normal(shape).astype(np.float32)
    return np.abs(a) + np.float32(0.5) if positive else a


def up(gpu, *arrays):
    return [gpu.from_numpy(a) if isinstance(a, np.ndarray) else a for a in arrays]


# -- transfer and creation -------------------------------------------------------------------

@pytest.mark.parametrize("arr", [
    rand(3, 4), np.float32(2.5) * np.ones(()), np.zeros((0, 3), np.float32),
    rng.integers(-5, 5, (4, 2)), np.arange(6, dtype=np.int32), rand(5) > 0,
])
def test_roundtrip(gpu, arr):
    check(gpu, gpu.from_numpy(arr), arr, what="roundtrip")


def test_float64_is_computed_as_float32(gpu):
    a = rand(3).astype(np.float64)
    g = gpu.from_numpy(a)
    assert g.dtype == np.float32
    np.testing.assert_allclose(gpu.to_numpy(g), a.astype(np.float32))


def test_int64_out_of_range(gpu):
    with pytest.raises(OverflowError, match="32-bit"):
        gpu.from_numpy(np.array([2**40]))


@pytest.mark.parametrize("value,dtype", [(1.5, np.float32), (-3, np.int64), (True, bool),
                                         (0.0, np.float32)])
def test_full(gpu, cpu, value, dtype):
    check(gpu, gpu.full((2, 3), value, dtype), cpu.full((2, 3), value, dtype))


@pytest.mark.parametrize("src,dtype", [
    (rand(4, 3) * 3, np.int64), (rand(4, 3) * 3, np.int32), (rand(4, 3), bool),
    (rng.integers(-9, 9, (5,)), np.float32), (rand(5) > 0, np.float32),
    (rng.integers(-9, 9, (5,)), bool), (rand(5) > 0, np.int64),
    (rng.integers(-9, 9, (5,)), np.int32), (rand(3), np.float32),
])
def test_astype(gpu, cpu, src, dtype):
    check(gpu, gpu.astype(gpu.from_numpy(src), dtype), cpu.astype(src, dtype))


# -- elementwise -----------------------------------------------------------------------------

UNARY = ["neg", "exp", "log", "sqrt", "abs", "sign", "relu", "tanh", "sigmoid", "erf"]


@pytest.mark.parametrize("op", UNARY)
def test_unary(gpu, cpu, op):
    a = rand(7, 33, positive=op in ("log", "sqrt")) * (np.float32(3) if op != "exp" else 1)
    if op in ("tanh", "sigmoid", "erf"):
        a = np.concatenate([a, np.float32([[0, 1e-4, -1e-3, 30, -30, 100, -100] + [0.2] * 26])])
    check(gpu, gpu.unary(op, gpu.from_numpy(a)), cpu.unary(op, a), rtol=2e-5, atol=1e-6,
          what=op)


@pytest.mark.parametrize("op", ["neg", "abs", "sign", "relu"])
def test_unary_int(gpu, cpu, op):
    a = rng.integers(-5, 5, (4, 6))
    check(gpu, gpu.unary(op, gpu.from_numpy(a)), cpu.unary(op, a), what=op)


BINARY = ["add", "sub", "mul", "div", "pow", "maximum", "minimum",
          "gt", "ge", "lt", "le", "eq", "ne"]
SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((1,), (2, 3)), ((), (2, 2)),
          ((2, 3, 1, 5, 1, 2), (3, 4, 1, 1, 2))]


@pytest.mark.parametrize("op", BINARY)
@pytest.mark.parametrize("sa,sb", SHAPES)
def test_binary(gpu, cpu, op, sa, sb):
    a, b = rand(*sa, positive=op == "pow"), rand(*sb)
    if op in ("eq", "ne"):
        b = np.where(rand(*sb) > 0, b, np.float32(0.5))
        a = np.full(sa, 0.5, np.float32) if sa else np.float32(0.5) * np.ones((), np.float32)
    if op == "div":
        b = np.where(np.abs(b) < 0.1, np.float32(0.5), b)
    check(gpu, gpu.binary(op, *up(gpu, a, b)), cpu.binary(op, a, b), rtol=2e-5, atol=1e-6,
          what=f"{op} {sa} {sb}")


@pytest.mark.parametrize("op", BINARY)
@pytest.mark.parametrize("scalar", [2.0, -0.5, 3])
def test_binary_scalar(gpu, cpu, op, scalar):
    a = rand(5, 6, positive=op == "pow" and scalar != 2.0)
    check(gpu, gpu.binary(op, gpu.from_numpy(a), scalar), cpu.binary(op, a, scalar),
          rtol=2e-5, atol=1e-6, what=f"{op} {scalar}")


def test_pow_negative_base(gpu, cpu):
    a = np.float32([-2, -1.5, 0, 0, 3])
    b = np.float32([2, 3, 0, 2, 0.5])
    check(gpu, gpu.binary("pow", *up(gpu, a, b)), cpu.binary("pow", a, b), rtol=1e-5)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "maximum", "minimum", "gt", "eq", "div"])
def test_binary_int(gpu, cpu, op):
    a, b = rng.integers(-9, 9, (3, 4)), rng.integers(1, 9, (4,))
    check(gpu, gpu.binary(op, *up(gpu, a, b)), cpu.binary(op, a, b), rtol=1e-6, what=op)
    check(gpu, gpu.binary(op, gpu.from_numpy(a), 3), cpu.binary(op, a, 3), rtol=1e-6, what=op)
    m, n = rand(6) > 0, rand(6) > 0
    if op in ("eq", "gt"):
        check(gpu, gpu.binary(op, *up(gpu, m, n)), cpu.binary(op, m, n), what=f"bool {op}")


@pytest.mark.parametrize("sc,sa,sb", [((3, 4), (3, 4), (3, 4)), ((3, 1), (4,), (3, 4)),
                                      ((2, 3, 4), (3, 4), ())])
def test_where(gpu, cpu, sc, sa, sb):
    c, a = rand(*sc) > 0, rand(*sa)
    b = rand(*sb) if sb else 0.0
    check(gpu, gpu.where(*up(gpu, c, a, b)), cpu.where(c, a, b))
    check(gpu, gpu.where(*up(gpu, c, 0.0, a)), cpu.where(c, 0.0, a))


def test_where_float_condition(gpu, cpu):
    c, a, b = np.float32([0.0, 0.5, -2.0, 0.0]), rand(4), rand(4)
    check(gpu, gpu.where(*up(gpu, c, a, b)), np.where(c, a, b))


def test_where_int(gpu, cpu):
    c, a, b = rand(5) > 0, rng.integers(0, 9, 5), rng.integers(0, 9, 5)
    check(gpu, gpu.where(*up(gpu, c, a, b)), cpu.where(c, a, b))


@pytest.mark.parametrize("lo,hi", [(-0.5, 0.5), (None, 0.2), (-0.1, None)])
def test_clip(gpu, cpu, lo, hi):
    a = rand(4, 5)
    check(gpu, gpu.clip(gpu.from_numpy(a), lo, hi), cpu.clip(a, lo, hi))


# -- reductions ------------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["sum", "max", "min"])
@pytest.mark.parametrize("shape,axes", [
    ((5, 7), (1,)), ((5, 7), (0,)), ((5, 7), (0, 1)), ((2, 3, 4), (1,)), ((2, 3, 4), (0, 2)),
    ((4, 3, 5, 6), (0, 2, 3)), ((3, 300), (1,)), ((70000,), (0,)), ((3, 1, 4), (1,)),
    ((2, 3), ()), ((4, 1), (0,)),
])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduce(gpu, cpu, op, shape, axes, keepdims):
    a = rand(*shape)
    check(gpu, gpu.reduce(op, gpu.from_numpy(a), axes, keepdims),
          cpu.reduce(op, a, axes, keepdims), rtol=1e-4, atol=1e-4, what=f"{op}{shape}{axes}")


@pytest.mark.parametrize("op", ["sum", "max", "min"])
def test_reduce_int_and_bool(gpu, cpu, op):
    a = rng.integers(-50, 50, (6, 100))
    check(gpu, gpu.reduce(op, gpu.from_numpy(a), (1,), False), cpu.reduce(op, a, (1,), False))
    m = rand(3, 200) > 0
    check(gpu, gpu.reduce(op, gpu.from_numpy(m), (0, 1), False),
          cpu.reduce(op, m, (0, 1), False))


@pytest.mark.parametrize("shape,axis", [((5, 7), 1), ((5, 7), 0), ((3, 200), 1), ((2, 3, 4), 1),
                                        ((9,), 0)])
def test_argmax(gpu, cpu, shape, axis):
    a = rand(*shape)
    check(gpu, gpu.argmax(gpu.from_numpy(a), axis), cpu.argmax(a, axis))
    ties = np.round(a)  # many ties: the first index wins
    check(gpu, gpu.argmax(gpu.from_numpy(ties), axis), cpu.argmax(ties, axis))


# -- linear algebra --------------------------------------------------------------------------

@pytest.mark.parametrize("sa,sb", [
    ((7, 5), (5, 3)), ((64, 64), (64, 64)), ((130, 70), (70, 90)), ((1, 9), (9, 1)),
    ((3, 17, 20), (3, 20, 6)), ((3, 17, 20), (20, 6)), ((4, 6), (2, 6, 5)),
    ((2, 1, 5, 4), (1, 3, 4, 6)),
])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul(gpu, cpu, sa, sb, ta, tb):
    a, b = rand(*sa), rand(*sb)
    if ta:
        a = np.ascontiguousarray(np.swapaxes(a, -1, -2))
    if tb:
        b = np.ascontiguousarray(np.swapaxes(b, -1, -2))
    k = sa[-1]
    check(gpu, gpu.matmul(*up(gpu, a, b), trans_a=ta, trans_b=tb),
          cpu.matmul(a, b, trans_a=ta, trans_b=tb), rtol=1e-4, atol=1e-5 * k,
          what=f"{sa}@{sb} {ta} {tb}")


def test_matmul_naive_kernel(gpu, cpu):
    a, b = rand(33, 20), rand(20, 17)
    check(gpu, gpu.matmul(*up(gpu, a, b), kernel="naive"), a @ b, rtol=1e-4, atol=1e-4)


# -- movement --------------------------------------------------------------------------------

def test_reshape_permute_broadcast(gpu, cpu):
    a = rand(2, 3, 4)
    g = gpu.from_numpy(a)
    check(gpu, gpu.reshape(g, (4, -1)), cpu.reshape(a, (4, -1)))
    for axes in [(2, 0, 1), (1, 0, 2), (0, 2, 1), (2, 1, 0)]:
        check(gpu, gpu.permute(g, axes), cpu.permute(a, axes), what=str(axes))
    check(gpu, gpu.broadcast_to(gpu.from_numpy(a[:, :1]), (5, 2, 3, 4)),
          cpu.broadcast_to(a[:, :1], (5, 2, 3, 4)))
    m = rand(3, 4) > 0
    check(gpu, gpu.permute(gpu.from_numpy(m), (1, 0)), m.T)


def test_permute_many_dims(gpu, cpu):
    a = rand(2, 1, 3, 2, 2, 3, 1, 2, 2)
    axes = (8, 0, 3, 2, 1, 5, 4, 7, 6)
    check(gpu, gpu.permute(gpu.from_numpy(a), axes), cpu.permute(a, axes))


INDICES = [
    (1,), (slice(1, 3),), (slice(None, None, -1),), (Ellipsis, 1), (None, slice(0, 4, 2), 2),
    (slice(None), slice(1, None, 2), -1), (np.array([0, 2, 2]),),
    (np.array([[1], [0]]), slice(None), np.array([0, 3])), (slice(1, 3), np.array([3, 0, 3])),
    (np.array([True, False, True]),), (1, slice(None), np.array([1, 1, 0])),
]


@pytest.mark.parametrize("index", INDICES, ids=[str(i) for i in range(len(INDICES))])
def test_getitem_and_index_add(gpu, cpu, index):
    a = rand(3, 5, 4)
    want = cpu.getitem(a, index)
    got = gpu.getitem(gpu.from_numpy(a), index)
    check(gpu, got, want, what=f"getitem {index}")
    v = rand(*want.shape)
    check(gpu, gpu.index_add(a.shape, index, gpu.from_numpy(v)),
          cpu.index_add(a.shape, index, v), rtol=1e-6, what=f"index_add {index}")


@pytest.mark.parametrize("axis,k", [(-1, 1), (1, 3), (0, 2)])
def test_take_put_along(gpu, cpu, axis, k):
    a = rand(4, 5, 6)
    shape = list(a.shape)
    shape[axis] = k
    idx = rng.integers(0, a.shape[axis], shape)  # repeats likely: put_along accumulates
    check(gpu, gpu.take_along(*up(gpu, a, idx), axis), cpu.take_along(a, idx, axis))
    v = rand(*shape)
    check(gpu, gpu.put_along(a.shape, *up(gpu, idx, v), axis), cpu.put_along(a.shape, idx, v, axis),
          rtol=1e-6)


def test_take_along_cross_entropy_shape(gpu, cpu):
    logits, labels = rand(8, 10), rng.integers(0, 10, (8, 1))
    check(gpu, gpu.take_along(*up(gpu, logits, labels), 1), cpu.take_along(logits, labels, 1))


@pytest.mark.parametrize("idx_shape", [(7,), (3, 4)])
def test_gather_scatter_rows(gpu, cpu, idx_shape):
    table = rand(6, 5)
    idx = rng.integers(0, 6, idx_shape)
    check(gpu, gpu.gather_rows(*up(gpu, table, idx)), cpu.gather_rows(table, idx))
    v = rand(*idx_shape, 5)
    check(gpu, gpu.scatter_rows_add(6, *up(gpu, idx, v)), cpu.scatter_rows_add(6, idx, v),
          rtol=1e-6)


def test_pad_concat(gpu, cpu):
    a = rand(2, 3, 4)
    widths = [(0, 1), (2, 0), (1, 1)]
    check(gpu, gpu.pad(gpu.from_numpy(a), widths, -1.5), cpu.pad(a, widths, -1.5))
    parts = [rand(2, 3, 4), rand(2, 1, 4), rand(2, 5, 4)]
    for axis in (1, -2):
        check(gpu, gpu.concat(up(gpu, *parts), axis), cpu.concat(parts, axis))
    parts = [rand(2, 3), rand(4, 3)]
    check(gpu, gpu.concat(up(gpu, *parts), 0), cpu.concat(parts, 0))


# -- convolution and pooling -----------------------------------------------------------------

CONV = [  # x shape, w shape, stride, pad, dilation, groups
    ((2, 3, 9, 9), (4, 3, 3, 3), (1, 1), (0, 0), (1, 1), 1),
    ((2, 1, 12, 12), (6, 1, 5, 5), (1, 1), (2, 2), (1, 1), 1),
    ((2, 4, 10, 11), (6, 2, 3, 2), (2, 1), (1, 0), (1, 1), 2),
    ((1, 3, 13, 13), (5, 3, 3, 3), (2, 3), (1, 2), (2, 1), 1),
    ((2, 4, 8, 8), (4, 1, 3, 3), (1, 1), (1, 1), (1, 1), 4),
    ((3, 6, 7, 7), (70, 6, 1, 1), (1, 1), (0, 0), (1, 1), 1),
    ((8, 16, 16, 16), (32, 16, 3, 3), (1, 1), (1, 1), (1, 1), 1),
]


@pytest.mark.parametrize("xs,ws,stride,pad,dil,groups", CONV)
def test_conv2d_and_grads(gpu, cpu, xs, ws, stride, pad, dil, groups):
    x, w = rand(*xs), rand(*ws)
    gx, gw = up(gpu, x, w)
    want = cpu.conv2d(x, w, stride, pad, dil, groups)
    k = ws[1] * ws[2] * ws[3]
    check(gpu, gpu.conv2d(gx, gw, stride, pad, dil, groups), want, rtol=1e-4,
          atol=2e-5 * k, what="conv2d")
    gy = rand(*want.shape)
    ggy = gpu.from_numpy(gy)
    check(gpu, gpu.conv2d_grad_input(ggy, gw, xs, stride, pad, dil, groups),
          cpu.conv2d_grad_input(gy, w, xs, stride, pad, dil, groups), rtol=1e-4,
          atol=2e-5 * ws[0] * ws[2] * ws[3], what="grad input")
    n_pix = want.shape[0] * want.shape[2] * want.shape[3]
    check(gpu, gpu.conv2d_grad_weight(ggy, gx, ws, stride, pad, dil, groups),
          cpu.conv2d_grad_weight(gy, x, ws, stride, pad, dil, groups), rtol=1e-4,
          atol=2e-5 * n_pix, what="grad weight")


POOL = [  # kernel, stride, pad, dilation
    ((2, 2), (2, 2), (0, 0), (1, 1)), ((3, 3), (1, 1), (1, 1), (1, 1)),
    ((3, 2), (2, 1), (1, 0), (1, 1)), ((2, 2), (1, 2), (0, 1), (2, 1)),
]


@pytest.mark.parametrize("kernel,stride,pad,dil", POOL)
def test_maxpool(gpu, cpu, kernel, stride, pad, dil):
    x = rand(2, 3, 7, 8)
    out, arg = cpu.maxpool2d(x, kernel, stride, pad, dil)
    gout, garg = gpu.maxpool2d(gpu.from_numpy(x), kernel, stride, pad, dil)
    check(gpu, gout, out)
    check(gpu, garg, arg)
    gy = rand(*out.shape)
    want = cpu.maxpool2d_grad(gy, arg, x.shape)
    check(gpu, gpu.maxpool2d_grad(gpu.from_numpy(gy), garg, x.shape), want, rtol=1e-6)
    # an argmax that did not come from maxpool2d (no window geometry): full-plane scan
    check(gpu, gpu.maxpool2d_grad(*up(gpu, gy, arg), x.shape), want, rtol=1e-6)


@pytest.mark.parametrize("kernel,stride,pad,_", POOL)
@pytest.mark.parametrize("include", [True, False])
def test_avgpool(gpu, cpu, kernel, stride, pad, _, include):
    if pad[0] * 2 > kernel[0] or pad[1] * 2 > kernel[1]:
        pytest.skip("padding larger than half the window")
    x = rand(2, 3, 7, 8)
    want = cpu.avgpool2d(x, kernel, stride, pad, include)
    check(gpu, gpu.avgpool2d(gpu.from_numpy(x), kernel, stride, pad, include), want)
    gy = rand(*want.shape)
    check(gpu, gpu.avgpool2d_grad(gpu.from_numpy(gy), x.shape, kernel, stride, pad, include),
          cpu.avgpool2d_grad(gy, x.shape, kernel, stride, pad, include), rtol=1e-5)


# -- fused numerics --------------------------------------------------------------------------

@pytest.mark.parametrize("shape,axis", [((4, 10), -1), ((4, 10), 0), ((2, 5, 3), 1),
                                        ((3, 500), 1), ((2, 3, 4, 4), 1)])
@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax(gpu, cpu, shape, axis, fn):
    a = rand(*shape) * 5
    a.flat[0] = 80.0  # exp would overflow without the max shift
    check(gpu, getattr(gpu, fn)(gpu.from_numpy(a), axis), getattr(cpu, fn)(a, axis),
          rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape,axes,gshape", [
    ((8, 3, 5, 5), (0, 2, 3), (3,)), ((16, 6), (0,), (6,)), ((4, 3, 7), (2,), (4, 3)),
    ((4, 3, 7), (1,), (4, 7)),  # kept axes not adjacent: permuted internally
])
def test_batch_norm(gpu, cpu, shape, axes, gshape):
    x, gamma, beta = rand(*shape) * 2 + 1, rand(*gshape), rand(*gshape)
    y, mean, invstd = cpu.batch_norm_train(x, gamma, beta, axes, 1e-5)
    gy_, gm, gi = gpu.batch_norm_train(*up(gpu, x, gamma, beta), axes, 1e-5)
    check(gpu, gy_, y, rtol=1e-4, atol=1e-4)
    check(gpu, gm, mean, rtol=1e-4, atol=1e-5)
    check(gpu, gi, invstd, rtol=1e-4, atol=1e-5)
    gy = rand(*shape)
    want = cpu.batch_norm_grad(gy, x, gamma, mean, invstd, axes)
    got = gpu.batch_norm_grad(*up(gpu, gy, x, gamma, mean, invstd), axes)
    for g_, w_ in zip(got, want):
        check(gpu, g_, w_, rtol=1e-4, atol=1e-4)


# -- optimizer updates, in place -------------------------------------------------------------

def _run_steps(backend, fn, arrays, grads):
    """Apply fn(backend, state, grad, step) for each grad; returns the final state on host."""
    if backend.name == "gpu":
        state = [backend.from_numpy(a) for a in arrays]
        grads = [backend.from_numpy(g) for g in grads]
    else:
        state = [a.copy() for a in arrays]
    for t, g in enumerate(grads, start=1):
        fn(backend, state, g, t)
    return [backend.to_numpy(s) for s in state]


OPTIM = {
    "sgd": (2, lambda b, s, g, t: b.sgd_step_(s[0], g, None, 0.1, 0.0, 0.0, False, 0.0, t == 1)),
    "sgd_momentum": (2, lambda b, s, g, t: b.sgd_step_(s[0], g, s[1], 0.1, 0.9, 0.1, False, 0.01,
                                                       t == 1)),
    "sgd_nesterov": (2, lambda b, s, g, t: b.sgd_step_(s[0], g, s[1], 0.1, 0.9, 0.0, True, 0.0,
                                                       t == 1)),
    "adagrad": (2, lambda b, s, g, t: b.adagrad_step_(s[0], g, s[1], 0.1, 1e-10, 0.01)),
    "rmsprop": (3, lambda b, s, g, t: b.rmsprop_step_(s[0], g, s[1], None, 0.01, 0.99, 1e-8,
                                                      0.0, 0.0)),
    "rmsprop_momentum": (3, lambda b, s, g, t: b.rmsprop_step_(s[0], g, s[1], s[2], 0.01, 0.9,
                                                               1e-8, 0.9, 0.01)),
    "adam": (3, lambda b, s, g, t: b.adam_step_(s[0], g, s[1], s[2], 1e-3, 0.9, 0.999, 1e-8,
                                                0.0, False, t)),
    "adam_l2": (3, lambda b, s, g, t: b.adam_step_(s[0], g, s[1], s[2], 1e-2, 0.9, 0.99, 1e-8,
                                                   0.1, False, t)),
    "adamw": (3, lambda b, s, g, t: b.adam_step_(s[0], g, s[1], s[2], 1e-2, 0.9, 0.999, 1e-8,
                                                 0.1, True, t)),
}


@pytest.mark.parametrize("name", list(OPTIM))
def test_optimizer_steps(gpu, cpu, name):
    n_arrays, fn = OPTIM[name]
    arrays = [rand(5, 7)] + [np.zeros((5, 7), np.float32) for _ in range(n_arrays - 1)]
    grads = [rand(5, 7) for _ in range(3)]
    want = _run_steps(cpu, fn, arrays, grads)
    got = _run_steps(gpu, fn, arrays, grads)
    for w_, g_ in zip(want, got):
        np.testing.assert_allclose(g_, w_, rtol=2e-5, atol=2e-6, err_msg=name)


def test_copy_(gpu, cpu):
    dst = gpu.from_numpy(np.zeros((2, 3), np.float32))
    src = rand(2, 3)
    alias = gpu.reshape(dst, (6,))
    gpu.copy_(dst, gpu.from_numpy(src))
    check(gpu, dst, src)
    check(gpu, alias, src.reshape(6))  # in place: views see the update


# -- device behaviour ------------------------------------------------------------------------

def test_describe_names_the_adapter(gpu):
    assert gpu.name == "gpu"
    assert gpu.describe() and "(" in gpu.describe()


def test_no_readback_until_to_numpy(gpu):
    a = gpu.from_numpy(rand(16, 16))
    before = gpu.readbacks
    y = a
    for _ in range(20):
        y = gpu.unary("tanh", gpu.matmul(y, a))
    s = gpu.reduce("sum", y, (0, 1), False)
    assert gpu.readbacks == before
    gpu.to_numpy(s)
    assert gpu.readbacks == before + 1


def test_long_batches_and_buffer_reuse(gpu):
    """More dispatches than one batch holds, with buffers freed and reused in between."""
    x = rand(300)
    acc = gpu.from_numpy(np.zeros(300, np.float32))
    for i in range(1200):
        tmp = gpu.binary("mul", gpu.from_numpy(x), float(i % 3))  # freed right away
        acc = gpu.binary("add", acc, tmp)
    expected = np.zeros(300, np.float32)  # the same float32 products and sums, in order:
    for i in range(1200):                 # a dropped or repeated dispatch is off by |x|
        expected = expected + x * np.float32(i % 3)
    np.testing.assert_allclose(gpu.to_numpy(acc), expected, rtol=1e-6)


def test_lost_device_raises_device_error():
    from engine.backends import DeviceError
    from engine.backends.gpu import GpuBackend

    gpu_backend_or_skip()
    b = GpuBackend()
    a = b.from_numpy(rand(4))
    b.dev.lose()
    with pytest.raises(DeviceError, match="lost"):
        b.to_numpy(b.unary("exp", a))


@pytest.mark.parametrize("device,expect", [("auto", "cpu"), ("gpu", "DeviceError")])
def test_no_gpu_env_falls_back(device, expect):
    code = ("import engine.backends as b\n"
            f"try:\n    print(b.resolve({device!r}))\n"
            "except b.DeviceError as e:\n    print('DeviceError', e)\n")
    env = dict(os.environ, DEMYSTIFY_NO_GPU="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=60, check=True)
    assert out.stdout.split()[0] == expect, out.stdout + out.stderr
    if expect == "DeviceError":
        assert "DEMYSTIFY_NO_GPU" in out.stdout


def test_shader_includes_expand_once_and_cycles_are_refused(monkeypatch):
    """`//! include X.wgsl` pastes shared helpers (WGSL has no includes): every kernel file
    expands fully, each helper is defined exactly once, and a cycle is an error."""
    import re
    from pathlib import Path

    from engine.backends.gpu import device

    root = Path(__file__).resolve().parents[1] / "shaders"
    for path in root.glob("*.wgsl"):
        text = device.shader_source(path.stem)
        assert device._INCLUDE.search(text) is None, path.name
        names = re.findall(r"^fn (\w+)", text, re.M)
        assert len(names) == len(set(names)), f"{path.name} defines a function twice"
    assert "fn linear" in device.shader_source("pooling")
    assert "fn tile_fma" in device.shader_source("conv2d")
    monkeypatch.setitem(device._sources, "loop_a", "//! include loop_b.wgsl\n")
    monkeypatch.setitem(device._sources, "loop_b", "//! include loop_a.wgsl\n")
    with pytest.raises(ValueError, match="loop_a -> loop_b -> loop_a"):
        device.shader_source("loop_a")


def test_a_buffer_freed_in_a_reference_cycle_stays_usable(gpu):
    """An array that dies inside a reference cycle (a model, a closure) is finalised by
    the cyclic GC together with its wgpu buffer object; the pool must still own that
    buffer, or the next array reusing it writes to released GPU memory."""
    import gc

    class Holder:
        pass

    for _ in range(3):  # the order finalisers run in is the GC's; try a few cycles
        h = Holder()
        h.me, h.arr = h, gpu.from_numpy(np.ones(333, np.float32))
        del h
        gc.collect()
        gpu.dev.flush()  # retired buffers go back to the pool
        a = np.arange(333, dtype=np.float32)
        check(gpu, gpu.unary("neg", gpu.from_numpy(a)), -a)

"""Tensor ops: values against NumPy and gradients against finite differences (float64)."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine import Tensor
from tests.gradcheck import gradcheck

rng = np.random.default_rng(0)


def r(*shape: int, positive: bool = False) -> np.ndarray:
    a = rng.standard_normal(shape)
    return np.abs(a) + 0.5 if positive else a


BINARY = [
    ("add", lambda a, b: a + b, lambda a, b: a + b),
    ("sub", lambda a, b: a - b, lambda a, b: a - b),
    ("mul", lambda a, b: a * b, lambda a, b: a * b),
    ("div", lambda a, b: a / b, lambda a, b: a / b),
    ("pow", lambda a, b: a ** b, lambda a, b: a ** b),
    ("maximum", engine.maximum, np.maximum),
    ("minimum", engine.minimum, np.minimum),
]

SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((1,), (2, 3)), ((), (2, 2))]


@pytest.mark.parametrize("name,op,ref", BINARY, ids=[b[0] for b in BINARY])
@pytest.mark.parametrize("sa,sb", SHAPES)
def test_binary_broadcast_values_and_grads(name, op, ref, sa, sb):
    a, b = r(*sa, positive=True), r(*sb, positive=True)
    out = op(Tensor(a, dtype="float64"), Tensor(b, dtype="float64"))
    np.testing.assert_allclose(out.numpy(), ref(a, b), rtol=1e-12)
    gradcheck(op, [a, b])


@pytest.mark.parametrize("name,op,ref", BINARY[:5], ids=[b[0] for b in BINARY[:5]])
def test_binary_with_python_scalars(name, op, ref):
    a = r(3, 2, positive=True)
    gradcheck(lambda x: op(x, 1.7), [a])
    np.testing.assert_allclose(op(Tensor(a), 1.7).numpy(), ref(a, 1.7).astype(np.float32),
                               rtol=1e-6)


def test_reflected_scalar_ops():
    a = r(4, positive=True)
    gradcheck(lambda x: 2.0 - x, [a])
    gradcheck(lambda x: 3.0 / x, [a])
    gradcheck(lambda x: 1.5 ** x, [a])
    gradcheck(lambda x: 2.0 * x + 1.0, [a])
    np.testing.assert_allclose((3.0 / Tensor(a)).numpy(), 3.0 / a, rtol=1e-6)


UNARY = [
    ("neg", lambda t: -t, np.negative, False),
    ("exp", lambda t: t.exp(), np.exp, False),
    ("log", lambda t: t.log(), np.log, True),
    ("sqrt", lambda t: t.sqrt(), np.sqrt, True),
    ("abs", lambda t: t.abs(), np.abs, False),
    ("relu", lambda t: t.relu(), lambda a: np.maximum(a, 0), False),
    ("tanh", lambda t: t.tanh(), np.tanh, False),
    ("sigmoid", lambda t: t.sigmoid(), lambda a: 1 / (1 + np.exp(-a)), False),
    ("clip", lambda t: t.clip(-0.5, 0.7), lambda a: np.clip(a, -0.5, 0.7), False),
    ("clip_lo", lambda t: t.clip(min=0.1), lambda a: np.clip(a, 0.1, None), False),
]


@pytest.mark.parametrize("name,op,ref,positive", UNARY, ids=[u[0] for u in UNARY])
def test_unary(name, op, ref, positive):
    a = r(3, 5, positive=positive)
    a[np.abs(a) < 1e-3] = 0.3  # keep away from kinks
    np.testing.assert_allclose(op(Tensor(a, dtype="float64")).numpy(), ref(a), rtol=1e-12)
    gradcheck(op, [a])


def test_erf_matches_math_and_has_gradient():
    import math

    from engine.functions import Erf
    a = r(7)
    out = Erf.apply(Tensor(a, dtype="float64"))
    np.testing.assert_allclose(out.numpy(), [math.erf(v) for v in a], rtol=1e-12)
    gradcheck(lambda t: Erf.apply(t), [a])


@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(axis, keepdims):
    a = r(2, 3, 4)
    t = Tensor(a, dtype="float64")
    np.testing.assert_allclose(t.sum(axis, keepdims).numpy(), a.sum(axis, keepdims=keepdims))
    np.testing.assert_allclose(t.mean(axis, keepdims).numpy(), a.mean(axis, keepdims=keepdims))
    np.testing.assert_allclose(t.max(axis, keepdims).numpy(), a.max(axis, keepdims=keepdims))
    np.testing.assert_allclose(t.min(axis, keepdims).numpy(), a.min(axis, keepdims=keepdims))
    for fn in (lambda x: x.sum(axis, keepdims), lambda x: x.mean(axis, keepdims),
               lambda x: x.max(axis, keepdims), lambda x: x.min(axis, keepdims)):
        gradcheck(fn, [a])


def test_max_gradient_is_shared_between_ties():
    t = Tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]], requires_grad=True)
    t.max(1).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), [[0, 0.5, 0.5], [1, 0, 0]])


def test_torch_style_dim_keywords_and_var():
    a = r(3, 4)
    t = Tensor(a, dtype="float64")
    np.testing.assert_allclose(t.sum(dim=1, keepdim=True).numpy(), a.sum(1, keepdims=True))
    np.testing.assert_allclose(t.var(0).numpy(), a.var(0))
    np.testing.assert_allclose(t.var(0, unbiased=True).numpy(), a.var(0, ddof=1))
    gradcheck(lambda x: x.var(1), [a])


@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((2, 3, 4), (4, 2)), ((2, 3, 4), (2, 4, 5)),
                                   ((4,), (4, 3)), ((3, 4), (4,)), ((1, 3, 4), (2, 4, 2))])
def test_matmul(sa, sb):
    a, b = r(*sa), r(*sb)
    out = Tensor(a, dtype="float64") @ Tensor(b, dtype="float64")
    np.testing.assert_allclose(out.numpy(), a @ b, rtol=1e-12)
    gradcheck(lambda x, y: x @ y, [a, b])


def test_shape_ops():
    a = r(2, 3, 4)
    gradcheck(lambda x: x.reshape(4, 6) * 2, [a])
    gradcheck(lambda x: x.reshape(-1, 2), [a])
    gradcheck(lambda x: x.permute(2, 0, 1), [a])
    gradcheck(lambda x: x.transpose(0, 2), [a])
    gradcheck(lambda x: x.T, [a])
    gradcheck(lambda x: x.flatten(1), [a])
    gradcheck(lambda x: x.unsqueeze(1).squeeze(1), [a])
    gradcheck(lambda x: x[:, :1].expand(2, 5, 4), [a])
    t = Tensor(a)
    assert t.permute(2, 0, 1).shape == (4, 2, 3)
    assert t.flatten().shape == (24,)
    assert t.flatten(1).shape == (2, 12)
    np.testing.assert_allclose(t.transpose(0, 2).numpy(), a.transpose(2, 1, 0).astype(np.float32))


INDEXES = [
    (1,), (slice(None), 2), (slice(0, 2), slice(1, None, 2)), (Ellipsis, 1), (None, 0),
    (np.array([0, 1, 1]),), (slice(None), [2, 0, 2]), (np.array([[0], [1]]), np.array([1, 2])),
    (-1, slice(None, None, -1)),
]


@pytest.mark.parametrize("index", INDEXES, ids=[str(i) for i in range(len(INDEXES))])
def test_indexing_with_gradient(index):
    a = r(2, 3, 4)
    np.testing.assert_allclose(Tensor(a, dtype="float64")[index].numpy(), a[index])
    gradcheck(lambda x: x[index], [a])


def test_boolean_mask_indexing_and_comparisons():
    a = r(3, 4)
    t = Tensor(a, dtype="float64")
    mask = t > 0
    assert mask.dtype == np.bool_
    np.testing.assert_array_equal(mask.numpy(), a > 0)
    np.testing.assert_allclose(t[mask].numpy(), a[a > 0])
    gradcheck(lambda x: x[a > 0], [a])
    for op, ref in [("__lt__", np.less), ("__le__", np.less_equal), ("__ge__", np.greater_equal),
                    ("__eq__", np.equal), ("__ne__", np.not_equal)]:
        np.testing.assert_array_equal(getattr(t, op)(0.1).numpy(), ref(a, 0.1))


def test_where_cat_stack():
    a, b = r(3, 4), r(3, 4)
    cond = a > b
    np.testing.assert_allclose(engine.where(cond, Tensor(a, dtype="float64"),
                                            Tensor(b, dtype="float64")).numpy(), np.maximum(a, b))
    gradcheck(lambda x, y: engine.where(cond, x, y), [a, b])
    gradcheck(lambda x, y: engine.cat([x, y], dim=1), [a, b])
    gradcheck(lambda x, y: engine.stack([x, y], dim=0), [a, b])


def test_gradients_accumulate_and_shared_subexpressions():
    x = Tensor([2.0, -1.0], requires_grad=True)
    y = x * x + x  # x used three times
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0, -1.0])
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [8.0, 2.0])


def test_deep_graph_does_not_recurse():
    x = Tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.sum().backward()
    assert x.grad.numpy()[0] == pytest.approx(1.0001 ** 5000, rel=1e-3)


def test_no_grad_and_detach():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with engine.no_grad():
        y = x * 2
    assert not y.requires_grad
    z = (x * 2).detach()
    assert not z.requires_grad

    @engine.no_grad()
    def f(t):
        return t * 3
    assert not f(x).requires_grad
    assert engine.is_grad_enabled()


def test_float32_default_and_float64_allowed():
    assert Tensor([1, 2.5]).dtype == np.float32
    assert Tensor(np.zeros(3)).dtype == np.float32
    assert Tensor(np.zeros(3), dtype="float64").dtype == np.float64
    assert Tensor([1, 2]).dtype == np.int64
    assert (Tensor([1.0]) + 1).dtype == np.float32
    assert (Tensor([1, 2]) + 0.5).dtype == np.float32
    assert Tensor([1.0]).double().dtype == np.float64


def test_item_numpy_to_and_repr():
    t = Tensor([[3.5]])
    assert t.item() == 3.5
    assert isinstance(t.numpy(), np.ndarray)
    assert t.to("cpu") is t
    assert "3.5" in repr(t)
    with pytest.raises(ValueError, match="one element"):
        Tensor([1.0, 2.0]).item()


def test_bad_input_messages():
    a, b = Tensor(np.ones((2, 3))), Tensor(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4, 5\)"):
        a + b
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\) do not align"):
        a @ b
    with pytest.raises(TypeError, match="float32 vs float64"):
        a + Tensor(np.ones((2, 3)), dtype="float64")
    with pytest.raises(TypeError, match="floating"):
        Tensor([1, 2]).exp()
    with pytest.raises(TypeError, match="floating"):
        Tensor([1, 2], requires_grad=True)
    with pytest.raises(ValueError, match="reshape"):
        a.reshape(4, 2)
    with pytest.raises(RuntimeError, match=r"scalar output.*\(2, 3\)"):
        (a.requires_grad_() * 2).backward()
    with pytest.raises(IndexError, match=r"shape \(2, 3\)"):
        a[5]
    with pytest.raises(TypeError, match="dtype"):
        Tensor(np.array(["a"]))
    with pytest.raises(ValueError, match="unknown device"):
        Tensor([1.0], device="tpu")


def test_backward_with_explicit_gradient():
    x = Tensor(r(2, 3), requires_grad=True)
    y = x * 2
    y.backward(np.ones((2, 3)))
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.ones((2, 3)))
    with pytest.raises(ValueError, match="gradient shape"):
        (x * 2).backward(np.ones(3))

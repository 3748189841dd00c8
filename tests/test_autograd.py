"""The tape itself: multi-output Functions, freed graphs, and in-place Tensor writes."""

from __future__ import annotations

import numpy as np
import pytest

from engine import Tensor, no_grad
from engine.autograd import Function
from engine.creation import full, ones, zeros, zeros_like
from tests.gpu_helpers import gpu_backend_or_skip


class SumAndProduct(Function):
    """(a + b, a * b): two differentiable outputs, one backward."""

    def forward(self, a, b):
        self.a, self.bb = a, b
        return self.b.binary("add", a, b), self.b.binary("mul", a, b)

    def backward(self, g_sum, g_prod):
        bk = self.b
        return (bk.binary("add", g_sum, bk.binary("mul", g_prod, self.bb)),
                bk.binary("add", g_sum, bk.binary("mul", g_prod, self.a)))


class WithStat(SumAndProduct):
    grad_outputs = 1  # the product comes back as a statistic without gradient

    def backward(self, g_sum):
        return g_sum, g_sum


def test_two_outputs_share_one_backward():
    a = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    b = Tensor(np.array([4.0, 5.0, 6.0]), requires_grad=True)
    s, p = SumAndProduct.apply(a, b)
    assert s.requires_grad and p.requires_grad and s._ctx is p._ctx
    (s * 2.0 + p * 3.0).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), 2.0 + 3.0 * b.numpy())
    np.testing.assert_allclose(b.grad.numpy(), 2.0 + 3.0 * a.numpy())
    # only one output used: the other's gradient is zeros
    a.grad = b.grad = None
    _, p = SumAndProduct.apply(a, b)
    p.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), b.numpy())


def test_statistic_outputs_carry_no_gradient():
    a = Tensor(np.ones(3), requires_grad=True)
    s, p = WithStat.apply(a, Tensor(np.full(3, 2.0)))
    assert s.requires_grad and not p.requires_grad
    s.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), np.ones(3))


def test_a_freed_graph_refuses_a_second_backward():
    a = Tensor(np.ones(3), requires_grad=True)
    loss = (a * a).sum()
    loss.backward(retain_graph=True)
    loss.backward()  # kept once: gradients accumulate
    np.testing.assert_allclose(a.grad.numpy(), 4 * np.ones(3))
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        loss.backward()


@pytest.mark.parametrize("device", ["cpu", pytest.param("gpu", marks=pytest.mark.gpu)])
def test_copy_writes_in_place_on_every_device(device):
    if device == "gpu":
        gpu_backend_or_skip()
    t = zeros((2, 3), device=device)
    view = t.reshape(6)
    t.copy_(np.arange(6, dtype=np.float64).reshape(2, 3))  # cast to float32
    np.testing.assert_array_equal(view.numpy(), np.arange(6))
    t.assign_(Tensor(np.array([1.0, 2.0, 3.0])))  # from the CPU, broadcast over rows
    np.testing.assert_array_equal(t.numpy(), [[1, 2, 3], [1, 2, 3]])
    assert t.dtype == np.float32 and t.device == device
    with pytest.raises(ValueError, match="broadcast"):
        t.copy_(np.ones((3, 2)))
    w = ones((2,), device=device).requires_grad_()
    with pytest.raises(RuntimeError, match="no_grad"):
        w.copy_(np.zeros(2))
    with no_grad():
        w.copy_(np.full(2, 5.0))
    np.testing.assert_array_equal(w.numpy(), [5, 5])
    other = full((4,), 7, dtype="int64", device="cpu")
    w.set_(other)
    assert w.shape == (4,) and w.dtype == np.int64 and w.device == "cpu"
    assert zeros_like(w).dtype == np.int64 and not zeros_like(w).numpy().any()

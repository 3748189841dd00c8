"""The CPU fast paths' shortcuts (issue 18) against their references: the LSTM scan's
skipped GEMMs when an input or the initial state wants no gradient, and `fused.linear`,
which traces (ONNX export, cached plans) as the reference's three ops."""

from __future__ import annotations

import numpy as np

from engine import Tensor, functions, fused
from engine.autograd import trace
from engine.fused import reference_only


def _lstm_grads(x_grad: bool, h0_zero: bool) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    T, B, I, H = 4, 3, 2, 5

    def t(*shape: int, grad: bool = True) -> Tensor:
        return Tensor(rng.standard_normal(shape), dtype=np.float64, requires_grad=grad)
    x = t(T, B, I, grad=x_grad)
    w_ih, w_hh, b_ih, b_hh = t(4 * H, I), t(4 * H, H), t(4 * H), t(4 * H)
    h0 = None if h0_zero else t(B, H)
    out = fused.recurrent_scan(x, h0, None, w_ih, w_hh, b_ih, b_hh, mode="LSTM")
    (out * Tensor(rng.standard_normal(out.shape), dtype=np.float64)).sum().backward()
    return [p.grad.numpy() for p in (w_ih, w_hh, b_ih, b_hh)] + \
        ([x.grad.numpy()] if x_grad else []) + ([] if h0_zero else [h0.grad.numpy()])


def test_lstm_scan_skips_only_unwanted_gradients():
    for x_grad in (True, False):
        for h0_zero in (True, False):
            fast = _lstm_grads(x_grad, h0_zero)
            with reference_only("recurrent_scan"):
                ref = _lstm_grads(x_grad, h0_zero)
            assert len(fast) == len(ref)
            for a, b in zip(fast, ref):
                np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_linear_traces_as_its_reference_ops():
    rng = np.random.default_rng(1)
    x, w, b = (Tensor(rng.standard_normal(s)) for s in ((2, 3), (4, 3), (4,)))
    with trace() as tr:
        y = fused.linear(x, w, b)
    assert [r[0] for r in tr.records] == [functions.Permute, functions.MatMul, functions.Add]
    np.testing.assert_array_equal(y.numpy(), fused.linear(x, w, b).numpy())  # bit-identical


def test_nchw_conv_gradients_share_gy_only_while_it_is_the_same_array():
    """The NCHW convolution's input and weight gradients share one batch-innermost copy
    of gy (`_gy_batch_inner`): a different gy, even of the same shape, must get its own,
    and the one-image layout (pixels (N, Ho, Wo)) must give what the batch-innermost does."""
    from engine.backends.cpu import CpuBackend

    rng = np.random.default_rng(2)
    b = CpuBackend()
    p = ((1, 1), (1, 1), (1, 1), 1)
    x = rng.standard_normal((3, 4, 6, 5))
    w = rng.standard_normal((5, 4, 3, 3))
    gy1, gy2 = rng.standard_normal((2, 3, 5, 6, 5))
    b.conv2d_grad_input(gy1, w, x.shape, *p)  # remembers gy1's copy
    got = b.conv2d_grad_weight(gy2, x, w.shape, *p)
    want = sum(b.conv2d_grad_weight(gy2[i:i + 1], x[i:i + 1], w.shape, *p) for i in range(3))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(b.conv2d_grad_weight(gy1, x, w.shape, *p),
                               sum(b.conv2d_grad_weight(gy1[i:i + 1], x[i:i + 1], w.shape, *p)
                                   for i in range(3)), rtol=1e-10, atol=1e-10)
    y = b.conv2d(x, w, *p)
    np.testing.assert_allclose(y, np.concatenate([b.conv2d(x[i:i + 1], w, *p) for i in range(3)]),
                               rtol=1e-10, atol=1e-10)

"""The CPU fast paths' shortcuts (issue 18) against their references: the LSTM scan's
skipped GEMMs when an input or the initial state wants no gradient, `fused.linear`,
which traces (ONNX export, cached plans) as the reference's three ops, the tiled 2x2 max
pooling against the general one, and ReLU against a row of zeros."""

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


def test_tiled_2x2_max_pooling_matches_the_general_path_ties_included(monkeypatch):
    """The 2x2 stride-2 pooling of a contiguous NCHW input (`_tiled_max_argmax`) against
    the general tap loop: the same maxima, the same winners (the first maximum in
    row-major order, where ReLU's zeros and repeated values tie), as flat offsets through
    `np.asarray`, and the same gradient."""
    from engine.backends import cpu_kernels
    from engine.backends.cpu import CpuBackend

    rng = np.random.default_rng(3)
    b = CpuBackend()
    geo = ((2, 2), (2, 2), (0, 0), (1, 1))
    for shape, dtype in (((3, 2, 6, 8), np.float32), ((2, 3, 4, 10), np.float64)):
        x = np.maximum(rng.integers(-3, 3, shape), 0).astype(dtype)  # many ties, zeros
        x[0, 0, :2, :2] = 2.0  # a window of four equal values: phase 0 wins
        x[0, 1, :2, :2] = [[0, 1], [1, 0]]  # top-right before bottom-left
        best, arg = b.maxpool2d(x, *geo)
        assert isinstance(arg, cpu_kernels.TiledArgmax)
        with monkeypatch.context() as m:
            m.setattr(cpu_kernels, "_tiles_2x2", lambda *args: False)
            want_best, want_arg = b.maxpool2d(x, *geo)
        np.testing.assert_array_equal(best, want_best)
        np.testing.assert_array_equal(np.asarray(arg), want_arg)
        assert best.dtype == x.dtype and np.asarray(arg).dtype == np.int32
        gy = rng.standard_normal(best.shape).astype(dtype)
        got = b.maxpool2d_grad(gy, arg, x.shape)
        np.testing.assert_array_equal(got, b.maxpool2d_grad(gy, want_arg, x.shape))
        assert got.dtype == dtype
    odd = rng.standard_normal((1, 1, 5, 6))  # windows that do not tile: the general path
    assert not isinstance(b.maxpool2d(odd, *geo)[1], cpu_kernels.TiledArgmax)


def test_relu_against_a_row_of_zeros_gives_numpys_maximum():
    """`cpu._relu` compares C-contiguous arrays with a cached row of zeros (NumPy's SIMD
    loop); every shape, dtype and memory order must give np.maximum(a, 0)."""
    from engine.backends import cpu

    rng = np.random.default_rng(4)
    for shape in ((64, 6, 28, 28), (3, 1100), (2049,), (4, 3, 300), (7, 5)):
        for dtype in (np.float32, np.float64):
            a = rng.standard_normal(shape).astype(dtype)
            got = cpu._relu(a)
            np.testing.assert_array_equal(got, np.maximum(a, 0))
            assert got.dtype == dtype and got.shape == a.shape
    a = rng.standard_normal((40, 50)).astype(np.float32).T  # not C-contiguous
    np.testing.assert_array_equal(cpu._relu(a), np.maximum(a, 0))
    out = np.empty((3, 1100), np.float32)
    a = rng.standard_normal((3, 1100)).astype(np.float32)
    assert cpu._relu(a, out) is out and np.array_equal(out, np.maximum(a, 0))

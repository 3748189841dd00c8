"""The CPU backend's channels-last kernels (engine/backends/cpu_channels_last.py).

A convolution's output is channels-last (an NCHW-shaped view of an NHWC buffer), and the
batch norm and max pooling that follow take their channels-last paths. The fused-kernel
samples feed ordinary NCHW arrays, so here the inputs are built channels-last and each
kernel's fast path is compared with its Tensor-op reference, forward and backward, and
checked to have kept the layout (so a silent fall-back to the NCHW kernels fails).
"""

from __future__ import annotations

import numpy as np
import pytest

from engine import Tensor, fused
from engine.backends.cpu_channels_last import is_channels_last
from engine.fused import reference_only


def channels_last(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def _run(kernel, args: list[np.ndarray], params: dict, stats: int = 0):
    ts = [Tensor(a, requires_grad=True) for a in args]
    out = kernel(*ts, **params)
    outs = list(out) if isinstance(out, tuple) else [out]
    y = outs[0]
    w = np.random.default_rng(5).standard_normal(y.shape).astype(np.float32)
    (y * Tensor(channels_last(w))).sum().backward()
    return [o.numpy() for o in outs], [t.grad.numpy() for t in ts], y


def _check(kernel, args, params, atol=1e-4):
    with reference_only(kernel.name):
        want_out, want_grad, _ = _run(kernel, args, params)
    got_out, got_grad, y = _run(kernel, args, params)
    assert is_channels_last(y.data), f"{kernel.name}: the output lost the channels-last layout"
    for g, w in zip(got_out + got_grad, want_out + want_grad, strict=True):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=atol * max(1.0, np.abs(w).max()))


RNG = np.random.default_rng(0)


def r(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape, dtype=np.float32)


@pytest.mark.parametrize("params", [
    {"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0), "dilation": (1, 1)},
    {"kernel": (3, 3), "stride": (1, 1), "padding": (1, 1), "dilation": (1, 1)},
    {"kernel": (3, 2), "stride": (2, 1), "padding": (1, 0), "dilation": (1, 1)},
    {"kernel": (2, 2), "stride": (1, 2), "padding": (0, 1), "dilation": (2, 1)},
])
def test_max_pool_channels_last(params):
    _check(fused.max_pool2d, [channels_last(r(2, 5, 7, 8))], params, atol=1e-6)


def test_batch_norm_channels_last():
    x = channels_last(r(4, 6, 5, 3) * 3 + 2)
    _check(fused.batch_norm, [x, r(6), r(6)], {"axes": (0, 2, 3), "eps": 1e-5})


@pytest.mark.parametrize("c", [8, 40])  # the input gradient by convolution, by col2im
@pytest.mark.parametrize("geo", [
    ((1, 1), (1, 1), (1, 1)),  # stride 1: the input gradient as a convolution of gy
    ((1, 1), (0, 2), (1, 2)),  # ... dilated, padded by (k - 1) * d - p = (2, 2)
    ((1, 1), (3, 1), (1, 1)),  # padding beyond the kernel: col2im
    ((2, 1), (0, 2), (1, 2)),  # strided: col2im
])
def test_conv_of_a_channels_last_input(geo, c):
    stride, padding, dilation = geo
    _check(fused.conv2d, [channels_last(r(2, c, 8, 7)), r(16, c, 3, 3), r(16)],
           {"stride": stride, "padding": padding, "dilation": dilation})


def test_conv_and_pool_in_several_blocks(monkeypatch):
    """Blocked im2col/col2im (channels-last `Patches`, the NCHW GEMM blocks) and a pooling
    gradient whose windows tile the input, on blocks small enough to need several."""
    from engine.backends import cpu_channels_last, cpu_kernels

    monkeypatch.setattr(cpu_channels_last.Patches, "ROWS", 40)  # one 7x7 image per block
    monkeypatch.setattr(cpu_kernels, "GEMM_BLOCK", 50)
    for c, stride in ((8, (1, 1)), (40, (2, 1))):  # gx by convolution, by col2im
        _check(fused.conv2d, [channels_last(r(3, c, 7, 7)), r(16, c, 3, 3), r(16)],
               {"stride": stride, "padding": (1, 1), "dilation": (1, 1)})
    _check(fused.max_pool2d, [channels_last(r(2, 5, 8, 6))],
           {"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0), "dilation": (1, 1)}, 1e-6)
    x = Tensor(r(3, 2, 9, 9), requires_grad=True)  # NCHW (narrow): blocks of 50 pixels
    w = Tensor(r(6, 2, 3, 3), requires_grad=True)
    with reference_only("conv2d"):
        fused.conv2d(x, w, None, padding=(1, 1)).sum().backward()
    want = x.grad.numpy(), w.grad.numpy()
    x.grad = w.grad = None
    fused.conv2d(x, w, None, padding=(1, 1)).sum().backward()
    for got, ref in zip((x.grad.numpy(), w.grad.numpy()), want):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_narrow_conv_stays_nchw():
    """LeNet-5's 1->6 layer is faster through the NCHW kernels (`conv._wide`)."""
    x = Tensor(r(2, 1, 8, 8), requires_grad=True)
    y = fused.conv2d(x, Tensor(r(6, 1, 5, 5)), None, padding=(2, 2))
    assert y.data.flags.c_contiguous


def test_first_maximum_wins_on_ties():
    """As in PyTorch: the whole gradient goes to the first tap of a tied window."""
    x = channels_last(np.ones((1, 2, 2, 2), np.float32))
    t = Tensor(x, requires_grad=True)
    fused.max_pool2d(t, kernel=(2, 2), stride=(2, 2)).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy()[0, :, 0, 0], [1, 1])
    assert t.grad.numpy().sum() == 2


@pytest.mark.parametrize("scale, shift", [(3.0, 2.0), (0.03, 5.0)])  # one pass; around mean
def test_batch_norm_matches_the_nchw_kernels(scale, shift):
    """The channels-last batch norm (one-pass statistics, or two where the mean dwarfs the
    spread) against the NCHW kernels, forward and gradient, on odd sizes."""
    from engine.backends.cpu import CpuBackend

    b = CpuBackend()
    x = channels_last(r(3, 5, 7, 3) * scale + shift)
    gamma, beta, gy = r(5), r(5), channels_last(r(3, 5, 7, 3))
    got = b.batch_norm_train(x, gamma, beta, (0, 2, 3), 1e-5)
    want = b.batch_norm_train(np.ascontiguousarray(x), gamma, beta, (0, 2, 3), 1e-5)
    assert is_channels_last(got[0])
    grads = [b.batch_norm_grad(g, a, gamma, got[1], got[2], (0, 2, 3))
             for g, a in ((gy, x), (np.ascontiguousarray(gy), np.ascontiguousarray(x)))]
    for g, w in zip([*got, *grads[0]], [*want, *grads[1]], strict=True):
        assert g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=2e-4, atol=2e-4 * max(1.0, np.abs(w).max()))


def test_tiled_2x2_pool_matches_the_general_paths(monkeypatch):
    """The 2x2 stride-2 phase path (`_phase_max`) against the general channels-last taps
    and the NCHW kernels, forward and gradient, on odd N and C and on many ties (values
    in {0, 1, 2}): bit for bit, the first maximum in row-major order winning."""
    from engine.backends import cpu_channels_last as cl
    from engine.backends.cpu import CpuBackend

    b, geo = CpuBackend(), ((2, 2), (2, 2), (0, 0), (1, 1))
    x = channels_last(RNG.integers(0, 3, (3, 5, 6, 10)).astype(np.float32))
    gy = channels_last(r(3, 5, 3, 5))

    def pool(a):
        y, kept = b.maxpool2d(a, *geo)
        return y, b.maxpool2d_grad(gy, kept, a.shape), kept

    y, gx, kept = pool(x)
    assert isinstance(kept, cl._Phases) and is_channels_last(gx)
    np.testing.assert_array_equal(b.maxpool2d_values(x, *geo), y)
    nchw = pool(np.ascontiguousarray(x))
    monkeypatch.setattr(cl, "_phases", lambda *a: False)
    taps = pool(x)
    assert isinstance(taps[2], cl._Winners)
    for want in (nchw, taps):
        np.testing.assert_array_equal(y, want[0])
        np.testing.assert_array_equal(gx, want[1])

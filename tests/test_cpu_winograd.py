"""Winograd F(2x2, 3x3) convolutions of the CPU backend (engine/backends/cpu_winograd.py).

The same backend call is run with Winograd forced on and forced off (im2col + GEMM), on
sizes that are not whole tiles, padding 0..2, with and without bias, C_in = 1, forward
and both gradients, in one block and in several; float64 must agree to rounding, float32
within the parity tests' tolerance, and PyTorch is the oracle where it is installed. Then
the engine's conv2d is checked to take this path where the rule says it pays, and the
float64 gradient check is run through it.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine import Tensor, fused
from engine.backends import cpu_channels_last, cpu_winograd
from engine.backends.cpu import CpuBackend
from engine.fused import reference_only
from engine.nn import functional as F
from tests.gradcheck import gradcheck

RNG = np.random.default_rng(0)

CASES = [  # (N, C_in, C_out, H, W, padding, bias)
    (2, 1, 3, 7, 9, (1, 1), True),
    (3, 5, 4, 8, 8, (0, 0), False),
    (2, 16, 17, 11, 6, (1, 1), True),
    (1, 3, 2, 5, 4, (2, 2), False),
    (2, 2, 3, 3, 3, (0, 0), True),
    (3, 2, 3, 6, 5, (0, 1), True),
]


def _conv(x, w, b, pad, winograd: bool, monkeypatch):
    """(y, gx, gw, gb) of the backend's channels-last conv for upstream gradient gy."""
    monkeypatch.setattr(cpu_winograd, "pays", lambda *shape: winograd)
    bk = CpuBackend()
    y, kept = bk.conv2d_nhwc(x, w, b, (1, 1), pad, (1, 1), True)
    assert isinstance(kept, cpu_channels_last._Tiles) == winograd
    gy = np.random.default_rng(1).standard_normal(y.shape).astype(x.dtype)
    gx, gw, gb = bk.conv2d_nhwc_grad(gy, kept, w, x.shape, (1, 1), pad, (1, 1), True, True,
                                     b is not None)
    return [a for a in (y, gx, gw, gb) if a is not None], gy


@pytest.mark.parametrize("blocks", ["one", "per image"])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_winograd_matches_im2col_and_torch(case, dtype, blocks, monkeypatch):
    n, c, co, h, w_, pad, bias = case
    if blocks == "per image":
        monkeypatch.setattr(cpu_winograd, "BLOCK", 1)
        monkeypatch.setattr(cpu_winograd, "ROWS", 1)
        assert cpu_winograd.Geometry((n, c, h, w_), pad, c + co).step == 1
    x = RNG.standard_normal((n, c, h, w_)).astype(dtype)
    w = RNG.standard_normal((co, c, 3, 3)).astype(dtype)
    b = RNG.standard_normal(co).astype(dtype) if bias else None
    got, gy = _conv(x, w, b, pad, True, monkeypatch)
    want, _ = _conv(x, w, b, pad, False, monkeypatch)
    tol = {"rtol": 1e-10, "atol": 1e-11} if dtype == np.float64 else {"rtol": 1e-4, "atol": 1e-4}
    for g, ref, name in zip(got, want, ("y", "gx", "gw", "gb")):
        assert g.shape == ref.shape, name
        np.testing.assert_allclose(g, ref, **tol, err_msg=name)
    torch = pytest.importorskip("torch")
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, None if b is None else torch.tensor(b), padding=pad)
    yt.backward(torch.tensor(gy))
    for g, ref, name in zip(got, (yt.detach(), xt.grad, wt.grad), ("y", "gx", "gw")):
        np.testing.assert_allclose(g, ref.numpy(), **tol, err_msg=f"{name} vs torch")


def channels_last(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def _spy(monkeypatch) -> list:
    calls = []
    real = cpu_winograd.conv3x3

    def conv3x3(*args, **kw):
        calls.append(args[0].shape)
        return real(*args, **kw)
    monkeypatch.setattr(cpu_winograd, "conv3x3", conv3x3)
    return calls


def test_conv2d_takes_winograd_where_it_pays(monkeypatch):
    """fused.conv2d (what nn.Conv2d calls) agrees with its Tensor-op reference through
    Winograd, forward and backward, and keeps im2col where the rule says so."""
    calls = _spy(monkeypatch)
    x = channels_last(RNG.standard_normal((2, 16, 32, 32), dtype=np.float32))
    w = RNG.standard_normal((16, 16, 3, 3), dtype=np.float32) * 0.1

    def run():
        ts = [Tensor(a, requires_grad=True) for a in (x, w)]
        y = fused.conv2d(*ts, None, padding=(1, 1))
        (y * y).sum().backward()
        return [y.numpy()] + [t.grad.numpy() for t in ts]
    with reference_only("conv2d"):
        want = run()
    got = run()
    assert calls == [(2, 16, 32, 32)], "the forward did not go through Winograd"
    for g, ref in zip(got, want):
        np.testing.assert_allclose(g, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    assert cpu_winograd.pays(2, 16, 16, 32, 32)
    assert not cpu_winograd.pays(1, 16, 16, 32, 32)  # one image: im2col
    assert not cpu_winograd.pays(128, 8, 16, 32, 32)  # narrow input
    fused.conv2d(Tensor(x[:1]), Tensor(w), None, padding=(1, 1))
    assert len(calls) == 1


@pytest.mark.parametrize("pad", [(0, 0), (1, 1)])
def test_gradcheck_through_winograd(pad, monkeypatch):
    monkeypatch.setattr(cpu_winograd, "pays", lambda *shape: True)
    calls = _spy(monkeypatch)
    x = RNG.standard_normal((1, 8, 5, 4))
    w = RNG.standard_normal((16, 8, 3, 3))
    b = RNG.standard_normal(16)
    gradcheck(lambda x, w, b: F.conv2d(x, w, b, 1, pad), [x, w, b])
    assert calls, "the gradient check did not go through Winograd"


@pytest.mark.parametrize("hw", [(6, 8), (5, 7)])  # whole tiles (one interleaving copy), cut
def test_output_and_its_adjoint_are_the_tile_formulas(hw):
    """`_output` (one GEMM with kron(A^T, A^T)) is y = A^T m A + bias tile by tile, and
    `_grad_tiles` is SIGNS * (A gy_tile A^T), gy zero past the output's edge."""
    b, co = 2, 3
    geo = cpu_winograd.Geometry((b, 1, hw[0] + 2, hw[1] + 2), (0, 0), 1 + co)
    th, tw = geo.th, geo.tw
    at = cpu_winograd.AT
    m = RNG.standard_normal((16, b * th * tw, co))
    bias = RNG.standard_normal(co)
    y = np.empty((b, *hw, co))
    cpu_winograd._output(m.copy(), b, geo, bias, y, np.empty(m.size // 4))
    tiles = np.einsum("ia,abtc,jb->tijc", at, m.reshape(4, 4, -1, co), at) + bias
    full = tiles.reshape(b, th, tw, 2, 2, co).transpose(0, 1, 3, 2, 4, 5)
    np.testing.assert_allclose(y, full.reshape(b, 2 * th, 2 * tw, co)[:, : hw[0], : hw[1]],
                               rtol=1e-12, atol=1e-12)
    gy = RNG.standard_normal((b, *hw, co))
    padded = np.zeros((b, 2 * th, 2 * tw, co))
    padded[:, : hw[0], : hw[1]] = gy
    gtiles = padded.reshape(b, th, 2, tw, 2, co).transpose(0, 1, 3, 2, 4, 5).reshape(-1, 2, 2, co)
    want = np.einsum("ia,tijc,jb->abtc", at, gtiles, at).reshape(16, -1, co)
    got = cpu_winograd._grad_tiles(gy, geo, np.zeros((4, 4, b * th * tw, co)))
    np.testing.assert_allclose(got, cpu_winograd.SIGNS[:, None, None] * want, rtol=1e-12,
                               atol=1e-12)

"""The fused factorization-machine primitive (shaders/fm.wgsl) against the NumPy reference.

Float32 on both sides; the sums run over N and K in a different order, so tolerances scale
with the largest value (the pairwise term cancels: (sum v x)^2 - sum (v x)^2)."""

from __future__ import annotations

import numpy as np
import pytest

from engine import Tensor
from engine.backends.cpu import CpuBackend
from engine.functions import FMPairwise
from tests.gpu_helpers import check, gpu_backend_or_skip

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def gpu():
    return gpu_backend_or_skip()


def _inputs(B: int, N: int, K: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((B, N, K)).astype(np.float32)
    x = rng.uniform(0.2, 1.5, (B, N)).astype(np.float32)
    x[:, N - 1:] = 0.0  # a padding entry per row
    g = rng.standard_normal(B).astype(np.float32)
    return v, x, g


def _tol(want: np.ndarray) -> dict[str, float]:
    return {"rtol": 1e-4, "atol": 1e-5 * float(np.abs(want).max(initial=1.0))}


# (1, 1, 1): a single padded entry; K > 64 loops the forward's 64 threads; N = 300 is a
# heavy user's implicit row; B = 70000 needs the 2-D grid of workgroups
@pytest.mark.parametrize("B,N,K", [(1, 1, 1), (5, 7, 3), (16, 40, 32), (3, 300, 65),
                                   (257, 3, 130), (70000, 2, 2)])
def test_fm_pairwise_forward_and_grad(gpu, B: int, N: int, K: int) -> None:
    cpu = CpuBackend()
    v, x, g = _inputs(B, N, K)
    want = cpu.fm_pairwise(v, x)
    check(gpu, gpu.fm_pairwise(gpu.from_numpy(v), gpu.from_numpy(x)), want, **_tol(want),
          what="fm_pairwise")
    gv, gx = gpu.fm_pairwise_grad(*(gpu.from_numpy(a) for a in (g, v, x)))
    wv, wx = cpu.fm_pairwise_grad(g, v, x)
    check(gpu, gv, wv, **_tol(wv), what="fm_pairwise_grad v")
    check(gpu, gx, wx, **_tol(wx), what="fm_pairwise_grad x")


def test_fm_pairwise_float64_and_empty(gpu) -> None:
    cpu = CpuBackend()
    v, x, g = _inputs(4, 5, 3)
    v64, x64 = v.astype(np.float64), x.astype(np.float64)
    want = cpu.fm_pairwise(v64, x64)
    check(gpu, gpu.fm_pairwise(gpu.from_numpy(v64), gpu.from_numpy(x64)), want, **_tol(want))
    for B, N, K in ((0, 3, 2), (2, 3, 0), (2, 0, 3)):
        v, x, g = (np.zeros((B, N, K), np.float32), np.zeros((B, N), np.float32),
                   np.ones(B, np.float32))
        check(gpu, gpu.fm_pairwise(gpu.from_numpy(v), gpu.from_numpy(x)),
              cpu.fm_pairwise(v, x), what=f"empty {(B, N, K)}")
        gv, gx = gpu.fm_pairwise_grad(*(gpu.from_numpy(a) for a in (g, v, x)))
        wv, wx = cpu.fm_pairwise_grad(g, v, x)
        check(gpu, gv, wv, what="empty gv")
        check(gpu, gx, wx, what="empty gx")
    with pytest.raises(ValueError, match="fm_pairwise"):
        gpu.fm_pairwise(gpu.from_numpy(np.zeros((2, 3, 4), np.float32)),
                        gpu.from_numpy(np.zeros((2, 4), np.float32)))


def test_fm_pairwise_function_on_gpu_matches_cpu(gpu) -> None:
    v, x, g = _inputs(8, 6, 5, seed=3)
    out = {}
    for dev in ("cpu", "gpu"):
        vt = Tensor(v, requires_grad=True, device=dev)
        xt = Tensor(x, requires_grad=True, device=dev)
        y = FMPairwise.apply(vt, xt)
        (y * Tensor(g, device=dev)).sum().backward()
        out[dev] = (y.numpy(), vt.grad.numpy(), xt.grad.numpy())
    for got, want in zip(out["gpu"], out["cpu"]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_image_fm_fits_the_same_on_the_gpu(gpu) -> None:
    """The art page's FM (engine.fm.image) fitted on the GPU (fused kernel, Adam on
    device) follows the CPU fit: same losses and predictions to float32 rounding."""
    from engine.fm.image import fit_pixel_fm, pixel_features, predict_pixel_fm
    from engine.inpaint import random_mask

    rng = np.random.default_rng(0)
    img = rng.random((20, 20, 3))
    obs = ~random_mask(img.shape, 0.5, seed=1)
    feats = pixel_features(img * obs[..., None], obs)
    out = {}
    for dev in ("cpu", "gpu"):
        fm, hist = fit_pixel_fm(feats, img, obs, epochs=2, n_train=600, batch_size=200,
                                seed=0, device=dev)
        py, px = np.nonzero(~obs)
        out[dev] = (np.array(hist), predict_pixel_fm(fm, feats, py, px))
        assert fm.V.device == dev
    for got, want in zip(out["gpu"], out["cpu"]):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)

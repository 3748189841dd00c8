"""Shared pieces of the GPU tests: getting the GPU backend (or skipping), comparisons.

GPU tests skip when no adapter exists, except under CI (env `CI` set), where a GPU test
that would skip fails instead: CI installs Mesa's lavapipe, so a missing adapter there is a
broken setup, not an absent feature.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from engine import backends


def gpu_backend_or_skip():
    """The registry's GPU backend; skip (fail under CI) only when there is no adapter."""
    try:
        return backends.get("gpu")
    except backends.DeviceError as exc:
        from engine.backends.gpu import GpuBackend
        try:  # re-create it here so that a bug (not a missing adapter) errors the test
            GpuBackend()
        except backends.DeviceError:
            pass
        msg = f"no GPU adapter: {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"{msg} (CI is set, so GPU tests must run; install "
                        "mesa-vulkan-drivers and libvulkan1)")
        pytest.skip(msg)


def expected_dtype(dt: np.dtype) -> np.dtype:
    """The dtype the GPU reports for a CPU result dtype (float64 is computed as float32)."""
    dt = np.dtype(dt)
    return np.dtype(np.float32) if dt.kind == "f" else dt


def check(gpu, got, want, rtol: float = 1e-5, atol: float = 1e-6, what: str = "") -> None:
    """GPU array `got` matches NumPy `want` in shape, dtype and values."""
    want = np.asarray(want)
    assert tuple(got.shape) == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == expected_dtype(want.dtype), f"{what}: dtype {got.dtype} != {want.dtype}"
    host = gpu.to_numpy(got)
    assert host.shape == want.shape and host.dtype == got.dtype
    if want.dtype.kind == "f":
        np.testing.assert_allclose(host, want, rtol=rtol, atol=atol, err_msg=what)
    else:
        np.testing.assert_array_equal(host, want, err_msg=what)

"""Finite-difference gradient checks in float64, shared by the op and layer tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from engine import Tensor


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[np.ndarray], eps: float = 1e-6,
              rtol: float = 1e-5, atol: float = 1e-7, device: str = "cpu") -> None:
    """Compare autograd gradients of sum(fn(*inputs) * w) with central differences.

    A fixed random weighting `w` makes every output element matter, so a wrong gradient
    for any single output shows up.
    """
    arrays = [np.asarray(x, dtype=np.float64) for x in inputs]
    tensors = [Tensor(a, requires_grad=True, device=device, dtype="float64") for a in arrays]
    out = fn(*tensors)
    w = np.random.default_rng(1234).standard_normal(out.shape)
    (out * Tensor(w, device=device, dtype="float64")).sum().backward()

    def scalar(vals: list[np.ndarray]) -> float:
        ts = [Tensor(v, device=device, dtype="float64") for v in vals]
        return float((fn(*ts).numpy() * w).sum())

    for i, (a, t) in enumerate(zip(arrays, tensors)):
        assert t.grad is not None, f"input {i} received no gradient"
        analytic = t.grad.numpy()
        numeric = np.zeros_like(a)
        flat = a.reshape(-1)
        for j in range(flat.size):
            orig = flat[j]
            flat[j] = orig + eps
            plus = scalar(arrays)
            flat[j] = orig - eps
            minus = scalar(arrays)
            flat[j] = orig
            numeric.reshape(-1)[j] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {i} (shape {a.shape})")

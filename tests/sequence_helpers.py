"""Shared pieces of the sequence-layer tests: run an engine module and its PyTorch twin
from the same weights on the same input and compare outputs and every gradient."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from engine import Tensor


def device_params():
    """pytest params for both devices; the GPU one carries the gpu mark."""
    import pytest

    return [pytest.param("cpu"), pytest.param("gpu", marks=pytest.mark.gpu)]


def need_device(device: str) -> None:
    if device == "gpu":
        from tests.gpu_helpers import gpu_backend_or_skip

        gpu_backend_or_skip()


def flat(out: Any) -> list[Any]:
    """Every tensor in a (nested) tuple of outputs, Nones dropped."""
    if out is None:
        return []
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in flat(o)]
    return [out]


def compare(ours: Any, theirs: Any, inputs: list[Any], device: str = "cpu",
            call: Callable[[Any, list[Any]], Any] | None = None, rtol: float = 1e-4,
            atol: float = 1e-5, seed: int = 0) -> None:
    """call(ours, inputs) vs call(theirs, inputs) (default: module(*inputs); theirs loaded
    with ours' state dict): every output, and the gradient of sum_k <out_k, w_k> for every
    float input array and every parameter."""
    import torch

    theirs.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v))
                            for k, v in ours.state_dict().items()}, strict=True)
    ours.to(device)
    xe = [Tensor(a, requires_grad=a.dtype.kind == "f", device=device)
          if isinstance(a, np.ndarray) else a for a in inputs]
    xt = [torch.tensor(a, requires_grad=a.dtype.kind == "f") if isinstance(a, np.ndarray)
          else a for a in inputs]
    call = call or (lambda m, xs: m(*xs))
    oe = flat(call(ours, xe))
    ot = flat(call(theirs, xt))
    assert len(oe) == len(ot), (len(oe), len(ot))
    rng = np.random.default_rng(seed)
    loss_e = loss_t = None
    for i, (a, b) in enumerate(zip(oe, ot)):
        assert a.shape == tuple(b.shape), f"output {i}: shape {a.shape} != {tuple(b.shape)}"
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"output {i}")
        w = rng.standard_normal(a.shape).astype(np.float32)
        le = (a * Tensor(w, device=device)).sum()
        lt = (b * torch.from_numpy(w)).sum()
        loss_e = le if loss_e is None else loss_e + le
        loss_t = lt if loss_t is None else loss_t + lt
    loss_e.backward()
    loss_t.backward()
    for i, (a, b) in enumerate(zip(xe, xt)):
        if isinstance(a, Tensor) and a.requires_grad and b.grad is not None:
            assert a.grad is not None, f"input {i} got no gradient"
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=atol,
                                       err_msg=f"gradient of input {i}")
    tp = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert name in tp, name
        if tp[name].grad is None or p.grad is None:  # unused (e.g. W_hh with a zero state)
            for g in (tp[name].grad, p.grad):
                assert g is None or not np.any(g.numpy()), f"{name}: a gradient on one side"
            continue
        np.testing.assert_allclose(p.grad.numpy(), tp[name].grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"gradient of {name}")

"""A device that implements only the twenty core primitives runs everything.

`CoreOnly` delegates exactly `engine.backends.base.CORE` to NumPy and has no fast kernels,
so every fused op (convolution, pooling, batch norm, softmax, cross-entropy, optimizer
updates) runs through its Tensor-op reference. Training on it must give the same numbers
as the CPU backend with its fast paths.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import engine
from engine import Tensor, backends, nn, optim
from engine.backends.base import CORE
from engine.backends.cpu import CpuBackend


class CoreOnly:
    """The core protocol and nothing else (no conv2d, no adam_step_, ...)."""

    name = "core-only"

    def __init__(self) -> None:
        self.cpu = CpuBackend()
        self.calls: Counter[str] = Counter()

    def describe(self) -> str:
        return "core primitives only (NumPy)"


def _delegate(name: str):
    def method(self, *args, **kwargs):
        self.calls[name] += 1
        return getattr(self.cpu, name)(*args, **kwargs)
    method.__name__ = name
    return method


for _name in CORE:
    setattr(CoreOnly, _name, _delegate(_name))


@pytest.fixture
def core():
    """The "gpu" device name routed to a CoreOnly backend for the test."""
    with backends.override("gpu", CoreOnly()) as b:
        yield b


def _net() -> nn.Module:
    # no bias before batch norm: its true gradient is 0, and Adam would amplify the noise
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding="same"), nn.Tanh(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(6 * 2 * 2, 5), nn.LogSoftmax(1))


@pytest.mark.parametrize("make_opt", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda ps: optim.Adam(ps, lr=0.01),
    lambda ps: optim.AdamW(ps, lr=0.01),
    lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5),
    lambda ps: optim.Adagrad(ps, lr=0.1),
], ids=["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_training_on_the_core_protocol_matches_the_fast_paths(core, make_opt):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 1, 8, 8)).astype(np.float32), rng.integers(0, 5, 6)
    results = {}
    for device in ("cpu", "gpu"):
        engine.manual_seed(0)
        model = _net().to(device)
        opt = make_opt(model.parameters())
        losses = []
        for _ in range(3):
            opt.zero_grad()
            out = model(Tensor(x, device=device))
            loss = nn.functional.cross_entropy(out, Tensor(y, device=device)) \
                + nn.functional.nll_loss(out, Tensor(y, device=device))
            loss.backward()
            opt.step()
            losses.append(loss.item())
        results[device] = (losses, [p.numpy() for p in model.parameters()],
                           model[1].running_var.numpy())
    (l_cpu, p_cpu, rv_cpu), (l_core, p_core, rv_core) = results["cpu"], results["gpu"]
    np.testing.assert_allclose(l_core, l_cpu, rtol=1e-4, atol=1e-5)
    for a, b in zip(p_core, p_cpu, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(rv_core, rv_cpu, rtol=1e-4, atol=1e-5)
    assert set(core.calls) <= set(CORE) and core.calls["matmul"] > 0


def test_every_fused_kernel_runs_on_the_core_protocol(core):
    """Each kernel's first sample, forward and backward, on the core-only device."""
    from engine.fused import FusedUpdate, kernels

    for name, kernel in kernels().items():
        sample = kernel.samples(np.random.default_rng(0))[0]
        args = [Tensor(a, device="gpu", requires_grad=a.dtype.kind == "f"
                       and not isinstance(kernel, FusedUpdate))
                if isinstance(a, np.ndarray) else a for a in sample.args]
        out = kernel(*args, **sample.params)
        if isinstance(kernel, FusedUpdate):
            assert out is None
            continue
        first = out[0] if isinstance(out, tuple) else out
        assert first.device == "gpu", name
        first.sum().backward()
        for a in args:
            if isinstance(a, Tensor) and a.requires_grad:
                assert a.grad is not None and a.grad.shape == a.shape, name

"""Every fused kernel, on every device, against its reference (engine.fused).

For each registered kernel and each of its samples, the expected values come from the
kernel's reference (Tensor ops) on the CPU in float64. On every device (the CPU, and the
GPU through lavapipe) both the fast path the device picks and the reference itself must
match them: forward outputs, the gradient of every floating input (differentiable
kernels), and the updated state (optimizer updates). A new kernel is covered by adding
its registry entry with samples; nothing here needs to change.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine import Tensor, backends, fused, no_grad
from engine.backends.base import CORE, Backend
from engine.backends.cpu import CpuBackend
from engine.backends.gpu import GpuBackend
from engine.fused import FusedUpdate, kernels, reference_only
from tests.gpu_helpers import gpu_backend_or_skip

CASES = [(name, i) for name, k in sorted(kernels().items())
         for i in range(len(k.samples(np.random.default_rng(0))))]


@pytest.fixture(params=["cpu", pytest.param("gpu", marks=pytest.mark.gpu)])
def device(request):
    if request.param == "gpu":
        gpu_backend_or_skip()
    return request.param


def _tensors(kernel, sample, device: str, dtype) -> list:
    out = []
    for a in sample.args:
        if isinstance(a, np.ndarray):
            float_arg = a.dtype.kind == "f"
            grad = float_arg and sample.grad and not isinstance(kernel, FusedUpdate)
            out.append(Tensor(a.astype(dtype) if float_arg else a, device=device,
                              dtype=dtype if float_arg else None, requires_grad=grad))
        else:
            out.append(a)
    return out


def _run(kernel, sample, device: str, dtype=np.float32) -> list[np.ndarray]:
    """The kernel's outputs (or updated arguments) and input gradients, as host arrays."""
    args = _tensors(kernel, sample, device, dtype)
    if isinstance(kernel, FusedUpdate):
        kernel(*args, **sample.params)
        return [t.numpy() for t in args if isinstance(t, Tensor)]
    out = kernel(*args, **sample.params)
    outs = list(out) if isinstance(out, tuple) else [out]
    diff = outs[:len(outs) - kernel.stats]
    rng = np.random.default_rng(7)
    if sample.grad and any(t.requires_grad for t in args if isinstance(t, Tensor)):
        loss = None
        for o in diff:
            w = Tensor(rng.standard_normal(o.shape), device=device, dtype=dtype)
            term = (o * w).sum()
            loss = term if loss is None else loss + term
        loss.backward()
    grads = [t.grad.numpy() for t in args if isinstance(t, Tensor) and t.requires_grad]
    return [o.numpy() for o in outs] + grads


def _compare(got: list[np.ndarray], want: list[np.ndarray], sample, what: str) -> None:
    assert len(got) == len(want), what
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.shape == w.shape, f"{what}: result {i} has shape {g.shape}, want {w.shape}"
        scale = max(1.0, float(np.abs(w).max(initial=0.0)))
        np.testing.assert_allclose(g, w, rtol=sample.rtol, atol=sample.atol * scale,
                                   err_msg=f"{what}: result {i}")


@pytest.mark.parametrize("name,i", CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_fast_path_and_reference_match(device, name, i):
    kernel = kernels()[name]
    sample = kernel.samples(np.random.default_rng(0))[i]
    with reference_only():
        want = _run(kernel, sample, "cpu", np.float64)
    with reference_only(name):
        _compare(_run(kernel, sample, device), want, sample, f"{name} reference on {device}")
    if kernel.fast_paths(backends.get(device)):
        _compare(_run(kernel, sample, device), want, sample, f"{name} fast path on {device}")
    if not isinstance(kernel, FusedUpdate):  # inference fast paths (no argmax, no patches)
        with no_grad():
            out = kernel(*_tensors(kernel, sample, device, np.float32), **sample.params)
        outs = list(out) if isinstance(out, tuple) else [out]
        _compare([o.numpy() for o in outs], want[:len(outs)], sample,
                 f"{name} under no_grad on {device}")


def test_every_fast_path_is_implemented_by_a_backend():
    """A misspelt backend method in `@kernel.fast(...)` would silently disable it."""
    for name, kernel in kernels().items():
        assert kernel.samples is not None, f"{name} has no samples for this test"
        for fp in kernel._fast:
            assert any(fp in kernel.fast_paths(object.__new__(b))
                       for b in (CpuBackend, GpuBackend)), f"{name}: no backend has {fp.needs}"
    cpu = backends.get("cpu")
    assert {n for n, k in kernels().items() if k.fast_paths(cpu)} == set(kernels())


def test_core_protocol_is_twenty_primitives():
    declared = {n for n in vars(Backend) if not n.startswith("_") and n != "describe"}
    assert declared == set(CORE) and len(CORE) == 20
    for cls in (CpuBackend, GpuBackend):
        assert all(callable(getattr(cls, n, None)) for n in CORE), cls


def test_kernel_names_are_unique_and_traced_once():
    from engine.autograd import trace

    with pytest.raises(ValueError, match="already registered"):
        fused.FusedKernel("conv2d", lambda x: x)
    x = Tensor(np.ones((1, 1, 4, 4), np.float32))
    w = Tensor(np.ones((2, 1, 3, 3), np.float32))
    for ctx in (reference_only, lambda: reference_only("no such kernel")):
        with trace() as tr, ctx():
            fused.conv2d(x, w, None, stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1)
        assert [r[0] for r in tr.records] == [fused.conv2d]


@pytest.fixture
def scale_kernel():
    """A kernel registered by the test (and removed again): x * k, with a CPU-only fast
    path that declines k == 0 and counts its calls."""
    from engine.fused import registry

    calls = []

    def scale_ref(x, k=1.0):
        return x * k

    kernel = fused.FusedKernel("test_scale", scale_ref)

    @kernel.fast(on=CpuBackend, supports=lambda x, k=1.0: k != 0)
    class _Scale(registry.Function):
        def forward(self, x, k=1.0):
            calls.append(k)
            self.k = k
            return self.b.binary("mul", x, k)

        def backward(self, g):
            return self.b.binary("mul", g, self.k)

    yield kernel, calls
    del registry._REGISTRY["test_scale"]


def test_a_fast_path_is_picked_by_backend_class_and_inputs(scale_kernel):
    from tests.test_core_backend import CoreOnly

    kernel, calls = scale_kernel
    x = Tensor(np.arange(3.0), requires_grad=True)
    kernel(x, k=2.0).sum().backward()
    assert calls == [2.0]
    np.testing.assert_array_equal(x.grad.numpy(), [2, 2, 2])
    kernel(x, k=0.0)  # declined by `supports`: the reference runs
    with reference_only("test_scale"):
        kernel(x, k=3.0)
    assert calls == [2.0]
    with backends.override("gpu", CoreOnly()):  # not a CpuBackend: the reference
        np.testing.assert_array_equal(kernel(Tensor(np.ones(2), device="gpu"), k=4.0).numpy(),
                                      [4, 4])
    assert calls == [2.0] and kernel.fast_paths(CoreOnly()) == ()

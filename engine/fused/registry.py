"""The fused-kernel registry: an op's reference in Tensor ops beside its fast paths.

A `FusedKernel` is one op that is not a core primitive (conv, pooling, batch norm,
softmax, ...). It has

- a **reference**: a plain function of Tensors written with Tensor ops, so it runs on
  every device and autograd differentiates it for free;
- any number of **fast paths**: `Function` subclasses (forward and backward on backend
  arrays) registered with `@kernel.fast("method", ...)`, naming the backend methods (tier
  two of the backend, e.g. `conv2d`, `conv2d_grad_input`) they call. A backend whose class
  implements all of them gets that fast path; any other backend (a new device) runs the
  reference. `on=SomeBackend` restricts a fast path to instances of that backend class
  (then it may call plain functions of `self.b`, e.g. a new `engine/backends/gpu/NAME.py`
  module, instead of methods). The first registered fast path that fits wins.
- **samples**: small inputs on which `tests/test_fused.py` compares every fast path with
  the reference on every device, forward and backward.

Calling the kernel (`conv2d(x, w, stride=(1, 1), ...)`, or `.apply(...)` as for a
Function) picks the implementation by the tensors' backend; either way the ONNX tracer
(`autograd.trace`) records the kernel once, as one op. `FusedUpdate` is the same for
in-place optimizer updates: the reference mutates Tensors with `assign_`, a fast path is
a function of the backend, the raw arrays and the parameters.

    def _scale_ref(x, *, k):                    # reference: Tensor ops only
        return x * k

    scale = FusedKernel("scale", _scale_ref, samples=lambda rng: [
        Sample((rng.standard_normal((3, 4), dtype=np.float32),), {"k": 2.0})])

    @scale.fast("scale")                        # backends with a `scale` method
    class _Scale(Function):
        def forward(self, x, k=1.0):
            self.k = k
            return self.b.scale(x, k)

        def backward(self, g):
            return self.b.scale(g, self.k)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from .. import tensor as T
from ..autograd import Function, as_one_op, is_grad_enabled, no_grad
from ..autograd import _state as _tape  # read where the tracer is, on the hot path

_REGISTRY: dict[str, FusedKernel] = {}
_local = threading.local()


@dataclass
class Sample:
    """One parity-test case: positional `args` (NumPy arrays become Tensors; float arrays
    get gradients when `grad`), keyword `params`, and the tolerances of the comparison."""

    args: tuple
    params: dict[str, Any] = field(default_factory=dict)
    rtol: float = 1e-4
    atol: float = 1e-5
    grad: bool = True


class FastPath(NamedTuple):
    impl: Any  # a Function subclass (FusedKernel) or a function (FusedUpdate)
    needs: tuple[str, ...]  # backend methods it calls
    on: type | tuple[type, ...] | None  # only backends of this class (None: any)
    supports: Callable[..., bool] | None  # (*args, **params) -> usable for these inputs?


class FusedKernel:
    """A differentiable op with a Tensor-op reference and optional fast paths.

    `stats` trailing outputs are statistics returned without gradient (batch norm's mean
    and inverse std); a fast path's Function declares the same with `grad_outputs`.
    `transparent`: a trace records the reference's ops instead of the kernel (a pure
    speed-up with no ONNX node of its own, e.g. `linear`)."""

    def __init__(self, name: str, reference: Callable[..., Any], *,
                 samples: Callable[[np.random.Generator], list[Sample]] | None = None,
                 stats: int = 0, transparent: bool = False) -> None:
        if name in _REGISTRY:
            raise ValueError(f"a fused kernel named {name!r} is already registered")
        self.name = self.__name__ = name
        self.reference = reference
        self.samples = samples
        self.stats = stats
        self.transparent = transparent
        self.__doc__ = reference.__doc__
        self._fast: list[FastPath] = []
        self._chosen: dict[type, tuple[FastPath, ...]] = {}
        _REGISTRY[name] = self

    def __repr__(self) -> str:
        return f"<fused kernel {self.name}: {len(self._fast)} fast path(s)>"

    # -- registration --------------------------------------------------------------------
    def fast(self, *needs: str, on: type | tuple[type, ...] | None = None,
             supports: Callable[..., bool] | None = None) -> Callable[[Any], Any]:
        """Decorator: register a fast path for backends whose class implements the methods
        `needs` (and is a subclass of `on`, when given); `supports(*args, **params)` may
        decline particular inputs (then the next fast path, or the reference, runs)."""
        def register(impl: Any) -> Any:
            self._fast.append(FastPath(impl, tuple(needs), on, supports))
            self._chosen.clear()
            return impl
        return register

    def fast_paths(self, backend: Any) -> tuple[FastPath, ...]:
        """The fast paths that fit `backend`'s class (its methods, and `on`)."""
        typ = type(backend)
        hit = self._chosen.get(typ)
        if hit is None:
            hit = self._chosen[typ] = tuple(
                fp for fp in self._fast if (fp.on is None or issubclass(typ, fp.on))
                and all(callable(getattr(typ, n, None)) for n in fp.needs))
        return hit

    def _pick(self, backend: Any, args: tuple, params: dict) -> FastPath | None:
        forced = getattr(_local, "reference", None)
        if forced is not None and (not forced or self.name in forced):
            return None
        fast = self._chosen.get(type(backend))
        for fp in fast if fast is not None else self.fast_paths(backend):
            if fp.supports is None or fp.supports(*args, **params):
                return fp
        return None

    # -- calling -------------------------------------------------------------------------
    def __call__(self, *args: Any, **params: Any) -> Any:
        fp = self._pick(_backend_of(self.name, args), args, params)
        if fp is not None and getattr(_tape, "tracer", None) is None:
            return fp.impl.apply(*args, **params)  # the hot path: one call, nothing traced
        if self.transparent:
            return self._reference_call(*args, **params)
        return as_one_op(self, self._reference_call if fp is None else fp.impl.apply, args,
                         params)

    apply = __call__  # the Function spelling: functions.Conv2d.apply(x, w, ...) still works

    def _reference_call(self, *args: Any, **params: Any) -> Any:
        out = self.reference(*args, **params)
        if self.stats:
            out = (*out[:-self.stats], *(t.detach() for t in out[-self.stats:]))
        return out


class FusedUpdate(FusedKernel):
    """An in-place update (an optimizer step) with a Tensor-op reference (writing with
    `Tensor.assign_`) and fast paths `fn(backend, arrays, params)` (the arguments as raw
    arrays, the keyword parameters as a dict). Runs under no_grad and returns None."""

    def __call__(self, *args: Any, **params: Any) -> None:
        backend = _backend_of(self.name, args)
        fp = self._pick(backend, args, params)
        if fp is not None:  # on raw arrays: nothing is recorded
            fp.impl(backend, [a.data if isinstance(a, T.Tensor) else a for a in args], params)
        elif is_grad_enabled():
            with no_grad():
                self.reference(*args, **params)
        else:
            self.reference(*args, **params)

    apply = __call__


def _backend_of(name: str, args: tuple) -> Any:
    for a in args:
        if isinstance(a, T.Tensor):
            return a.backend
    raise TypeError(f"{name}: expected at least one Tensor argument")


def kernels() -> dict[str, FusedKernel]:
    """Every registered fused kernel by name."""
    return dict(_REGISTRY)


@contextlib.contextmanager
def reference_only(*names: str) -> Iterator[None]:
    """Run the named kernels (all, when none is named) through their references on this
    thread: to test a fast path against its reference, or to time the difference."""
    prev = getattr(_local, "reference", None)
    _local.reference = frozenset(names)
    try:
        yield
    finally:
        _local.reference = prev


__all__ = ["FusedKernel", "FusedUpdate", "FastPath", "Function", "Sample", "kernels",
           "reference_only"]

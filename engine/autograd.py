"""Reverse-mode autograd: `Function` records itself on the tape, `backward` walks it.

A Function's `forward` and `backward` work on backend arrays (never Tensors), so the
backward pass itself is not recorded and runs on whatever device the tensors live on.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backends.base import Backend
    from .tensor import Tensor

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "enabled", True)


class _GradMode(contextlib.ContextDecorator):
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def _recreate_cm(self) -> _GradMode:  # a fresh object per decorated call: re-entrant
        return _GradMode(self.enabled)

    def __enter__(self) -> None:
        self.prev = is_grad_enabled()
        _state.enabled = self.enabled

    def __exit__(self, *exc: Any) -> None:
        _state.enabled = self.prev


class trace(contextlib.ContextDecorator):
    """Record every Function applied inside: (function class, args, kwargs, output).

    Args are the Tensors and constants as passed; this is how ONNX export captures a
    model's graph without a second definition of each op.
    """

    def __init__(self) -> None:
        self.records: list[tuple[type[Function], tuple, dict, Tensor]] = []

    def __enter__(self) -> trace:
        self.prev = getattr(_state, "tracer", None)
        _state.tracer = self
        return self

    def __exit__(self, *exc: Any) -> None:
        _state.tracer = self.prev


def no_grad() -> _GradMode:
    """Context manager / decorator: operations inside record nothing on the tape."""
    return _GradMode(False)


def enable_grad() -> _GradMode:
    return _GradMode(True)


class Function:
    """One differentiable op. Subclasses define `forward(*arrays, **params)` and
    `backward(grad)` returning one gradient per Tensor argument (None where not needed).
    `self.needs[i]` says whether the i-th Tensor argument wants a gradient."""

    b: Backend
    needs: tuple[bool, ...]
    parents: tuple[Tensor, ...] = ()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def backward(self, grad: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Tensor:
        return cls.apply_ctx(*args, **kwargs)[0]

    @classmethod
    def apply_ctx(cls, *args: Any, **kwargs: Any) -> tuple[Tensor, Function]:
        """Like apply, also returning the Function (for ops with side outputs)."""
        from .tensor import Tensor

        tensors = [a for a in args if isinstance(a, Tensor)]
        device = tensors[0].device
        for t in tensors[1:]:
            if t.device != device:
                raise ValueError(
                    f"{cls.__name__.lower()}: tensors are on different devices "
                    f"({device} and {t.device}); move them with .to(device) first")
        ctx = cls()
        ctx.b = tensors[0].backend
        ctx.needs = tuple(t.requires_grad for t in tensors)
        raw = [a.data if isinstance(a, Tensor) else a for a in args]
        out = ctx.forward(*raw, **kwargs)
        requires = is_grad_enabled() and any(ctx.needs)
        result = Tensor._wrap(out, device, requires)
        if requires:
            ctx.parents = tuple(tensors)
            result._ctx = ctx
        tracer = getattr(_state, "tracer", None)
        if tracer is not None:
            tracer.records.append((cls, args, kwargs, result))
        return result, ctx


def _topo(root: Tensor) -> list[Tensor]:
    """Tensors reachable from root, each after all tensors computed from it (iterative)."""
    order: list[Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, Iterator[Tensor]]] = [(root, iter(_parents(root)))]
    seen.add(id(root))
    while stack:
        node, it = stack[-1]
        for p in it:
            if id(p) not in seen and p.requires_grad:
                seen.add(id(p))
                stack.append((p, iter(_parents(p))))
                break
        else:
            stack.pop()
            order.append(node)
    order.reverse()
    return order


def _parents(t: Tensor) -> tuple[Tensor, ...]:
    return t._ctx.parents if t._ctx is not None else ()


def backward(root: Tensor, grad: Any, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) into every leaf's `.grad`."""
    from .tensor import Tensor

    grads: dict[int, Any] = {id(root): grad}
    b = root.backend
    for node in _topo(root):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        ctx = node._ctx
        if ctx is None:  # a leaf
            if node.grad is None:
                node.grad = Tensor._wrap(g, node.device, False)
            else:
                node.grad = Tensor._wrap(b.binary("add", node.grad.data, g), node.device, False)
            continue
        pgrads = ctx.backward(g)
        if not isinstance(pgrads, tuple):
            pgrads = (pgrads,)
        for p, pg, need in zip(ctx.parents, pgrads, ctx.needs):
            if not need or pg is None:
                continue
            if tuple(pg.shape) != p.shape:
                raise RuntimeError(f"internal: {type(ctx).__name__}.backward returned grad of "
                                   f"shape {tuple(pg.shape)} for input of shape {p.shape}")
            prev = grads.get(id(p))
            grads[id(p)] = pg if prev is None else b.binary("add", prev, pg)
        if not retain_graph:
            node._ctx = None


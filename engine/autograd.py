"""Reverse-mode autograd: `Function` records itself on the tape, `backward` walks it.

A Function's `forward` and `backward` work on backend arrays (never Tensors), so the
backward pass itself is not recorded and runs on whatever device the tensors live on.
A Function may return several arrays (a tuple); each becomes a Tensor, and `backward`
then receives one gradient per differentiable output (zeros for an unused one).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
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
    model's graph without a second definition of each op. A fused kernel
    (`engine.fused`) records itself once, whichever implementation ran. `host_reads`
    counts values read to the host meanwhile (`Tensor.numpy`): a forward that may branch
    on them is not one fixed graph (engine.plan will not replay it).
    """

    def __init__(self) -> None:
        self.records: list[tuple[Any, tuple, dict, Any]] = []
        self.host_reads = 0

    def __enter__(self) -> trace:
        self.prev = getattr(_state, "tracer", None)
        _state.tracer = self
        return self

    def __exit__(self, *exc: Any) -> None:
        _state.tracer = self.prev


def as_one_op(op: Any, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """fn(*args, **kwargs), recorded by an active `trace` as the single op `op` (a fused
    kernel records itself, not the ops it is built from)."""
    tracer = getattr(_state, "tracer", None)
    if tracer is None:
        return fn(*args, **kwargs)
    _state.tracer = None
    try:
        out = fn(*args, **kwargs)
    finally:
        _state.tracer = tracer
    tracer.records.append((op, args, kwargs, out))
    return out


def no_grad() -> _GradMode:
    """Context manager / decorator: operations inside record nothing on the tape."""
    return _GradMode(False)


def enable_grad() -> _GradMode:
    return _GradMode(True)


class Function:
    """One differentiable op. Subclasses define `forward(*arrays, **params)` and
    `backward(*grads)` returning one gradient per Tensor argument (None where not needed).
    `self.needs[i]` says whether the i-th Tensor argument wants a gradient.

    `forward` returns one array, or a tuple of arrays; then the first `grad_outputs` of
    them (all, by default) are differentiable and `backward` gets one gradient for each,
    the rest (statistics such as batch norm's mean) come back without gradient."""

    b: Backend
    needs: tuple[bool, ...]
    parents: tuple[Tensor, ...] = ()
    grad_outputs: int | None = None  # None: every output is differentiable
    freed = False  # set once backward() has used (and dropped) the saved arrays
    _outs: tuple[tuple[tuple[int, ...], Any], ...] = ()  # (shape, dtype) of multi outputs

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def backward(self, *grads: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        """Run the op on Tensors; returns a Tensor (a tuple of them for several outputs).

        This runs once per op, so it is written for speed (measured: a third of LeNet-5's
        single-image inference was here): the Tensor class and the backends' table are
        looked up once per process, and the grad/tracer state once per call."""
        tensor_cls = _Tensor or _load_tensor()
        tensors = [a for a in args if isinstance(a, tensor_cls)]
        device = tensors[0].device
        for t in tensors[1:]:
            if t.device != device:
                raise ValueError(
                    f"{cls.__name__.lower()}: tensors are on different devices "
                    f"({device} and {t.device}); move them with .to(device) first")
        ctx = cls()
        ctx.b = _backend(device)
        ctx.needs = needs = tuple([t.requires_grad for t in tensors])
        out = ctx.forward(*[a.data if isinstance(a, tensor_cls) else a for a in args],
                          **kwargs)
        requires = True in needs and getattr(_state, "enabled", True)
        wrap = tensor_cls._wrap
        if isinstance(out, tuple):
            n_grad = len(out) if cls.grad_outputs is None else cls.grad_outputs
            result: Any = tuple(wrap(o, device, requires and i < n_grad)
                                for i, o in enumerate(out))
            if requires:
                ctx._outs = tuple((tuple(o.shape), o.dtype) for o in out[:n_grad])
                for i, t in enumerate(result[:n_grad]):
                    t._ctx, t._out = ctx, i
        else:
            result = wrap(out, device, requires)
            if requires:
                result._ctx = ctx
        if requires:
            ctx.parents = tuple(tensors)
        tracer = getattr(_state, "tracer", None)
        if tracer is not None:
            tracer.records.append((cls, args, kwargs, result))
        return result


_Tensor: Any = None  # engine.tensor.Tensor, once loaded (it imports this module)


def _load_tensor() -> Any:
    global _Tensor
    from .tensor import Tensor

    _Tensor = Tensor
    return Tensor


def _backend(device: str) -> Backend:
    """backends.get, bound here on first use (engine.backends imports this module)."""
    global _backend
    from .backends import get

    _backend = get
    return get(device)


def _topo(root: Function) -> list[Function]:
    """Functions reachable from root, each before every Function that produced one of
    its inputs (iterative depth-first search)."""
    order: list[Function] = []
    seen: set[int] = {id(root)}
    stack: list[tuple[Function, Iterator[Tensor]]] = [(root, iter(root.parents))]
    while stack:
        fn, it = stack[-1]
        for p in it:
            ctx = p._ctx
            if ctx is not None and p.requires_grad and id(ctx) not in seen:
                seen.add(id(ctx))
                stack.append((ctx, iter(ctx.parents)))
                break
        else:
            stack.pop()
            order.append(fn)
    order.reverse()
    return order


def backward(root: Tensor, grad: Any, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) into every leaf's `.grad`.

    A non-leaf's gradient is collected under its Function's id (a single output, nearly
    every op) or (id, output index)."""
    from .tensor import Tensor

    b = root.backend
    leaves: dict[int, tuple[Tensor, Any]] = {}  # summed here, added to .grad at the end
    grads: dict[Any, Any] = {}
    if root._ctx is None:
        leaves[id(root)] = (root, grad)
    else:
        grads[id(root._ctx) if not root._out else (id(root._ctx), root._out)] = grad
    for fn in _topo(root._ctx) if root._ctx is not None else ():
        if fn._outs:  # several outputs: one gradient each, zeros for an unused one
            gs = [grads.pop(id(fn) if not i else (id(fn), i), None)
                  for i in range(len(fn._outs))]
            if all(g is None for g in gs):
                continue
            gs = [b.full(shape, 0.0, dt) if g is None else g
                  for g, (shape, dt) in zip(gs, fn._outs)]
        else:
            g = grads.pop(id(fn), None)
            if g is None:
                continue
            gs = (g,)
        if fn.freed:
            raise RuntimeError(
                "backward() through a graph whose saved values were already freed by an "
                "earlier backward(); call the first one with retain_graph=True")
        pgrads = fn.backward(*gs)
        if type(pgrads) is not tuple:
            pgrads = (pgrads,)
        for p, pg, need in zip(fn.parents, pgrads, fn.needs):
            if not need or pg is None:
                continue
            if tuple(pg.shape) != p.shape:
                raise RuntimeError(f"internal: {type(fn).__name__}.backward returned grad of "
                                   f"shape {tuple(pg.shape)} for input of shape {p.shape}")
            ctx = p._ctx
            if ctx is None:
                prev = leaves.get(id(p))
                leaves[id(p)] = (p, pg if prev is None else b.binary("add", prev[1], pg))
                continue
            key = id(ctx) if not p._out else (id(ctx), p._out)
            prev = grads.get(key)
            grads[key] = pg if prev is None else b.binary("add", prev, pg)
        if not retain_graph:  # free the saved arrays now, not when the output dies
            fn.__dict__ = {"freed": True}
    for t, g in leaves.values():
        t.grad = Tensor._wrap(g if t.grad is None else b.binary("add", t.grad.data, g),
                              t.device, False)

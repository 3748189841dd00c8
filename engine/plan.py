"""Cached inference plans: a model's forward recorded once per input shape, then replayed.

Why. An eager forward pays Python for every op: the module calls, nn.functional's argument
checks, fused-kernel dispatch, `Function.apply`'s device checks and a Tensor wrapper per
output. On LeNet-5 with one image that is most of the time (the NumPy kernels themselves
take well under half). For a fixed model in eval mode none of it changes between calls
with the same input shape, so `compile(model)` records the forward once (`autograd.trace`,
the ONNX exporter's recorder) and replays the recorded ops directly on backend arrays:
per op one `forward` of the very Function (or fused fast path) the eager call chose, with
the very same arguments, so the result is identical to the eager one, bit for bit.

When it replays, and when it simply calls the model:
- replays only in eval mode (every submodule), under `no_grad`, with no forward hooks;
  anything else (training, a graph for backward, hooks that must see each layer) runs
  the model as usual;
- one plan per (input shape, dtype, device); parameters and buffers are read at each call,
  so `load_state_dict`, `copy_` and optimizer steps are seen by the plan (a model moved to
  another device or dtype since runs eagerly, and raises or records anew as it would);
- a submodule, parameter or buffer replaced by another object (`model.fc = nn.Linear(..)`)
  drops the model's plans: they were recorded with the old objects;
- a forward that the recording cannot capture is never replayed: one that reads values to
  the host (`.numpy()`, `.item()`, `if tensor:` -- it may branch on them), passes a Tensor
  inside a list, or builds a Tensor outside the recorded ops from the input (`detach`,
  `argmax`). The last is caught by a check at recording time: the plan is replayed on a
  second input and must match the eager forward exactly; else that shape runs eagerly.

    plan = engine.compile(model.eval())
    with engine.no_grad():
        logits = plan(x)          # == model(x), bit for bit; ~3x less overhead per op
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from . import autograd
from .autograd import Function, _state
from .backends import get as _backend
from .fused.registry import FusedKernel
from .nn.module import Module
from .tensor import Tensor


class _Slot:
    """A recorded value: the plan's input (slot 0) or an earlier op's output."""

    __slots__ = ("i",)

    def __init__(self, i: int) -> None:
        self.i = i


class _Unplannable(Exception):
    """The forward did something a replay could not repeat (the reason is the message)."""


class Plan:
    """One recorded forward: a list of (Function class, args, kwargs, output slots), replayed
    on raw arrays. Built by `CompiledModel`; call `run(array)` for the output arrays."""

    def __init__(self, model: Any, x: Tensor) -> None:
        self.device = x.device
        self.backend = _backend(x.device)
        rec = autograd.trace()
        with autograd.no_grad():  # also while building: fast paths are picked as they ran
            with rec:
                out = model(x)
            if rec.host_reads:
                raise _Unplannable("the forward reads tensor values to the host")
            self._build(rec.records, x, out)

    def _build(self, records: list, x: Tensor, out: Any) -> None:
        slots: dict[int, int] = {id(x): 0, id(x.data): 0}  # by Tensor and by array
        size, steps = 1, []
        for op, args, kwargs, result in records:
            fn = self._function(op, args, kwargs)
            if any(isinstance(v, Tensor) for v in kwargs.values()):
                raise _Unplannable(f"{op!r} got a Tensor as a keyword argument")
            spec = tuple(self._encode(a, slots) for a in args)
            kw = {k: self._encode(v, slots) for k, v in kwargs.items()}
            dynamic = any(type(v) is _Slot for v in kw.values())
            outs = result if isinstance(result, tuple) else (result,)
            first, size = size, size + len(outs)
            for j, t in enumerate(outs):
                slots[id(t)] = slots[id(t.data)] = first + j
            steps.append((fn, isinstance(fn, FusedKernel), spec, kw, dynamic,
                          sum(isinstance(a, Tensor) for a in args), first, len(outs),
                          isinstance(result, tuple)))
        self.steps, self.size = steps, size
        # the parameters and buffers it reads, as recorded: a model moved to another
        # device or dtype since (`Module.to`) must not be replayed with the old kernels
        free = {id(a): a for st in steps for a in (*st[2], *st[3].values())
                if isinstance(a, Tensor)}
        self.reads = [(t, t.device, t.data.dtype, t.data.shape) for t in free.values()]
        self.single = not isinstance(out, tuple)
        outs = (out,) if self.single else out
        if not all(isinstance(t, Tensor) and id(t) in slots for t in outs):
            raise _Unplannable("the output is not a recorded op's tensor")
        self.outputs = [slots[id(t)] for t in outs]

    @staticmethod
    def _function(op: Any, args: tuple, kwargs: dict) -> Any:
        """The Function class the eager call ran: a fused kernel's chosen fast path, or
        the kernel itself when its reference ran (replayed on Tensors, see `run`)."""
        if isinstance(op, FusedKernel):
            fp = op._pick(next(a for a in args if isinstance(a, Tensor)).backend, args, kwargs)
            return op if fp is None else fp.impl
        if isinstance(op, type) and issubclass(op, Function):
            return op
        raise _Unplannable(f"cannot replay the recorded op {op!r}")

    @staticmethod
    def _encode(a: Any, slots: dict[int, int]) -> Any:
        if isinstance(a, Tensor):  # a recorded value, or a parameter/buffer read at run time
            i = slots.get(id(a))
            return a if i is None else _Slot(i)
        if isinstance(a, (list, tuple)) and any(isinstance(v, Tensor) for v in a):
            raise _Unplannable("an op got Tensors inside a list")
        i = slots.get(id(a))  # a raw array that is a recorded tensor's data (where's mask)
        return _Slot(i) if i is not None and hasattr(a, "shape") else a

    def current(self) -> bool:
        """Whether every parameter and buffer is still where and what it was recorded."""
        return all(t.device == dev and t.data.dtype == dt and t.data.shape == shape
                   for t, dev, dt, shape in self.reads)

    def run(self, data: Any) -> list[Any]:
        """The output arrays for input array `data` (of the recorded shape and dtype)."""
        vals: list[Any] = [None] * self.size
        vals[0] = data
        b, dev = self.backend, self.device
        prev, _state.enabled = getattr(_state, "enabled", True), False  # what no_grad does
        try:
            for fn, reference, spec, kw, dynamic, n_tensors, first, n_out, multi in self.steps:
                args = [vals[a.i] if type(a) is _Slot else a.data if isinstance(a, Tensor)
                        else a for a in spec]
                if dynamic:
                    kw = {k: vals[v.i] if type(v) is _Slot else v for k, v in kw.items()}
                if reference:  # a fused kernel without a fast path here: on Tensors
                    ts = [Tensor._wrap(a, dev) if hasattr(a, "shape") else a for a in args]
                    out = fn._reference_call(*ts, **kw)
                    out = tuple(t.data for t in out) if multi else out.data
                else:
                    ctx = fn()
                    ctx.b, ctx.needs = b, (False,) * n_tensors
                    out = ctx.forward(*args, **kw)
                if multi:
                    vals[first: first + n_out] = out
                else:
                    vals[first] = out
        finally:
            _state.enabled = prev
        return [vals[i] for i in self.outputs]


def _parts(model: Any) -> list[Any]:
    """Every submodule (not the model itself, which keys the plans), parameter and buffer
    object the model has: its plans were recorded with these very objects."""
    mods = [m for _, m in model.named_modules()]
    return [*mods[1:], *model.parameters(), *model.buffers()]


class _Plans(dict):
    """A model's plans by input key, with the parts they were recorded with."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self._see(model)

    def _see(self, model: Any) -> None:
        self.parts, self.edits = _parts(model), Module.structure_edits
        # never the model itself: it keys the weak dictionary that holds this
        self.submodules = [p for p in self.parts if isinstance(p, Module)]

    def fresh(self, model: Any) -> bool:
        """False (and forgets every plan) when a part of the model was replaced since the
        plans were recorded -- `model.fc = nn.Linear(...)`, a new Parameter, a swapped
        activation: replaying would compute with the old objects. Checked only when some
        module's registrations changed since the last check, so a call costs O(1)."""
        if self.edits == Module.structure_edits:
            return True
        old = self.parts
        self._see(model)
        same = len(old) == len(self.parts) and all(a is b for a, b in zip(old, self.parts))
        if not same:
            self.clear()
        return same


class CompiledModel:
    """`model` with cached inference plans (see the module docstring): call it like the
    model; it replays a plan when it can and calls the model otherwise."""

    MAX_PLANS = 8  # input shapes recorded per model; further shapes run eagerly

    def __init__(self, model: Any) -> None:
        self.model = model
        # shared by every CompiledModel of this model, and dropped with it
        plans = _PLANS.get(model)
        if plans is None:
            plans = _PLANS[model] = _Plans(model)
        self.plans = plans

    def __repr__(self) -> str:
        return f"compiled({type(self.model).__name__}, {len(self.plans)} plan(s))"

    def _eager(self) -> bool:
        return (getattr(_state, "enabled", True) or getattr(_state, "tracer", None) is not None
                or any(m.training or m._forward_hooks
                       for m in (self.model, *self.plans.submodules)))

    def __call__(self, x: Any) -> Any:
        if not isinstance(x, Tensor) or not self.plans.fresh(self.model) or self._eager():
            return self.model(x)
        key = (x.data.shape, x.data.dtype, x.device)
        plan = self.plans.get(key, False)
        if plan is False:
            if len(self.plans) >= self.MAX_PLANS:
                return self.model(x)
            plan = self.plans[key] = self._build(x)
        if plan is None or not plan.current():
            return self.model(x)
        outs = [Tensor._wrap(o, plan.device) for o in plan.run(x.data)]
        return outs[0] if plan.single else tuple(outs)

    def _build(self, x: Tensor) -> Plan | None:
        """A plan checked on a second input against the eager forward, or None."""
        try:
            plan = Plan(self.model, x)
        except _Unplannable:
            return None
        host = x.numpy()
        if host.dtype.kind != "f":
            return plan  # no second input of the same kind to check with: trust the trace
        probe = Tensor((host * 0.5 + 0.25).astype(host.dtype), device=x.device)
        eager = self.model(probe)
        eager = (eager,) if plan.single else eager
        replayed = plan.run(probe.data)
        same = all(np.array_equal(e.numpy(), Tensor._wrap(r, plan.device).numpy(),
                                  equal_nan=True) for e, r in zip(eager, replayed))
        return plan if same else None


_PLANS: weakref.WeakKeyDictionary[Any, _Plans] = weakref.WeakKeyDictionary()


def compile(model: Any) -> CompiledModel:  # noqa: A001 - torch.compile's name, on purpose
    """The model with cached inference plans (kept with the model: every call for the same
    model shares them)."""
    return CompiledModel(model)


__all__ = ["CompiledModel", "Plan", "compile"]

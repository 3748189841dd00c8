"""Module: the base class of every layer and model, with PyTorch's registration rules.

Assigning a Parameter, a Module or a registered buffer to an attribute records it under
that name; `parameters()`, `state_dict()`, `to()` and friends walk those records, so a
model is just a class whose `__init__` assigns layers and whose `forward` uses them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple, overload

import numpy as np

from .. import backends
from ..autograd import no_grad
from ..tensor import _FLOATS, Tensor, _as_dtype, clear_grads
from .parameter import Parameter


class StateDictError(ValueError, RuntimeError):
    """A state dict does not fit the model (a ValueError here, a RuntimeError in torch)."""


class IncompatibleKeys(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]


class _HookHandle:
    def __init__(self, hooks: dict[int, Callable], key: int) -> None:
        self._hooks, self._key = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self._key, None)


class Module:
    """Base class for layers and models: subclass it, assign layers in `__init__` (after
    calling `super().__init__()`), and define `forward`. Call the module, not `forward`."""

    training: bool
    # Bumped by every (re)registration of a submodule, parameter or buffer in any module:
    # a cached inference plan (engine.plan) re-checks the model's parts only when it moved.
    structure_edits: int = 0

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())

    # -- registration --------------------------------------------------------------------
    def _registries(self) -> tuple[dict, dict, dict]:
        try:
            return self._parameters, self._buffers, self._modules
        except AttributeError:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() at the start "
                                 "of __init__, before assigning parameters or layers") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, (Parameter, Module)) or name in self.__dict__.get("_parameters", ()) \
                or name in self.__dict__.get("_buffers", ()) \
                or name in self.__dict__.get("_modules", ()):
            Module.structure_edits += 1
            params, buffers, modules = self._registries()
            if isinstance(value, Parameter):
                self._forget(name, keep=params)
                params[name] = value
            elif isinstance(value, Module):
                self._forget(name, keep=modules)
                modules[name] = value
            elif name in params:
                if value is not None:
                    raise TypeError(f"cannot assign a {type(value).__name__} to parameter "
                                    f"{name!r}: wrap it in nn.Parameter (or assign None)")
                params[name] = None
            elif name in buffers:
                if value is not None and not isinstance(value, Tensor):
                    raise TypeError(f"cannot assign a {type(value).__name__} to buffer "
                                    f"{name!r}: it must be a Tensor or None")
                buffers[name] = value
            elif name in modules:
                if value is not None:
                    raise TypeError(f"cannot assign a {type(value).__name__} to submodule "
                                    f"{name!r}: it must be a Module or None")
                modules[name] = None
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._forget(name)
        object.__delattr__(self, name)

    def _forget(self, name: str, keep: dict | None = None) -> None:
        """Unregister `name` everywhere except from `keep`, where the caller replaces it in
        place (a Sequential's layer keeps its position, as in PyTorch)."""
        Module.structure_edits += 1
        for reg in self._registries():
            if reg is not keep:
                reg.pop(name, None)
        self._non_persistent.discard(name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register `param` (or a None placeholder, e.g. a disabled bias) under `name`."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, got "
                            f"{type(param).__name__}")
        self._forget(name, keep=self._parameters)
        self._parameters[name] = param
        object.__setattr__(self, name, param)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """State that is not trained but saved and moved with the module (running stats).
        Non-persistent buffers move with `to()` but are left out of `state_dict()`."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: {name!r} must be a Tensor or None, got "
                            f"{type(tensor).__name__}")
        self._forget(name, keep=self._buffers)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)
        object.__setattr__(self, name, tensor)

    def add_module(self, name: str, module: Module | None) -> None:
        self._forget(name, keep=self._modules)
        self._modules[name] = module
        object.__setattr__(self, name, module)

    # -- traversal -----------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every submodule (each once), depth first, with dotted names."""
        seen: set[int] = set()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            name, mod = stack.pop()
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            yield name, mod
            kids = [(f"{name}.{k}" if name else k, m) for k, m in mod._modules.items()
                    if m is not None]
            stack.extend(reversed(kids))

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, registry: str, recurse: bool) -> Iterator[tuple[str, Tensor]]:
        seen: set[int] = set()
        mods = self.named_modules() if recurse else iter([("", self)])
        for prefix, mod in mods:
            for name, t in getattr(mod, registry).items():
                if t is None or id(t) in seen:
                    continue
                seen.add(id(t))
                yield (f"{prefix}.{name}" if prefix else name), t

    def named_parameters(self, recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) pairs; a parameter shared by two layers appears once."""
        return self._named_members("_parameters", recurse)  # type: ignore[return-value]

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse):
            yield p

    def named_buffers(self, recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse):
            yield b

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Total number of scalars in the parameters (only those requiring grad if asked)."""
        return sum(p.size for p in self.parameters()
                   if p.requires_grad or not trainable_only)

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call fn on every submodule, then on self (e.g. custom weight initialisation)."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # -- modes and gradients ---------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout active, batch norm uses and updates batch statistics)."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Inference mode: dropout is the identity, batch norm uses running statistics."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        clear_grads(self.parameters(), set_to_none)

    # -- devices and dtypes ------------------------------------------------------------------
    def to(self, device: str | None = None, dtype: Any = None) -> Module:
        """Move (and/or cast floating) parameters and buffers in place; returns self.

        The same Parameter objects are kept (`Tensor.set_` rebinds their storage), so an
        optimizer built before the move still holds them. Gradients move along.
        """
        dev = backends.resolve(device) if device is not None else None
        dt = _as_dtype(dtype) if dtype is not None else None
        if dt is not None and dt not in _FLOATS:
            raise TypeError(f"Module.to: dtype must be float32 or float64, got {dt}")
        for t in list(self.parameters()) + list(self.buffers()):
            _move(t, dev, dt)
            if t.grad is not None:
                _move(t.grad, dev, dt)
        return self

    def cpu(self) -> Module:
        return self.to("cpu")

    def float(self) -> Module:
        return self.to(dtype=np.float32)

    def double(self) -> Module:
        return self.to(dtype=np.float64)

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Host copies of every parameter and persistent buffer under PyTorch's names
        (`0.weight`, `features.1.running_mean`, ...). Copies, so later training does not
        change a saved state dict. A module used twice appears under both names, as in
        PyTorch."""
        return OrderedDict((k, np.array(t.numpy(), copy=True))
                           for k, t in self._state_tensors().items())

    def _state_tensors(self, prefix: str = "") -> OrderedDict[str, Tensor]:
        out: OrderedDict[str, Tensor] = OrderedDict()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:  # pre-order like named_modules, but without de-duplication
            prefix, mod = stack.pop()
            stack.extend(reversed([(f"{prefix}.{k}" if prefix else k, m)
                                   for k, m in mod._modules.items() if m is not None]))
            pre = f"{prefix}." if prefix else ""
            for name, p in mod._parameters.items():
                if p is not None:
                    out[pre + name] = p
            for name, b in mod._buffers.items():
                if b is not None and name not in mod._non_persistent:
                    out[pre + name] = b
        return out

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values (NumPy arrays, Tensors, or anything with `.numpy()` such as torch
        tensors) into the existing parameters and buffers, in place.

        Problems are collected first and reported together in one StateDictError: every
        missing key and unexpected key (only when strict) and every shape mismatch
        (always). Nothing is changed unless everything fits.
        """
        own = self._state_tensors()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        values: dict[str, np.ndarray] = {}
        mismatched = []
        for k, t in own.items():
            if k not in state:
                continue
            arr = _host(state[k])
            if arr.dtype.kind not in "fiub":
                mismatched.append(f"  {k}: checkpoint has unsupported dtype {arr.dtype}")
            elif tuple(arr.shape) != t.shape:
                mismatched.append(f"  {k}: checkpoint has shape {tuple(arr.shape)}, model has "
                                  f"{t.shape}")
            else:
                values[k] = arr
        problems = []
        if strict and missing:
            problems.append("missing keys (in the model, not in the state dict):\n" +
                            "\n".join(f"  {k}" for k in missing))
        if strict and unexpected:
            problems.append("unexpected keys (in the state dict, not in the model):\n" +
                            "\n".join(f"  {k}" for k in unexpected))
        if mismatched:
            problems.append("shape (or dtype) mismatches:\n" + "\n".join(mismatched))
        if problems:
            raise StateDictError(f"load_state_dict for {type(self).__name__} failed:\n" +
                                 "\n".join(problems))
        with no_grad():
            for k, arr in values.items():
                own[k].copy_(np.asarray(arr, dtype=own[k].dtype))
        return IncompatibleKeys(missing, unexpected)

    # -- calling -----------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.forward(*args, **kwargs)
        if not self._forward_hooks:  # the usual case: no list built per call
            return out
        for hook in list(self._forward_hooks.values()):
            res = hook(self, args, out)
            if res is not None:
                out = res
        return out

    def register_forward_hook(self, hook: Callable[[Module, tuple, Any], Any]) -> _HookHandle:
        """hook(module, inputs, output) runs after each forward (e.g. to show activations);
        returning a value replaces the output. `.remove()` the returned handle to stop."""
        key = max(self._forward_hooks, default=-1) + 1
        self._forward_hooks[key] = hook
        return _HookHandle(self._forward_hooks, key)

    # -- printing ----------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, m in self._modules.items():
            body = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        head = f"{type(self).__name__}(" + (f"\n  {extra}" if extra else "")
        return head + "\n" + "\n".join(lines) + "\n)"


def _move(t: Tensor, dev: str | None, dt: np.dtype | None) -> None:
    new_dt = dt if dt is not None and t.dtype in _FLOATS else None
    moved = t.to(dev, new_dt)
    if moved is not t:
        t.set_(moved)


def _host(v: Any) -> np.ndarray:
    if isinstance(v, Tensor):
        return v.numpy()
    if hasattr(v, "detach") and hasattr(v, "numpy"):  # a torch tensor
        return v.detach().cpu().numpy()
    return np.asarray(v)


class Sequential(Module):
    """Modules applied in order: `Sequential(conv, relu, pool)(x)`. Children are named
    "0", "1", ... (so state dict keys match PyTorch's `0.weight`), or by an OrderedDict."""

    def __init__(self, *modules: Module | OrderedDict[str, Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            for name, m in modules[0].items():
                self.add_module(name, _check_module(m, "Sequential"))
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), _check_module(m, "Sequential"))

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x

    @overload
    def __getitem__(self, i: int) -> Module: ...
    @overload
    def __getitem__(self, i: slice) -> Sequential: ...

    def __getitem__(self, i: int | slice) -> Module:
        items = list(self._modules.items())
        if isinstance(i, slice):
            return Sequential(OrderedDict(items[i]))
        try:
            return items[i][1]
        except IndexError:
            raise IndexError(f"Sequential index {i} out of range for {len(items)} "
                             "modules") from None

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self._modules)), _check_module(module, "Sequential"))
        return self


class ModuleList(Module):
    """A list of modules registered as children "0", "1", ... (no forward of its own)."""

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        super().__init__()
        self.extend(modules)

    def __getitem__(self, i: int | slice) -> Any:
        items = list(self._modules.values())
        if isinstance(i, slice):
            return ModuleList(items[i])
        return items[i]

    def __setitem__(self, i: int, module: Module) -> None:
        key = list(self._modules)[i]
        Module.structure_edits += 1
        self._modules[key] = _check_module(module, "ModuleList")
        object.__setattr__(self, key, module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self._modules)), _check_module(module, "ModuleList"))
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for m in modules:
            self.append(m)
        return self


def _check_module(m: Any, where: str) -> Module:
    if not isinstance(m, Module):
        raise TypeError(f"{where}: expected a Module, got {type(m).__name__}")
    return m

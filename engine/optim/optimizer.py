"""Optimizer base class: parameter groups, lazily created per-parameter state, state_dict.

Subclasses implement `_update(p, group, state)` with one call to a fused update kernel
(`engine.fused.sgd_step`, `adam_step`, ...): its reference is the update rule in Tensor
ops, and a backend with a fast path (NumPy in place, one WGSL dispatch) runs that instead,
so no parameter is read back to the host during training.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import backends
from ..autograd import no_grad
from ..creation import full_like
from ..tensor import Tensor, clear_grads

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]


def check_nonnegative(owner: str, **values: float) -> None:
    """The hyperparameter checks every optimizer makes, in the order given: a ValueError
    naming the first negative one ("lr" reads as "learning rate", as in torch)."""
    for name, value in values.items():
        if value < 0.0:
            label = "learning rate" if name == "lr" else name
            raise ValueError(f"{owner}: invalid {label} {value} (must be >= 0)")


class _Required:
    """Sentinel for a hyper-parameter that has no default (like torch's `required`)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required: Any = _Required()


class Optimizer:
    """Base class of all optimizers (PyTorch's API and semantics).

    `params` is an iterable of Tensors or of dicts (parameter groups) with a "params" key
    and per-group overrides of `defaults` (e.g. a smaller `lr` for a backbone).
    `state[p]` holds the per-parameter buffers as Tensors on `p`'s device (NumPy arrays
    only in `state_dict()`), created on the first `step()` that sees a gradient for `p`
    and moved (or re-created when the old device is gone) when `p` changes device, e.g.
    after `module.to("cpu")`.
    """

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of Tensors or dicts, not a single "
                            "Tensor: wrap it in a list, e.g. SGD([w], lr=0.1)")
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Tensor, dict[str, Any]] = {}
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list: did the model define "
                             "any parameters (model.parameters())?")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines + [")"])

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyper-parameters (e.g. fine-tuning)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"a parameter group must be a dict, not {type(param_group).__name__}")
        group = dict(param_group)
        ps = group.get("params")
        if ps is None:
            raise ValueError("a parameter group needs a 'params' entry")
        ps = [ps] if isinstance(ps, Tensor) else list(ps)
        for p in ps:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizers can only optimize Tensors, got {type(p).__name__}")
            if p.dtype.kind != "f":
                raise TypeError(f"optimizers can only optimize floating tensors, got a "
                                f"{p.dtype} tensor of shape {p.shape}")
        if len({id(p) for p in ps}) != len(ps):
            raise ValueError("a parameter group contains the same tensor more than once")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in ps):
            raise ValueError("some parameters appear in more than one parameter group")
        for key, default in self.defaults.items():
            if default is required and key not in group:
                raise ValueError(f"parameter group didn't specify a value of required "
                                 f"optimization parameter {key}")
            group.setdefault(key, default)
        group["params"] = ps
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear gradients (None frees memory; zeros keeps the buffers' shape)."""
        clear_grads((p for g in self.param_groups for p in g["params"]), set_to_none)

    # -- stepping --------------------------------------------------------------------------
    def step(self, closure: Any = None) -> float | None:
        """Update every parameter that has a gradient; `closure` re-evaluates the loss."""
        loss = None
        if closure is not None:
            from ..autograd import enable_grad

            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    if p.grad.device != p.device or p.grad.shape != p.shape:
                        raise RuntimeError(
                            f"{type(self).__name__}.step: gradient of a parameter of shape "
                            f"{p.shape} on {p.device} has shape {p.grad.shape} on "
                            f"{p.grad.device}; call zero_grad() after moving the model")
                    self._update(p, group, self._state_for(p))
        return loss

    def _update(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _init_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        """Fresh state for `p` (override to add buffers); "step" counts updates."""
        return {"step": 0}

    def _zeros(self, p: Tensor, value: float = 0.0) -> Tensor:
        return full_like(p, value)

    def _group_of(self, p: Tensor) -> dict[str, Any]:
        for g in self.param_groups:
            if any(q is p for q in g["params"]):
                return g
        raise KeyError("parameter is not managed by this optimizer")

    def _state_for(self, p: Tensor) -> dict[str, Any]:
        st = self.state.get(p)
        if st is None:
            st = self._init_state(p, self._group_of(p))
            st["_device"], st["_dtype"] = p.device, p.dtype
            self.state[p] = st
        elif st.get("_device") != p.device or st.get("_dtype") != p.dtype:
            st = self._move_state(p, st)
        return st

    def _move_state(self, p: Tensor, st: dict[str, Any]) -> dict[str, Any]:
        """Carry buffers over to p's new device; start afresh if the old one is gone."""
        try:
            backends.get(st.get("_device"))  # the old device must still be there
            moved = {k: v.to(p.device, p.dtype) if isinstance(v, Tensor) else v
                     for k, v in st.items()}
        except Exception:  # device lost: its buffers cannot be read back
            moved = self._init_state(p, self._group_of(p))
        moved["_device"], moved["_dtype"] = p.device, p.dtype
        self.state[p] = moved
        return moved

    # -- serialization ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """PyTorch layout: {"state": {index: {name: ndarray | number}}, "param_groups": [...]}.

        Parameters are referred to by their position across groups, buffers are NumPy
        arrays and numbers, so the result can be saved without pickle.
        """
        index: dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ids})
        state: dict[int, dict[str, Any]] = {}
        for g in self.param_groups:
            for p in g["params"]:
                st = self.state.get(p)
                if st is None:
                    continue
                state[index[id(p)]] = {k: (np.array(v.numpy()) if isinstance(v, Tensor) else v)
                                       for k, v in st.items() if not k.startswith("_")}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyper-parameters and buffers saved by `state_dict()` (same param layout)."""
        groups = state_dict.get("param_groups")
        if not isinstance(groups, list) or "state" not in state_dict:
            raise ValueError("not an optimizer state dict: expected keys 'state' and "
                             "'param_groups'")
        if len(groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(groups)} parameter groups, this "
                             f"optimizer has {len(self.param_groups)}")
        by_index: dict[int, Tensor] = {}
        for i, (saved, mine) in enumerate(zip(groups, self.param_groups, strict=True)):
            if len(saved["params"]) != len(mine["params"]):
                raise ValueError(f"parameter group {i}: loaded state has "
                                 f"{len(saved['params'])} parameters, this optimizer has "
                                 f"{len(mine['params'])}")
            for k, p in zip(saved["params"], mine["params"], strict=True):
                by_index[int(k)] = p
        new_state: dict[Tensor, dict[str, Any]] = {}
        for k, st in state_dict["state"].items():
            p = by_index.get(int(k))
            if p is None:
                raise ValueError(f"loaded state refers to parameter {k}, which no group has")
            out: dict[str, Any] = {"_device": p.device, "_dtype": p.dtype}
            for name, v in st.items():
                if name == "step":
                    out[name] = int(np.asarray(v))
                elif _is_array(v):
                    v = np.asarray(v)
                    if v.shape != p.shape:
                        raise ValueError(f"state {name!r} of parameter {k} has shape "
                                         f"{v.shape}, the parameter has shape {p.shape}")
                    out[name] = Tensor(v, device=p.device, dtype=p.dtype)
                else:
                    out[name] = v
            new_state[p] = out
        for saved, mine in zip(groups, self.param_groups, strict=True):
            for key, v in saved.items():
                if key != "params":
                    mine[key] = tuple(v) if key == "betas" else v
        self.state = new_state


def _is_array(v: Any) -> bool:
    return hasattr(v, "shape") and hasattr(v, "dtype") and not isinstance(v, (int, float))

"""Parameter: a Tensor that a Module registers as trainable when assigned as an attribute."""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor


class Parameter(Tensor):
    """A leaf Tensor that requires grad by default and is found by `Module.parameters()`."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True, device: str | None = None,
                 dtype: Any = None) -> None:
        super().__init__(data, requires_grad=requires_grad, device=device, dtype=dtype)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

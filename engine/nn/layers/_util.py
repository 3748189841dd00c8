"""Shared helpers for layer constructors."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..parameter import Parameter


def empty_parameter(shape: tuple[int, ...], device: str | None, dtype: Any) -> Parameter:
    """A zero-filled Parameter, to be overwritten by an initialiser from `nn.init`."""
    return Parameter(np.zeros(shape), device=device, dtype=dtype or np.float32)

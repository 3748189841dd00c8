"""GpuArray: the GPU backend's array handle (a shape and dtype over a pooled buffer)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .device import Device

F32, I32, BOOL = 0, 1, 2  # storage kinds as the shaders see them (see elementwise.wgsl)

_KIND = {np.dtype(np.float32): F32, np.dtype(np.int32): I32, np.dtype(np.int64): I32,
         np.dtype(bool): BOOL}
_STORAGE = {F32: np.float32, I32: np.int32, BOOL: np.uint32}


def logical_dtype(dtype: Any) -> np.dtype:
    """The dtype a GPU array reports. Every element is 32 bits on the GPU: float64 is
    computed as float32 (and reports float32); int64 is stored as int32 but keeps reporting
    int64, so labels and indices behave as on the CPU; bool is a u32 0/1."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return np.dtype(np.float32)
    if dt.kind in "iu":
        return np.dtype(np.int32) if dt == np.int32 else np.dtype(np.int64)
    if dt.kind == "b":
        return np.dtype(bool)
    raise TypeError(f"the GPU backend has no dtype {dt}: use float32, int32, int64 or bool")


def kind_of(dtype: Any) -> int:
    return _KIND[np.dtype(dtype)]


class Storage:
    """A pooled device buffer; returned to the pool when the last array using it dies."""

    __slots__ = ("device", "buffer", "capacity", "nbytes")

    def __init__(self, device: Device, nbytes: int) -> None:
        self.device = device
        self.nbytes = max(int(nbytes), 4)
        self.buffer, self.capacity = device.alloc(self.nbytes)

    def __del__(self) -> None:
        try:
            self.device.release(self.buffer, self.capacity)
        except Exception:  # interpreter shutdown
            pass

    @property
    def binding(self) -> tuple[Any, int]:
        """(buffer, size) for a bind group: the used bytes, 4-byte rounded."""
        return self.buffer, -(-self.nbytes // 4) * 4


class GpuArray:
    """A contiguous, row-major array on the GPU. Views (reshape) share `storage`."""

    __slots__ = ("storage", "shape", "dtype", "meta", "__weakref__")

    def __init__(self, storage: Storage, shape: tuple[int, ...], dtype: Any,
                 meta: Any = None) -> None:
        self.storage = storage
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.meta = meta  # kernel-specific side information (maxpool's window geometry)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def kind(self) -> int:
        return _KIND[self.dtype]

    @property
    def storage_dtype(self) -> type:
        return _STORAGE[self.kind]

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __repr__(self) -> str:
        return f"GpuArray(shape={self.shape}, dtype={self.dtype})"

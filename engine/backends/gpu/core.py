"""What every GPU kernel family builds on: the Device, array allocation, dispatch, transfer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .array import GpuArray, Storage, logical_dtype
from .device import Device, Kernel, Params
from .layout import host_array


class GpuCore:
    """Allocation, dispatch and host transfer; the kernel families are mixins over it."""

    name = "gpu"

    def __init__(self, device: Device | None = None) -> None:
        if device is None:
            from .native import NativeDevice
            device = NativeDevice()
        self.dev = device
        # bound where a kernel's operand is absent (a scalar, an unused optimizer state)
        self._dummies = [Storage(device, 16) for _ in range(3)]

    def describe(self) -> str:
        return self.dev.name

    @property
    def readbacks(self) -> int:
        """Number of GPU -> host reads so far (each `to_numpy` is one)."""
        return self.dev.readbacks

    def synchronize(self) -> None:
        """Wait until all recorded work has run on the GPU (for timing; not a readback)."""
        self.dev.wait()

    def _new(self, shape: Sequence[int], dtype: Any, meta: Any = None) -> GpuArray:
        shape = tuple(int(s) for s in shape)
        return GpuArray(Storage(self.dev, 4 * math.prod(shape)), shape, dtype, meta)

    def _run(self, shader: str, entry: str, bindings: str, params: Params,
             arrays: Sequence[GpuArray | Storage | None], groups: tuple[int, int, int],
             **constants: float | bool) -> None:
        bufs = []
        dummies = iter(self._dummies)
        for a in arrays:
            st = next(dummies) if a is None else a.storage if isinstance(a, GpuArray) else a
            bufs.append(st.binding)
        self.dev.dispatch(Kernel.make(shader, entry, bindings, **constants), params.bytes(),
                          bufs, groups)

    def _arr(self, a: Any) -> GpuArray:
        if isinstance(a, GpuArray):
            return a
        if isinstance(a, np.ndarray):
            return self.from_numpy(a)
        raise TypeError(f"expected a GPU array, got {type(a).__name__}; move data with "
                        "from_numpy first")

    def from_numpy(self, a: np.ndarray) -> GpuArray:
        a = np.asarray(a)
        dtype = logical_dtype(a.dtype)
        if dtype.kind in "iu" and a.size and a.dtype.itemsize > 4:
            lo, hi = int(a.min()), int(a.max())
            if lo < -2**31 or hi >= 2**31:
                raise OverflowError(f"integer values in [{lo}, {hi}] do not fit the GPU's "
                                    "32-bit integers")
        out = self._new(a.shape, dtype)
        if a.size:
            host = np.ascontiguousarray(a, dtype=out.storage_dtype)
            self.dev.write(out.storage.buffer, host.reshape(-1))
        return out

    def to_numpy(self, a: GpuArray) -> np.ndarray:
        return host_array(a, self.dev.read(a.storage.buffer, 4 * a.size) if a.size else b"")

    async def to_numpy_async(self, a: GpuArray) -> np.ndarray:
        """`to_numpy` that awaits the readback (in the browser it is a Promise)."""
        raw = await self.dev.read_async(a.storage.buffer, 4 * a.size) if a.size else b""
        return host_array(a, raw)

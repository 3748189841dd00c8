"""Device over wgpu-py (wgpu-native: Vulkan, Metal, DX12; Mesa lavapipe without a GPU)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .. import DeviceError
from .device import Device, Kernel, shader_source

_LOST_WORDS = ("lost", "destroyed", "device is invalid", "invalid device")


class NativeDevice(Device):
    """wgpu-py Device. Dispatches are recorded into one compute pass of one command encoder
    and submitted together: on `read`, or when the batch reaches `max_batch` dispatches or
    its uniform arena is full."""

    max_batch = 512  # dispatches per submit
    arena_size = 1 << 17  # bytes of uniform parameters per submit

    def __init__(self) -> None:
        super().__init__()
        if os.environ.get("DEMYSTIFY_NO_GPU", "") not in ("", "0"):
            raise DeviceError("DEMYSTIFY_NO_GPU is set: pretending there is no GPU adapter")
        if not os.environ.get("XDG_RUNTIME_DIR"):  # silences a Mesa warning on headless hosts
            os.environ["XDG_RUNTIME_DIR"] = tempfile.gettempdir()
        try:
            import wgpu
        except ImportError as exc:
            raise DeviceError(f"wgpu is not installed ({exc}); pip install 'demystify[gpu]'") \
                from exc
        self._wgpu = wgpu
        try:
            adapter = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
        except Exception as exc:  # wgpu raises rather than returning None on some hosts
            raise DeviceError(f"wgpu found no GPU adapter ({exc})") from exc
        if adapter is None:
            raise DeviceError("wgpu found no GPU adapter (no Vulkan/Metal/DX12 driver?)")
        info = adapter.info
        self.name = f"{info.get('device') or info.get('description')} ({info.get('backend_type')})"
        lim = adapter.limits
        # Kernels stay within WebGPU's default limits; only buffer sizes are raised.
        wanted = {k: lim[k] for k in ("max-buffer-size", "max-storage-buffer-binding-size")
                  if k in lim}
        self._dev = adapter.request_device_sync(required_limits=wanted)
        self.limits = dict(self._dev.limits)
        self.max_binding = int(self.limits.get("max-storage-buffer-binding-size", 1 << 27))
        self._ualign = int(self.limits.get("min-uniform-buffer-offset-alignment", 256))
        self._queue = self._dev.queue
        self._usage = (wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC
                       | wgpu.BufferUsage.COPY_DST)
        self._modules: dict[str, Any] = {}
        self._pipelines: dict[Kernel, tuple[Any, Any]] = {}
        self._arena = self._dev.create_buffer(
            size=self.arena_size, usage=wgpu.BufferUsage.UNIFORM | wgpu.BufferUsage.COPY_DST)
        self._staging: Any = None
        self._staging_size = 0
        self._lock = threading.RLock()
        self._lost: str | None = None
        self._fence: Any = None
        self._fence_src: Any = None
        self._reset_batch()

    # -- helpers ---------------------------------------------------------------------
    def _new_encoder(self) -> Any:
        return self._dev.create_command_encoder()

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        if self._lost:
            raise DeviceError(self._lost)
        try:
            yield
        except DeviceError:
            raise
        except Exception as exc:
            msg = str(exc)
            if any(w in msg.lower() for w in _LOST_WORDS):
                self._lost = (f"the GPU device was lost during {what} ({msg.strip()[:300]}); "
                              "its tensors are gone. Continue on device='cpu' from the last "
                              "saved weights.")
                self._reset_batch()
                raise DeviceError(self._lost) from exc
            raise

    def _pipeline(self, k: Kernel) -> tuple[Any, Any]:
        hit = self._pipelines.get(k)
        if hit is not None:
            return hit
        wgpu = self._wgpu
        mod = self._modules.get(k.shader)
        if mod is None:
            mod = self._dev.create_shader_module(label=k.shader, code=shader_source(k.shader))
            self._modules[k.shader] = mod
        entries = [{"binding": 0, "visibility": wgpu.ShaderStage.COMPUTE,
                    "buffer": {"type": wgpu.BufferBindingType.uniform}}]
        for i, kind in enumerate(k.bindings, start=1):
            t = (wgpu.BufferBindingType.storage if kind == "w"
                 else wgpu.BufferBindingType.read_only_storage)
            entries.append({"binding": i, "visibility": wgpu.ShaderStage.COMPUTE,
                            "buffer": {"type": t}})
        bgl = self._dev.create_bind_group_layout(entries=entries)
        layout = self._dev.create_pipeline_layout(bind_group_layouts=[bgl])
        stage = {"module": mod, "entry_point": k.entry, "constants": dict(k.constants)}
        pipe = self._dev.create_compute_pipeline(label=f"{k.shader}.{k.entry}", layout=layout,
                                                 compute=stage)
        self._pipelines[k] = (pipe, bgl)
        return pipe, bgl

    # -- the Device interface ----------------------------------------------------------
    def create_buffer(self, nbytes: int) -> Any:
        with self._guard("buffer allocation"):
            return self._dev.create_buffer(size=nbytes, usage=self._usage)

    def destroy_buffer(self, buf: Any) -> None:
        buf.destroy()

    def write(self, buf: Any, data: np.ndarray, offset: int = 0) -> None:
        with self._lock, self._guard("upload"):
            self._queue.write_buffer(buf, offset, np.ascontiguousarray(data))

    def dispatch(self, kernel: Kernel, params: bytes, buffers: Sequence[Any],
                 workgroups: tuple[int, int, int]) -> None:
        with self._lock, self._guard(f"{kernel.shader}.{kernel.entry}"):
            pipe, bgl = self._pipeline(kernel)
            entries = self._bind_entries(params, buffers)
            group = self._dev.create_bind_group(layout=bgl, entries=entries)
            if self._pass is None:
                self._pass = self._ensure_encoder().begin_compute_pass()
            self._pass.set_pipeline(pipe)
            self._pass.set_bind_group(0, group)
            self._pass.dispatch_workgroups(*workgroups)
            self._count += 1
            self.dispatches += 1

    def copy(self, src: Any, src_offset: int, dst: Any, dst_offset: int, nbytes: int) -> None:
        with self._lock, self._guard("copy"):
            self._end_pass()
            self._ensure_encoder().copy_buffer_to_buffer(src, src_offset, dst, dst_offset, nbytes)
            self._count += 1

    def flush(self) -> None:
        with self._lock, self._guard("submit"):
            if self._encoder is None:
                self._recycle()
                return
            self._end_pass()
            if self._params:
                self._queue.write_buffer(self._arena, 0, bytes(self._params))
            cmd = self._encoder.finish()
            self._reset_batch()
            self._queue.submit([cmd])
            self._recycle()

    def wait(self) -> None:
        # Mapping a buffer written by the last submission waits for all work before it
        # (queue.on_submitted_work_done_sync is broken in wgpu-py 0.32).
        with self._lock, self._guard("wait"):
            wgpu = self._wgpu
            if self._fence is None:
                self._fence = self._dev.create_buffer(
                    size=4, usage=wgpu.BufferUsage.MAP_READ | wgpu.BufferUsage.COPY_DST)
                self._fence_src = self._dev.create_buffer(size=4, usage=self._usage)
            self._end_pass()
            self._ensure_encoder().copy_buffer_to_buffer(self._fence_src, 0, self._fence, 0, 4)
            self.flush()
            self._fence.map_sync(wgpu.MapMode.READ, 0, 4)
            self._fence.unmap()

    def read(self, buf: Any, nbytes: int) -> bytes:
        nbytes = -(-nbytes // 4) * 4
        with self._lock, self._guard("readback"):
            if nbytes > self._staging_size:
                if self._staging is not None:
                    self._staging.destroy()
                self._staging_size = max(1 << (nbytes - 1).bit_length(), 4096)
                self._staging = self._dev.create_buffer(
                    size=self._staging_size,
                    usage=self._wgpu.BufferUsage.MAP_READ | self._wgpu.BufferUsage.COPY_DST)
            self._end_pass()
            self._ensure_encoder().copy_buffer_to_buffer(buf, 0, self._staging, 0, nbytes)
            self.flush()
            self._staging.map_sync(self._wgpu.MapMode.READ, 0, nbytes)
            try:
                data = bytes(self._staging.read_mapped(0, nbytes, copy=True))
            finally:
                self._staging.unmap()
            self.readbacks += 1
            return data

    def lose(self) -> None:
        """Destroy the device (tests use this to exercise the device-lost path)."""
        self._dev.destroy()

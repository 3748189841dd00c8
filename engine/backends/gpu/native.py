"""Device over wgpu-py (wgpu-native: Vulkan, Metal, DX12; Mesa lavapipe without a GPU).

Only what wgpu-py spells its own way lives here: the adapter, buffers, the encoder and
pass calls, and the blocking readback. Batching, the pipeline cache and lost-device
errors are the `Device` base's.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np

from .device import Device, DeviceError, Kernel, shader_source


class NativeDevice(Device):
    """wgpu-py Device. Dispatches are recorded into one compute pass of one command encoder
    and submitted together: on `read`, or when the batch reaches `max_batch` dispatches or
    its uniform arena is full."""

    def __init__(self) -> None:
        if os.environ.get("DEMYSTIFY_NO_GPU", "") not in ("", "0"):
            raise DeviceError("DEMYSTIFY_NO_GPU is set: pretending there is no GPU adapter")
        if not os.environ.get("XDG_RUNTIME_DIR"):  # silences a Mesa warning on headless hosts
            os.environ["XDG_RUNTIME_DIR"] = tempfile.gettempdir()
        try:
            import wgpu
        except ImportError as exc:
            raise DeviceError(f"wgpu is not installed ({exc}); pip install 'demystify[gpu]'") \
                from exc
        super().__init__()
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
        self._arena = self._dev.create_buffer(
            size=self.arena_size, usage=wgpu.BufferUsage.UNIFORM | wgpu.BufferUsage.COPY_DST)
        self._staging: Any = None
        self._staging_size = 0
        self._fence: Any = None
        self._fence_src: Any = None

    # -- hooks of the Device base ------------------------------------------------------
    def _new_encoder(self) -> Any:
        return self._dev.create_command_encoder()

    def _begin_pass(self, encoder: Any) -> Any:
        return encoder.begin_compute_pass()

    def _encode_dispatch(self, cpass: Any, pipeline: Any, group: Any,
                         workgroups: tuple[int, int, int]) -> None:
        cpass.set_pipeline(pipeline)
        cpass.set_bind_group(0, group)
        cpass.dispatch_workgroups(*workgroups)

    def _encode_copy(self, encoder: Any, src: Any, src_offset: int, dst: Any,
                     dst_offset: int, nbytes: int) -> None:
        encoder.copy_buffer_to_buffer(src, src_offset, dst, dst_offset, nbytes)

    def _upload(self, buf: Any, offset: int, data: Any) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            data = np.ascontiguousarray(data)
        self._queue.write_buffer(buf, offset, data)

    def _submit(self, command_buffer: Any) -> None:
        self._queue.submit([command_buffer])

    def _bind_group(self, layout: Any, entries: list[dict[str, Any]]) -> Any:
        return self._dev.create_bind_group(layout=layout, entries=entries)

    def _make_pipeline(self, k: Kernel, entries: list[dict[str, Any]]) -> tuple[Any, Any]:
        mod = self._modules.get(k.shader)
        if mod is None:
            mod = self._dev.create_shader_module(label=k.shader, code=shader_source(k.shader))
            self._modules[k.shader] = mod
        bgl = self._dev.create_bind_group_layout(entries=entries)
        layout = self._dev.create_pipeline_layout(bind_group_layouts=[bgl])
        stage = {"module": mod, "entry_point": k.entry, "constants": dict(k.constants)}
        pipe = self._dev.create_compute_pipeline(label=f"{k.shader}.{k.entry}", layout=layout,
                                                 compute=stage)
        return pipe, bgl

    # -- the Device interface ----------------------------------------------------------
    def create_buffer(self, nbytes: int) -> Any:
        with self._guard("buffer allocation"):
            return self._dev.create_buffer(size=nbytes, usage=self._usage)

    def destroy_buffer(self, buf: Any) -> None:
        buf.destroy()

    def wait(self) -> None:
        # Mapping a buffer written by the last submission waits for all work before it
        # (queue.on_submitted_work_done_sync is broken in wgpu-py 0.32).
        with self._lock, self._guard("wait"):
            wgpu = self._wgpu
            if self._fence is None:
                self._fence = self._dev.create_buffer(
                    size=4, usage=wgpu.BufferUsage.MAP_READ | wgpu.BufferUsage.COPY_DST)
                self._fence_src = self._dev.create_buffer(size=4, usage=self._usage)
            self._copy_and_flush(self._fence_src, self._fence, 4)
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
            self._copy_and_flush(buf, self._staging, nbytes)
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


__all__ = ["NativeDevice"]

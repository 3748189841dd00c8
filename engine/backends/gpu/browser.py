"""Device over the browser's WebGPU (`navigator.gpu`), for the engine running in Pyodide.

The same WGSL files, the same `Kernel`s and the same batching as `native.NativeDevice`;
only the calls differ (JavaScript objects through Pyodide's `js` / `pyodide.ffi` bridge).
No NumPy here: the kernel self-test runs this module in Pyodide's core runtime.

Readback is a Promise (`GPUBuffer.mapAsync`) and the page must never block on it, so:

- `await BrowserDevice.read_async(buf, n)` is the real readback;
  `await to_numpy_async(x)` (a Tensor, GpuArray or ndarray) is the one to call from an app.
- The synchronous `read` (what `Tensor.numpy()` ends in) works only where Pyodide can
  suspend Python until the Promise settles without blocking the page: `pyodide.ffi.run_sync`
  with WebAssembly JSPI (Chrome 137+), inside code entered through `runPythonAsync` (Panel's
  worker runs every callback that way). Elsewhere it raises, naming `to_numpy_async`.

In a page, `await init()` requests the adapter and registers the "gpu" backend with the
engine's device registry. Without WebGPU it returns False, warns once on the JavaScript
console, and sets `globalThis.demystifyGpu = {webgpu: false, reason}` and `status()` for
the app to show; device="auto" then computes with NumPy.
"""

from __future__ import annotations

import sys
from typing import Any

from .device import Device, DeviceError, Kernel, shader_source

# WebGPU enum values (the spec's numbers; `GPUBufferUsage` is absent in some workers)
_MAP_READ, _COPY_SRC, _COPY_DST, _UNIFORM, _STORAGE = 0x1, 0x4, 0x8, 0x40, 0x80

_status: dict[str, Any] = {"webgpu": None, "adapter": "", "reason": "init() not called yet"}


def in_browser() -> bool:
    return sys.platform == "emscripten"


def _js() -> Any:
    try:
        import js
    except ImportError as exc:
        raise DeviceError("the browser Device needs Pyodide (no `js` module here)") from exc
    return js


def _obj(value: Any) -> Any:
    """A Python dict/list as a plain JavaScript object/array (JsProxies pass through)."""
    from pyodide.ffi import to_js

    return to_js(value, dict_converter=_js().Object.fromEntries)


def _can_suspend() -> bool:
    try:
        from pyodide.ffi import can_run_sync
    except ImportError:
        return False
    return bool(can_run_sync())


def _is_null(value: Any) -> bool:
    """JavaScript null/undefined: Pyodide gives None for undefined but, since 0.28, its
    `jsnull` (type JsNull) for null, which requestAdapter() returns without WebGPU."""
    return value is None or type(value).__name__ == "JsNull"


def _error_text(err: Any) -> str:
    msg = getattr(err, "message", None)
    return str(msg if msg is not None else err)


class BrowserDevice(Device):
    """WebGPU Device. Create it with `await BrowserDevice.create()` (requesting an adapter
    is a Promise). Dispatches are recorded into one compute pass and submitted together on
    a read, or when the batch reaches `max_batch` dispatches or fills its uniform arena.
    Only what the JavaScript API spells its own way lives here; batching, the pipeline
    cache and lost-device errors are the `Device` base's."""

    def __init__(self, adapter: Any, device: Any, name: str) -> None:
        super().__init__()
        self.name = name
        self._adapter = adapter
        self._dev = device
        self._queue = device.queue
        lim = device.limits
        self.limits = {k: int(getattr(lim, k)) for k in (
            "maxStorageBufferBindingSize", "maxBufferSize", "minUniformBufferOffsetAlignment",
            "maxComputeWorkgroupsPerDimension", "maxComputeInvocationsPerWorkgroup",
            "maxComputeWorkgroupStorageSize")}
        self.max_binding = self.limits["maxStorageBufferBindingSize"]
        self._ualign = self.limits["minUniformBufferOffsetAlignment"]
        self._modules: dict[str, Any] = {}
        self._compile_errors: dict[str, list[str]] = {}
        self._arena = self._buffer(self.arena_size, _UNIFORM | _COPY_DST)
        self._staging: dict[int, list[Any]] = {}  # unmapped MAP_READ buffers by size
        self.errors: list[str] = []  # uncaptured WebGPU errors (validation, out of memory)
        from pyodide.ffi import create_proxy

        self._on_error = create_proxy(lambda ev: self.errors.append(_error_text(ev.error)))
        device.addEventListener("uncapturederror", self._on_error)
        self._on_lost = create_proxy(self._lost_cb)
        device.lost.then(self._on_lost)

    @classmethod
    async def create(cls) -> BrowserDevice:
        """Request an adapter and a device (raises DeviceError when there is no WebGPU)."""
        js = _js()
        gpu = getattr(js.navigator, "gpu", None)
        if _is_null(gpu):
            raise DeviceError("this browser has no WebGPU (navigator.gpu is undefined; it "
                              "needs a secure context: https or localhost)")
        adapter = await gpu.requestAdapter(_obj({"powerPreference": "high-performance"}))
        if _is_null(adapter):
            raise DeviceError("navigator.gpu.requestAdapter() returned no adapter (WebGPU "
                              "disabled or blocklisted for this GPU)")
        lim = adapter.limits
        wanted = {k: int(getattr(lim, k)) for k in ("maxStorageBufferBindingSize",
                                                      "maxBufferSize")}
        device = await adapter.requestDevice(_obj({"requiredLimits": wanted}))
        info = getattr(adapter, "info", None)
        parts = [str(getattr(info, k, "") or "") for k in ("vendor", "architecture",
                                                          "device", "description")]
        name = " ".join(p for p in parts if p) or "unknown adapter"
        return cls(adapter, device, f"{name} (WebGPU)")

    def _lost_cb(self, info: Any) -> None:
        self._lost = (f"the WebGPU device was lost ({_error_text(info)}); its tensors are "
                      "gone. Reload the page, or continue on device='cpu'.")

    # -- hooks of the Device base ------------------------------------------------------
    def _buffer(self, size: int, usage: int) -> Any:
        return self._dev.createBuffer(_obj({"size": int(size), "usage": usage}))

    def _new_encoder(self) -> Any:
        return self._dev.createCommandEncoder()

    def _begin_pass(self, encoder: Any) -> Any:
        return encoder.beginComputePass()

    def _encode_dispatch(self, cpass: Any, pipeline: Any, group: Any,
                         workgroups: tuple[int, int, int]) -> None:
        cpass.setPipeline(pipeline)
        cpass.setBindGroup(0, group)
        cpass.dispatchWorkgroups(*(int(g) for g in workgroups))

    def _encode_copy(self, encoder: Any, src: Any, src_offset: int, dst: Any,
                     dst_offset: int, nbytes: int) -> None:
        encoder.copyBufferToBuffer(src, int(src_offset), dst, int(dst_offset), int(nbytes))

    def _upload(self, buf: Any, offset: int, data: Any) -> None:
        view = memoryview(data).cast("B")
        arr = _js().Uint8Array.new(view.nbytes)
        arr.assign(view)
        self._queue.writeBuffer(buf, int(offset), arr)

    def _submit(self, command_buffer: Any) -> None:
        self._queue.submit(_obj([command_buffer]))

    def _bind_group(self, layout: Any, entries: list[dict[str, Any]]) -> Any:
        return self._dev.createBindGroup(_obj({"layout": layout, "entries": entries}))

    def _module(self, shader: str) -> Any:
        mod = self._modules.get(shader)
        if mod is None:
            mod = self._dev.createShaderModule(_obj({"label": shader,
                                                     "code": shader_source(shader)}))
            self._modules[shader] = mod
        return mod

    def _stage(self, k: Kernel) -> dict[str, Any]:
        return {"module": self._module(k.shader), "entryPoint": k.entry,
                "constants": dict(k.constants)}

    def _layouts(self, k: Kernel, entries: list[dict[str, Any]]) -> tuple[Any, Any]:
        bgl = self._dev.createBindGroupLayout(_obj({"entries": entries}))
        return bgl, self._dev.createPipelineLayout(_obj({"bindGroupLayouts": [bgl]}))

    def _make_pipeline(self, k: Kernel, entries: list[dict[str, Any]]) -> tuple[Any, Any]:
        bgl, layout = self._layouts(k, entries)
        pipe = self._dev.createComputePipeline(_obj({
            "label": f"{k.shader}.{k.entry}", "layout": layout, "compute": self._stage(k)}))
        return pipe, bgl

    async def compile_async(self, k: Kernel) -> None:
        """Build `k`'s pipeline, raising RuntimeError with the compiler's messages when
        the WGSL or its override constants are rejected (used by the self-test)."""
        if k in self._pipelines:
            return
        mod = self._module(k.shader)
        errors = self._compile_errors.get(k.shader)
        if errors is None:  # asked once per module: a second getCompilationInfo() on the
            info = await mod.getCompilationInfo()  # same module never settles (Chrome 156)
            errors = self._compile_errors[k.shader] = [
                f"{k.shader}.wgsl:{m.lineNum}:{m.linePos}: {m.message}"
                for m in info.messages if m.type == "error"]
        if errors:
            raise RuntimeError("; ".join(errors))
        bgl, layout = self._layouts(k, self._layout_entries(k))
        try:
            pipe = await self._dev.createComputePipelineAsync(_obj({
                "label": f"{k.shader}.{k.entry}", "layout": layout, "compute": self._stage(k)}))
        except Exception as exc:  # a GPUPipelineError (a JsException in Python)
            raise RuntimeError(f"{k.shader}.{k.entry} {dict(k.constants)}: {exc}") from None
        self._pipelines[k] = (pipe, bgl)

    # -- the Device interface ----------------------------------------------------------
    def create_buffer(self, nbytes: int) -> Any:
        with self._guard("buffer allocation"):
            return self._buffer(nbytes, _STORAGE | _COPY_SRC | _COPY_DST)

    def destroy_buffer(self, buf: Any) -> None:
        buf.destroy()

    async def wait_async(self) -> None:
        self.flush()
        await self._queue.onSubmittedWorkDone()
        self._raise_errors()

    def wait(self) -> None:
        """Flush, and wait only where Python can be suspended (see the module docstring);
        elsewhere the work is submitted and this returns at once."""
        if _can_suspend():
            from pyodide.ffi import run_sync

            run_sync(self.wait_async())
        else:
            self.flush()

    def _raise_errors(self) -> None:
        self._check_lost()
        if self.errors:
            msgs, self.errors = self.errors, []
            raise RuntimeError(f"WebGPU reported {len(msgs)} error(s): {' | '.join(msgs)[:2000]}")

    async def read_async(self, buf: Any, nbytes: int) -> bytes:
        nbytes = -(-int(nbytes) // 4) * 4
        size = max(1 << (nbytes - 1).bit_length(), 4096)
        free = self._staging.setdefault(size, [])
        staging = free.pop() if free else self._buffer(size, _MAP_READ | _COPY_DST)
        with self._guard("readback"):
            self._copy_and_flush(buf, staging, nbytes)
        try:
            await staging.mapAsync(_MAP_READ, 0, nbytes)
        except Exception as exc:
            self._check_lost()
            raise RuntimeError(f"WebGPU readback failed ({exc}); errors: {self.errors}") \
                from None
        try:
            data = bytes(_js().Uint8Array.new(staging.getMappedRange(0, nbytes)).to_bytes())
        finally:
            staging.unmap()
            free.append(staging)
        self.readbacks += 1
        self._raise_errors()
        return data

    def read(self, buf: Any, nbytes: int) -> bytes:
        if not _can_suspend():
            raise RuntimeError(
                "reading a GPU tensor synchronously in the browser needs WebGPU JSPI "
                "(pyodide.ffi.run_sync) and code entered through runPythonAsync; use "
                "`await engine.backends.gpu.browser.to_numpy_async(x)` instead")
        from pyodide.ffi import run_sync

        return run_sync(self.read_async(buf, nbytes))

    def lose(self) -> None:
        """Destroy the device (to exercise the device-lost path)."""
        self._dev.destroy()


# --------------------------------------------------------------------------- the page


def status() -> dict[str, Any]:
    """{"webgpu": True/False/None (not tried), "adapter": name, "reason": why not}."""
    return dict(_status)


def _publish(webgpu: bool, adapter: str = "", reason: str = "") -> None:
    _status.update(webgpu=webgpu, adapter=adapter, reason=reason)
    if not in_browser():
        return
    js = _js()
    js.globalThis.demystifyGpu = _obj(dict(_status))
    if not webgpu:
        js.console.warn(f"Demystify: no WebGPU ({reason}); the engine computes on the CPU "
                        "with NumPy (slower).")


async def init() -> bool:
    """Start the browser GPU backend and register it as the engine's "gpu" device.
    Returns False (after a console warning and `status()["reason"]`) without WebGPU."""
    if _status["webgpu"] is not None:
        return bool(_status["webgpu"])
    from ... import backends
    from . import GpuBackend

    try:
        dev = await BrowserDevice.create()
    except DeviceError as exc:
        _publish(False, reason=str(exc))
        backends.register("gpu", _unavailable(str(exc)))
        return False
    except Exception as exc:  # a JavaScript exception: report it, do not crash the page
        _publish(False, reason=f"{type(exc).__name__}: {exc}")
        backends.register("gpu", _unavailable(str(exc)))
        return False
    backend = GpuBackend(dev)
    backends.register("gpu", lambda: backend)
    _publish(True, adapter=dev.name)
    return True


def _unavailable(reason: str) -> Any:
    def factory() -> Any:
        raise DeviceError(reason)

    return factory


def create_sync() -> BrowserDevice:
    """A BrowserDevice from synchronous code (the registry's lazy factory), where Pyodide
    can suspend Python on the adapter Promise; else DeviceError asking for `await init()`."""
    if not _can_suspend():
        raise DeviceError("WebGPU is asynchronous here (no JSPI): call "
                          "`await engine.backends.gpu.browser.init()` before using the GPU")
    from pyodide.ffi import run_sync

    try:
        dev = run_sync(BrowserDevice.create())
    except DeviceError as exc:
        _publish(False, reason=str(exc))
        raise
    _publish(True, adapter=dev.name)
    return dev


async def to_numpy_async(x: Any) -> Any:
    """Host values of a Tensor, GpuArray or array without blocking the page: awaits the
    GPU readback (works with every backend; CPU data is returned as is)."""
    data, backend = x, None
    if hasattr(x, "backend") and hasattr(x, "data"):  # an engine Tensor
        data, backend = x.data, x.backend
    if backend is None and hasattr(data, "storage"):  # a bare GpuArray
        from .backend import host_array

        st = data.storage
        return host_array(data, await st.device.read_async(st.buffer, 4 * data.size)
                          if data.size else b"")
    if backend is None:
        return data
    reader = getattr(backend, "to_numpy_async", None)
    return await reader(data) if reader is not None else backend.to_numpy(data)

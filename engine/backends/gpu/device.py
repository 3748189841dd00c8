"""The Device seam: the few GPU operations the backend needs, so a second Device (the
browser's `navigator.gpu` through Pyodide) only implements this small interface.

Conventions every Device follows:
- A kernel is a WGSL entry point named by `Kernel` (shader file stem, entry point, the
  kinds of its storage bindings, and `override` constants). Binding 0 of group 0 is always
  the kernel's uniform parameter struct; storage bindings 1..n follow in `Kernel.bindings`
  order ("r" read-only, "w" read-write). Pipelines are cached per `Kernel`.
- Work is recorded, not run: `dispatch` and `copy` append to a batch that is submitted by
  `flush` (called by `read`, and by the Device itself when a batch grows too large).
  Uniform parameters are written once per batch from a per-batch arena, never into a
  buffer an earlier, not yet submitted dispatch still reads.
- `read` is the only readback; it counts itself in `readbacks` (tests use this to prove
  that a training step never reads back between ops). `read_async` is the same as a
  coroutine: the browser's readback is a Promise (`mapAsync`) and must not block the page,
  so code meant for the browser awaits it (`browser.to_numpy_async`); on native Devices it
  simply calls `read`.
- Buffers come from a size-bucketed pool. A released buffer is reused only after the
  batch that may still use it has been submitted.
- This module imports no NumPy (only the standard library): the browser Device and the
  kernel self-test (`selftest.py`) run in Pyodide's core runtime, which has no NumPy.
  Uploads are any C-contiguous buffer (bytes, memoryview, array.array, ndarray).
"""

from __future__ import annotations

import abc
import contextlib
import math
import re
import struct
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------- kernels


@dataclass(frozen=True)
class Kernel:
    """A specialised entry point: the key of the pipeline cache."""

    shader: str  # file stem in shaders/, e.g. "matmul"
    entry: str  # WGSL entry point
    bindings: str  # kinds of storage bindings 1..n: "r" read-only, "w" read-write
    constants: tuple[tuple[str, float], ...] = ()  # WGSL `override` values

    @staticmethod
    def make(shader: str, entry: str, bindings: str, **constants: float | bool) -> Kernel:
        return Kernel(shader, entry, bindings,
                      tuple(sorted((k, float(v)) for k, v in constants.items())))


def shader_dir() -> Path:
    """Where the .wgsl files are: inside the installed package, or the source checkout."""
    engine_dir = Path(__file__).resolve().parents[2]
    for cand in (engine_dir / "shaders", engine_dir.parent / "shaders"):
        if (cand / "matmul.wgsl").is_file():
            return cand
    raise FileNotFoundError(
        f"WGSL shaders not found in {engine_dir / 'shaders'} or {engine_dir.parent / 'shaders'}"
        "; reinstall the package (the wheel ships engine/shaders/*.wgsl)")


_sources: dict[str, str] = {}


_INCLUDE = re.compile(r"^//! include (\w+)\.wgsl[ \t]*$", re.M)


def _raw_source(name: str) -> str:
    if name not in _sources:
        _sources[name] = (shader_dir() / f"{name}.wgsl").read_text(encoding="utf-8")
    return _sources[name]


def shader_source(name: str, _within: tuple[str, ...] = ()) -> str:
    """The WGSL text of shaders/NAME.wgsl (from `provide_shaders`, else from `shader_dir`),
    each `//! include OTHER.wgsl` line replaced by OTHER's text: WGSL has no includes, and
    helpers used by several kernel files (common.wgsl, tile.wgsl) live in one place."""
    if name in _within:
        raise ValueError(f"shaders include each other in a cycle: {' -> '.join(_within)} -> "
                         f"{name}")
    return _INCLUDE.sub(lambda m: shader_source(m.group(1), (*_within, name)),
                        _raw_source(name))


def provide_shaders(sources: Mapping[str, str]) -> None:
    """Use these WGSL texts ({file stem: source}) instead of reading files: for hosts
    where the package's files are not on a filesystem (a page that fetched them itself)."""
    _sources.update(sources)


# --------------------------------------------------------------------------- params


class Params:
    """Builds a uniform struct's bytes following WGSL layout rules for the field kinds we
    use: 4-byte scalars, and `array<vec4<u32|i32>, 2>` blocks (8 slots, 16-byte aligned)."""

    def __init__(self) -> None:
        self._words: list[bytes] = []

    def _push(self, code: str, values: Sequence[Any]) -> Params:
        try:
            self._words.append(struct.pack(f"<{len(values)}{code}", *values))
        except struct.error as exc:
            kind = {"I": "u32", "i": "i32"}[code]
            raise OverflowError(f"uniform parameter {list(values)} does not fit WGSL {kind}") \
                from exc
        return self

    def u(self, *v: int) -> Params:
        return self._push("I", [int(x) for x in v])

    def i(self, *v: int) -> Params:
        return self._push("i", [int(x) for x in v])

    def f(self, *v: float) -> Params:
        return self._push("f", [_f32(x) for x in v])

    def vec8(self, values: Sequence[int], signed: bool = False) -> Params:
        """An `array<vec4<..>, 2>` field (zero-padded to 8 slots), aligned to 16 bytes."""
        if len(values) > 8:
            raise ValueError(f"at most 8 dims are supported on the GPU, got {len(values)}")
        self._align(16)
        padded = list(values) + [0] * (8 - len(values))
        return self.i(*padded) if signed else self.u(*padded)

    def _align(self, n: int) -> None:
        size = sum(len(w) for w in self._words)
        if size % n:
            self._words.append(bytes(n - size % n))

    def bytes(self) -> bytes:
        self._align(16)
        return b"".join(self._words) or bytes(16)


def _f32(x: Any) -> float:
    """x as a float that struct packs as f32: values beyond float32's range become +-inf
    (as NumPy's float32 cast does) instead of raising."""
    x = float(x)
    try:
        struct.pack("<f", x)
    except OverflowError:
        return math.copysign(math.inf, x)
    return x


# --------------------------------------------------------------------------- device

_LOST_WORDS = ("lost", "destroyed", "device is invalid", "invalid device")
_COMPUTE = 0x4  # GPUShaderStage.COMPUTE (the same number in wgpu-py and the browser)


try:  # inside the engine: the registry's error, so device="auto" falls back to NumPy
    from .. import DeviceError
except ImportError:  # loaded on its own (the browser's NumPy-free kernel self-test)

    class DeviceError(RuntimeError):  # type: ignore[no-redef]
        """No GPU adapter, or the device was lost."""



def _bucket(nbytes: int) -> int:
    """Round up to 2^k or 1.5 * 2^k (at most 33% waste), minimum 256 bytes."""
    n = max(int(nbytes), 256)
    p = 1 << (n - 1).bit_length()
    return p * 3 // 4 if p * 3 // 4 >= n else p


class Device(abc.ABC):
    """Abstract GPU device. The base owns the command batching (`dispatch`, `copy`,
    `flush`, `write`), the pipeline cache, lost-device errors and the buffer pool; a
    subclass creates its adapter and implements the abstract methods plus the `_`-named
    hooks below, each a call or two into its GPU API (wgpu-py or the browser's WebGPU)."""

    name: str = "unknown"  # adapter description
    pool_limit: int = 1 << 30  # bytes kept for reuse; beyond this, released buffers die
    max_batch = 512  # dispatches per submit
    arena_size = 1 << 17  # bytes of uniform parameters per submit

    def __init__(self) -> None:
        self.readbacks = 0
        self.dispatches = 0
        self._free: dict[int, list[Any]] = {}
        self._retired: list[tuple[int, Any]] = []
        self._pooled = 0
        self._pool_lock = threading.Lock()
        # every pooled buffer stays referenced here too: a Storage dying in a reference
        # cycle must not take its buffer with it (the GC would finalise the wgpu object,
        # releasing the GPU memory, while Storage.__del__ puts it back in the pool)
        self._owned: dict[int, Any] = {}  # by id: browser buffers (JsProxy) may not hash
        self._lock = threading.RLock()
        self._lost: str | None = None  # set when the device is lost: every call raises it
        self._pipelines: dict[Kernel, tuple[Any, Any]] = {}
        self._reset_batch()

    # -- the interface ---------------------------------------------------------------
    @abc.abstractmethod
    def create_buffer(self, nbytes: int) -> Any:
        """A new storage buffer (usable as copy source and destination)."""

    @abc.abstractmethod
    def destroy_buffer(self, buf: Any) -> None: ...

    @abc.abstractmethod
    def wait(self) -> None:
        """Flush and block until the GPU has finished (timing only; reads nothing)."""

    @abc.abstractmethod
    def read(self, buf: Any, nbytes: int) -> bytes:
        """Flush, then return the first `nbytes` of `buf` (counts one readback)."""

    def write(self, buf: Any, data: Any, offset: int = 0) -> None:
        """Upload host bytes (a C-contiguous buffer, size a multiple of 4). Only ever called
        on buffers no pending work uses."""
        with self._lock, self._guard("upload"):
            self._upload(buf, offset, data)

    def dispatch(self, kernel: Kernel, params: bytes, buffers: Sequence[Any],
                 workgroups: tuple[int, int, int]) -> None:
        """Record one dispatch; `buffers` bind to 1..n (a buffer or (buffer, nbytes))."""
        with self._lock, self._guard(f"{kernel.shader}.{kernel.entry}"):
            pipe, layout = self._pipeline(kernel)
            group = self._bind_group(layout, self._bind_entries(params, buffers))
            if self._pass is None:
                self._pass = self._begin_pass(self._ensure_encoder())
            self._encode_dispatch(self._pass, pipe, group, workgroups)
            self._count += 1
            self.dispatches += 1

    def copy(self, src: Any, src_offset: int, dst: Any, dst_offset: int, nbytes: int) -> None:
        """Record a buffer-to-buffer copy (offsets and size multiples of 4)."""
        with self._lock, self._guard("copy"):
            self._end_pass()
            self._encode_copy(self._ensure_encoder(), src, src_offset, dst, dst_offset, nbytes)
            self._count += 1

    def flush(self) -> None:
        """Submit everything recorded so far."""
        with self._lock, self._guard("submit"):
            if self._encoder is None:
                self._recycle()
                return
            self._end_pass()
            if self._params:
                self._upload(self._arena, 0, bytes(self._params))
            cmd = self._encoder.finish()
            self._reset_batch()
            self._submit(cmd)
            self._recycle()

    # -- hooks: what each GPU API spells differently ---------------------------------
    def _new_encoder(self) -> Any:
        """A command encoder."""
        raise NotImplementedError

    def _begin_pass(self, encoder: Any) -> Any:
        """Open a compute pass on `encoder`."""
        raise NotImplementedError

    def _encode_dispatch(self, cpass: Any, pipeline: Any, group: Any,
                         workgroups: tuple[int, int, int]) -> None:
        raise NotImplementedError

    def _encode_copy(self, encoder: Any, src: Any, src_offset: int, dst: Any,
                     dst_offset: int, nbytes: int) -> None:
        raise NotImplementedError

    def _upload(self, buf: Any, offset: int, data: Any) -> None:
        """queue.writeBuffer."""
        raise NotImplementedError

    def _submit(self, command_buffer: Any) -> None:
        raise NotImplementedError

    def _bind_group(self, layout: Any, entries: list[dict[str, Any]]) -> Any:
        raise NotImplementedError

    def _make_pipeline(self, kernel: Kernel, entries: list[dict[str, Any]]) -> tuple[Any, Any]:
        """(compute pipeline, bind group layout) for `kernel`, its layout from `entries`."""
        raise NotImplementedError

    # -- shared by the Devices ---------------------------------------------------------
    # A batch is one command encoder with at most one open compute pass, and the uniform
    # arena it fills. Subclasses provide _arena (the uniform buffer) and _ualign (the
    # minimum uniform offset alignment).
    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Raise DeviceError once the device is lost (and mark it lost on an error that
        says so), so every later call fails with the same clear message."""
        self._check_lost()
        try:
            yield
        except DeviceError:
            raise
        except Exception as exc:
            msg = str(exc)
            if not self._lost and any(w in msg.lower() for w in _LOST_WORDS):
                self._lost = (f"the GPU device was lost during {what} ({msg.strip()[:300]}); "
                              "its tensors are gone. Continue on device='cpu' from the last "
                              "saved weights.")
                self._reset_batch()
                raise DeviceError(self._lost) from exc
            raise

    def _check_lost(self) -> None:
        if self._lost:
            raise DeviceError(self._lost)

    def _pipeline(self, k: Kernel) -> tuple[Any, Any]:
        hit = self._pipelines.get(k)
        if hit is None:
            hit = self._pipelines[k] = self._make_pipeline(k, self._layout_entries(k))
        return hit

    @staticmethod
    def _layout_entries(k: Kernel) -> list[dict[str, Any]]:
        """Bind group layout entries: the uniform at 0, then the storage buffers."""
        entries = [{"binding": 0, "visibility": _COMPUTE, "buffer": {"type": "uniform"}}]
        for i, kind in enumerate(k.bindings, start=1):
            entries.append({"binding": i, "visibility": _COMPUTE, "buffer": {
                "type": "storage" if kind == "w" else "read-only-storage"}})
        return entries

    def _reset_batch(self) -> None:
        self._encoder: Any = None
        self._pass: Any = None
        self._params = bytearray()
        self._count = 0

    def _end_pass(self) -> None:
        if self._pass is not None:
            self._pass.end()
            self._pass = None

    def _ensure_encoder(self) -> Any:
        if self._encoder is None:
            self._encoder = self._new_encoder()
        return self._encoder

    def _copy_and_flush(self, src: Any, dst: Any, nbytes: int) -> None:
        """Record a copy of src's first nbytes into dst (a readback staging buffer) and
        submit everything, so the copy sees all earlier work."""
        self._end_pass()
        self._encode_copy(self._ensure_encoder(), src, 0, dst, 0, nbytes)
        self.flush()

    def _bind_entries(self, params: bytes, buffers: Sequence[Any]) -> list[dict[str, Any]]:
        """Give this dispatch's parameters their own arena slot (flushing first when the
        batch is full) and describe bindings 0..n in WebGPU's bind-group-entry layout.

        Slots are at least 256 bytes, so binding 0 covers any uniform struct of ours."""
        size = max(len(params), 256)
        start = -(-len(self._params) // self._ualign) * self._ualign
        if self._count >= self.max_batch or start + size > self.arena_size:
            self.flush()
            start = 0
        self._params.extend(bytes(start - len(self._params)))
        self._params.extend(params)
        self._params.extend(bytes(size - len(params)))
        entries = [{"binding": 0, "resource": {"buffer": self._arena, "offset": start,
                                               "size": size}}]
        for i, b in enumerate(buffers, start=1):
            buf, nbytes = b if isinstance(b, tuple) else (b, b.size)
            entries.append({"binding": i, "resource": {"buffer": buf, "offset": 0,
                                                       "size": int(nbytes)}})
        return entries

    async def read_async(self, buf: Any, nbytes: int) -> bytes:
        """`read` as a coroutine; Devices whose readback is asynchronous override it."""
        return self.read(buf, nbytes)

    async def wait_async(self) -> None:
        """`wait` as a coroutine (the browser's queue.onSubmittedWorkDone is a Promise)."""
        self.wait()

    # -- buffer pool (shared by all Devices) -----------------------------------------
    def alloc(self, nbytes: int) -> tuple[Any, int]:
        """A buffer of at least nbytes from the pool: returns (buffer, capacity)."""
        size = _bucket(nbytes)
        with self._pool_lock:
            free = self._free.get(size)
            if free:
                self._pooled -= size
                return free.pop(), size
        buf = self.create_buffer(size)
        with self._pool_lock:
            self._owned[id(buf)] = buf
        return buf, size

    def release(self, buf: Any, size: int) -> None:
        """Give a buffer back; reusable once the current batch is submitted."""
        self._retired.append((size, buf))

    def _recycle(self) -> None:
        """Called by `flush` after submitting: retired buffers become reusable."""
        with self._pool_lock:
            retired, self._retired = self._retired, []
            doomed = []
            for size, buf in retired:
                if self._pooled + size > self.pool_limit:
                    doomed.append(buf)
                else:
                    self._free.setdefault(size, []).append(buf)
                    self._pooled += size
            for buf in doomed:
                del self._owned[id(buf)]
        for buf in doomed:
            self.destroy_buffer(buf)

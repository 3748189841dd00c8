"""Kernel parity self-test that runs on any Device, including in a browser with no NumPy.

Why a replay: the browser's Pyodide core runtime has no NumPy, so neither GpuBackend nor
the CPU reference can run there. Instead the host (with NumPy) runs the real GpuBackend
on a `RecordingDevice`, which keeps every buffer, upload, dispatch (kernel, uniform bytes,
bindings, grid) and copy, and runs the NumPy CpuBackend on the same inputs for the expected
values. `run` then replays those cases on a real Device (WebGPU in Chrome, or wgpu-native)
and compares the read-back bytes with the expected ones, in pure Python. So the browser
checks exactly the kernels, override constants and parameter packing the backend uses.

Host:    cases = build_cases()        (NumPy; JSON-serialisable, bytes as base64)
Device:  report = await run(device, cases, shaders)   (standard library only)
CLI:     python -m engine.backends.gpu.selftest        (replays on wgpu-native)

The cases cover every `@compute` entry point of every shaders/*.wgsl file; `run` reports
an entry point the cases miss as a failure, so a new kernel cannot go untested here.
"""

from __future__ import annotations

import array
import base64
import json
import math
import re
import struct
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .device import Device, Kernel, provide_shaders, shader_dir, shader_source

_ENTRY = re.compile(r"@compute[^{;]*?\bfn\s+(\w+)\s*\(", re.S)


def entry_points(source: str) -> list[str]:
    """The compute entry points declared in a WGSL source."""
    return _ENTRY.findall(source)


def _b64(data: bytes) -> str:
    return base64.b64encode(bytes(data)).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


# --------------------------------------------------------------------------- replay


def _values(data: bytes, kind: str) -> list[Any]:
    out = array.array(kind, data)
    if sys.byteorder != "little":
        out.byteswap()
    return out.tolist()


def compare(got: bytes, want: bytes, kind: str, rtol: float, atol: float) -> str | None:
    """None when `got` matches `want` (f32 within rtol/atol, NaN and inf equal; i32/u32
    exactly); else a short description of the worst mismatch."""
    g, w = _values(got, kind), _values(want, kind)
    if len(g) != len(w):
        return f"length {len(g)} != {len(w)}"
    bad, worst, where = 0, -1.0, -1
    for i, (x, y) in enumerate(zip(g, w)):
        if kind == "f":
            if math.isnan(y) or math.isinf(y):
                ok = (math.isnan(x) and math.isnan(y)) or x == y
                err = 0.0 if ok else math.inf
            else:
                err = abs(x - y) - (atol + rtol * abs(y))
                ok = err <= 0
        else:
            ok, err = x == y, float(abs(x - y))
        if not ok:
            bad += 1
            if not err <= worst:
                worst, where = err, i
    if not bad:
        return None
    return (f"{bad}/{len(w)} elements differ; worst at [{where}]: got {g[where]!r}, "
            f"want {w[where]!r}")


async def _compile(device: Device, kernel: Kernel) -> None:
    compile_async = getattr(device, "compile_async", None)
    if compile_async is not None:
        await compile_async(kernel)
    else:
        device._pipeline(kernel)  # type: ignore[attr-defined]  # native: raises on error


async def run_case(device: Device, case: Mapping[str, Any],
                   values: dict[str, list[Any]] | None = None) -> list[str]:
    """Replay one case; returns its failures (empty when it passes). Outputs marked
    "report" also go to `values[case name]` (e.g. a model's logits)."""
    bufs = {int(k): device.create_buffer(int(v)) for k, v in case["buffers"].items()}
    try:
        for op in case["ops"]:
            tag = op[0]
            if tag == "write":
                _, b, offset, data = op
                device.write(bufs[b], memoryview(_unb64(data)), offset)
            elif tag == "dispatch":
                _, shader, entry, bindings, consts, params, binds, groups = op
                kernel = Kernel(shader, entry, bindings, tuple((k, v) for k, v in consts))
                device.dispatch(kernel, _unb64(params), [(bufs[b], n) for b, n in binds],
                                tuple(groups))
            elif tag == "copy":
                _, src, so, dst, do, n = op
                device.copy(bufs[src], so, bufs[dst], do, n)
            else:
                raise ValueError(f"unknown op {tag!r} in case {case['name']!r}")
        errors = []
        for i, out in enumerate(case["outputs"]):
            got = (await device.read_async(bufs[out["buf"]], out["nbytes"]))[:out["nbytes"]]
            if out.get("report") and values is not None:
                values.setdefault(case["name"], []).append(_values(got, out["kind"]))
            msg = compare(got, _unb64(out["expect"]), out["kind"], out["rtol"], out["atol"])
            if msg:
                errors.append(f"output {i}: {msg}")
        return errors
    finally:
        device.flush()
        for b in bufs.values():
            device.destroy_buffer(b)


async def run(device: Device, cases: Sequence[Mapping[str, Any]],
              shaders: Mapping[str, str] | None = None,
              log: Callable[[str], Any] | None = None, coverage: bool = True
              ) -> dict[str, Any]:
    """Compile every kernel the cases use, replay every case, compare. Returns
    {"adapter", "cases", "passed", "kernels", "entry_points", "failures": [...],
    "values": {case: [reported outputs]}, "compile_s", "replay_s"}."""
    if shaders:
        provide_shaders(shaders)
    failures: list[str] = []
    kernels: dict[Kernel, str | None] = {}
    for case in cases:
        for op in case["ops"]:
            if op[0] == "dispatch":
                kernels.setdefault(Kernel(op[1], op[2], op[3], tuple((k, v) for k, v in op[4])),
                                   None)
    names = sorted(shaders) if shaders else sorted(p.stem for p in shader_dir().glob("*.wgsl"))
    declared = {(s, e) for s in names for e in entry_points(shader_source(s))}
    used = {(k.shader, k.entry) for k in kernels}
    for s, e in sorted(declared - used) if coverage else ():
        failures.append(f"{s}.wgsl: entry point {e} is not covered by any case")
    broken: set[tuple[str, str]] = set()
    t0 = time.perf_counter()
    for k in kernels:
        if log is not None:
            log(f"compile {k.shader}.{k.entry}")
        try:
            await _compile(device, k)
        except Exception as exc:
            broken.add((k.shader, k.entry))
            failures.append(f"compile {k.shader}.{k.entry} {dict(k.constants)}: {exc}")
    t1 = time.perf_counter()
    passed, values = 0, {}
    for case in cases:
        needs = {(op[1], op[2]) for op in case["ops"] if op[0] == "dispatch"}
        if needs & broken:
            failures.append(f"{case['name']}: skipped (kernel failed to compile)")
            continue
        try:
            errors = await run_case(device, case, values)
        except Exception as exc:
            errors = [f"{type(exc).__name__}: {exc}"]
        if errors:
            failures.append(f"{case['name']}: {'; '.join(errors)}")
        else:
            passed += 1
        if log is not None:
            log(f"{'ok  ' if not errors else 'FAIL'} {case['name']}")
    return {"adapter": device.name, "cases": len(cases), "passed": passed,
            "kernels": len(kernels), "entry_points": len(declared), "failures": failures,
            "values": values, "compile_s": t1 - t0, "replay_s": time.perf_counter() - t1}


async def browser_main(cases_json: str, shaders_json: str | None = None,
                       coverage: bool = True) -> str:
    """Entry point for a page: replay the cases on a new WebGPU BrowserDevice; JSON report.
    `coverage=False` replays a subset (a model) without requiring every entry point."""
    import js

    from .browser import BrowserDevice

    device = await BrowserDevice.create()
    shaders = json.loads(shaders_json) if shaders_json else None
    report = await run(device, json.loads(cases_json), shaders, log=js.console.log,
                       coverage=coverage)
    # the synchronous readback (Tensor.numpy()) works where Pyodide can suspend (JSPI)
    from .browser import _can_suspend

    report["jspi"] = _can_suspend()
    if report["jspi"]:
        buf = device.create_buffer(256)
        device.write(buf, struct.pack("<4i", 1, -2, 3, -4))
        report["sync_read"] = struct.unpack("<4i", device.read(buf, 16)) == (1, -2, 3, -4)
        device.destroy_buffer(buf)
    return json.dumps(report)


# --------------------------------------------------------------------------- recording


class RecordingDevice(Device):
    """A Device that runs nothing: it records buffers, uploads, dispatches and copies so
    they can be replayed elsewhere. Buffers are integer ids."""

    name = "recorder"

    def __init__(self) -> None:
        super().__init__()
        self.sizes: dict[int, int] = {}
        self.ops: list[list[Any]] = []

    def create_buffer(self, nbytes: int) -> int:
        self.sizes[len(self.sizes)] = int(nbytes)
        return len(self.sizes) - 1

    def destroy_buffer(self, buf: Any) -> None:
        pass

    def write(self, buf: Any, data: Any, offset: int = 0) -> None:
        self.ops.append(["write", buf, int(offset), _b64(memoryview(data).tobytes())])

    def dispatch(self, kernel: Kernel, params: bytes, buffers: Sequence[Any],
                 workgroups: tuple[int, int, int]) -> None:
        binds = [list(b) if isinstance(b, tuple) else [b, self.sizes[b]] for b in buffers]
        self.ops.append(["dispatch", kernel.shader, kernel.entry, kernel.bindings,
                         [list(c) for c in kernel.constants], _b64(params), binds,
                         [int(g) for g in workgroups]])
        self.dispatches += 1

    def copy(self, src: Any, src_offset: int, dst: Any, dst_offset: int, nbytes: int) -> None:
        self.ops.append(["copy", src, int(src_offset), dst, int(dst_offset), int(nbytes)])

    def flush(self) -> None:
        self._recycle()

    def wait(self) -> None:
        pass

    def read(self, buf: Any, nbytes: int) -> bytes:
        raise RuntimeError("a case must not read back mid-way (the recorder computes "
                           "nothing); return the arrays to compare instead")


def record(name: str, fn: Callable[[Any], Any], rtol: float = 1e-4,
           atol: float = 1e-5) -> dict[str, Any]:
    """A case: `fn(backend)` run on a recording GpuBackend and on the NumPy CpuBackend;
    it returns an array or a tuple of arrays, compared pairwise (shapes checked here)."""
    from ..cpu import CpuBackend
    from .backend import GpuBackend

    dev = RecordingDevice()
    got = fn(GpuBackend(dev))
    want = fn(CpuBackend())
    return _case(name, dev, got, want, rtol, atol)


def record_tensors(name: str, fn: Callable[[str], Any], rtol: float = 1e-4,
                   atol: float = 1e-5, report: bool = False) -> dict[str, Any]:
    """A case from Tensor-level code (a whole model): `fn(device)` returns a Tensor or a
    tuple of them; "gpu" is routed to a recording GpuBackend, "cpu" gives the expected
    values. With `report`, the replay also returns the read-back values."""
    from .. import override
    from .backend import GpuBackend

    dev = RecordingDevice()
    with override("gpu", GpuBackend(dev)):
        got = fn("gpu")
    want = fn("cpu")
    as_tuple = lambda v: v if isinstance(v, tuple) else (v,)  # noqa: E731
    case = _case(name, dev, tuple(t.data for t in as_tuple(got)),
                 tuple(t.numpy() for t in as_tuple(want)), rtol, atol)
    for out in case["outputs"]:
        out["report"] = report
    return case


def _case(name: str, dev: RecordingDevice, got: Any, want: Any, rtol: float,
          atol: float) -> dict[str, Any]:
    import numpy as np

    from .array import BOOL, F32

    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    outputs = []
    for g, w in zip(got, want, strict=True):
        w = np.asarray(w)
        if tuple(g.shape) != w.shape or not g.size:
            raise AssertionError(f"{name}: GPU shape {g.shape}, CPU shape {w.shape} (must "
                                 "be equal and non-empty)")
        kind = {F32: "f", BOOL: "I"}.get(g.kind, "i")
        expect = np.ascontiguousarray(w, dtype={"f": "<f4", "I": "<u4", "i": "<i4"}[kind])
        outputs.append({"buf": g.storage.buffer, "nbytes": 4 * g.size, "kind": kind,
                        "expect": _b64(expect.tobytes()), "rtol": rtol, "atol": atol})
    # keep the GPU arrays alive until here, so no buffer was recycled mid-case
    return {"name": name, "buffers": {str(k): v for k, v in dev.sizes.items()},
            "ops": dev.ops, "outputs": outputs}


def build_cases(seed: int = 0) -> list[dict[str, Any]]:
    """Small cases that together dispatch every entry point of every shader file, with
    representative override constants (op codes, dtype kinds, tile sizes, geometry)."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def rand(*shape: int, lo: float | None = None) -> np.ndarray:
        a = rng.standard_normal(shape).astype(np.float32)
        return np.abs(a) + np.float32(lo) if lo is not None else a

    def ints(*shape: int, lo: int = -9, hi: int = 9) -> np.ndarray:
        return rng.integers(lo, hi, shape)

    cases: list[dict[str, Any]] = []

    def add(name: str, fn: Callable[[Any], Any], rtol: float = 1e-4,
            atol: float = 1e-5) -> None:
        cases.append(record(name, fn, rtol, atol))

    up = lambda B, *a: [B.from_numpy(x) for x in a]  # noqa: E731

    # elementwise.wgsl
    x, y, pos = rand(3, 5), rand(5), rand(3, 5, lo=0.1)
    for op in ("neg", "exp", "tanh", "sigmoid", "erf", "relu", "sign"):
        add(f"unary {op}", lambda B, op=op: B.unary(op, B.from_numpy(x)))
    for op in ("log", "sqrt"):
        add(f"unary {op}", lambda B, op=op: B.unary(op, B.from_numpy(pos)))
    i7, i6, j6, i9 = ints(7), ints(6), ints(6, lo=1), ints(9)
    e8, f8 = ints(8, lo=0, hi=3), ints(8, lo=0, hi=3)
    add("unary abs int64", lambda B: B.unary("abs", B.from_numpy(i7)))
    add("binary add broadcast", lambda B: B.binary("add", *up(B, x, y)))
    add("binary pow", lambda B: B.binary("pow", *up(B, pos, y)), rtol=2e-4)
    add("binary div int -> float", lambda B: B.binary("div", *up(B, i6, j6)))
    add("binary maximum scalar", lambda B: B.binary("maximum", B.from_numpy(x), 0.25))
    add("binary gt -> bool", lambda B: B.binary("gt", *up(B, x, y)))
    add("binary eq int", lambda B: B.binary("eq", *up(B, e8, f8)))
    add("where", lambda B: B.where(*up(B, x > 0, x, -x * 2)))
    add("clip", lambda B: B.clip(B.from_numpy(x), -0.5, 0.5))
    add("clip int lo", lambda B: B.clip(B.from_numpy(i9), 0, None))
    add("astype float -> int64", lambda B: B.astype(B.from_numpy(x * 3), np.int64))
    add("astype bool -> float", lambda B: B.astype(B.from_numpy(x > 0), np.float32))
    add("full float", lambda B: B.full((4, 3), 1.5, np.float32))
    add("full int64", lambda B: B.full((5,), -3, np.int64))
    # reduce.wgsl
    big, wide, r3, i54, r453 = rand(3, 300), rand(2, 9000), rand(4, 5, 6), ints(5, 4), \
        rand(4, 5, 3)
    add("sum rows", lambda B: B.reduce("sum", B.from_numpy(big), (1,), False), atol=1e-4)
    add("sum rows chunked", lambda B: B.reduce("sum", B.from_numpy(wide), (1,), True),
        atol=1e-3)
    add("max strided", lambda B: B.reduce("max", B.from_numpy(r3), (1,), False))
    add("sum int strided", lambda B: B.reduce("sum", B.from_numpy(i54), (0,), False))
    add("min all", lambda B: B.reduce("min", B.from_numpy(x), (0, 1), False))
    add("argmax rows", lambda B: B.argmax(B.from_numpy(big), 1))
    add("argmax strided", lambda B: B.argmax(B.from_numpy(r453), 1))
    # matmul.wgsl
    a, b, ta, tb = rand(5, 7), rand(7, 3), rand(2, 7, 6), rand(2, 4, 7)
    ma, mb = rand(70, 33), rand(33, 40)
    add("matmul tiled", lambda B: B.matmul(*up(B, a, b)), atol=1e-4)
    add("matmul tiled trans batched", lambda B: B.matmul(*up(B, ta, tb),
                                                         trans_a=True, trans_b=True), atol=1e-4)
    add("matmul 70x40x33", lambda B: B.matmul(*up(B, ma, mb)), atol=1e-4)
    add("matmul naive", lambda B: (B.matmul(*up(B, a, b), kernel="naive")
                                   if B.name == "gpu" else B.matmul(a, b)), atol=1e-4)
    # conv2d.wgsl (forward, input gradient, weight gradient with and without split-K)
    for xs, ws, st, pd, dl, gr in (((2, 3, 9, 9), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1),
                                   ((1, 4, 8, 7), (6, 2, 3, 2), (2, 1), (1, 0), (2, 1), 2),
                                   ((2, 1, 24, 24), (3, 1, 5, 5), (1, 1), (2, 2), (1, 1), 1)):
        cx, cw = rand(*xs), rand(*ws)
        geo = (st, pd, dl, gr)
        add(f"conv2d {xs}*{ws}", lambda B, cx=cx, cw=cw, geo=geo: B.conv2d(*up(B, cx, cw), *geo),
            atol=2e-4)
        oshape = CpuBackendShape.conv(xs, ws, *geo)
        gy = rand(*oshape)
        add(f"conv2d grad input {xs}", lambda B, gy=gy, cw=cw, xs=xs, geo=geo:
            B.conv2d_grad_input(*up(B, gy, cw), xs, *geo), atol=2e-4)
        add(f"conv2d grad weight {ws}", lambda B, gy=gy, cx=cx, ws=ws, geo=geo:
            B.conv2d_grad_weight(*up(B, gy, cx), ws, *geo), atol=2e-3)
    # pooling.wgsl
    px = rand(2, 3, 7, 8)
    for k, st, pd, dl in (((2, 2), (2, 2), (0, 0), (1, 1)), ((3, 2), (2, 1), (1, 0), (1, 1))):
        add(f"maxpool {k}", lambda B, g=(k, st, pd, dl): B.maxpool2d(B.from_numpy(px), *g))
        ho, wo = CpuBackendShape.pool(px.shape, k, st, pd, dl)
        gy = rand(2, 3, ho, wo)

        def mp_grad(B: Any, g: Any = (k, st, pd, dl), gy: Any = gy) -> Any:
            _, arg = B.maxpool2d(B.from_numpy(px), *g)
            return B.maxpool2d_grad(B.from_numpy(gy), arg, px.shape)

        def mp_grad_scan(B: Any, g: Any = (k, st, pd, dl), gy: Any = gy) -> Any:
            from ..cpu import CpuBackend  # an argmax from the host has no window geometry

            _, arg = CpuBackend().maxpool2d(px, *g)
            return B.maxpool2d_grad(*up(B, gy, arg), px.shape)

        add(f"maxpool grad {k}", mp_grad)
        add(f"maxpool grad scan {k}", mp_grad_scan)
        for inc in (True, False):
            add(f"avgpool {k} include_pad={inc}", lambda B, g=(k, st, pd), inc=inc:
                B.avgpool2d(B.from_numpy(px), *g, inc))
            add(f"avgpool grad {k} include_pad={inc}", lambda B, g=(k, st, pd), inc=inc, gy=gy:
                B.avgpool2d_grad(B.from_numpy(gy), px.shape, *g, inc))
    # softmax.wgsl
    sm = rand(3, 200) * 5
    sm[0, 0] = 80.0
    s3, s2 = rand(2, 5, 3), rand(4, 10)
    add("softmax rows", lambda B: B.softmax(B.from_numpy(sm), 1))
    add("log_softmax rows", lambda B: B.log_softmax(B.from_numpy(sm), -1))
    add("softmax strided", lambda B: B.softmax(B.from_numpy(s3), 1))
    add("log_softmax strided", lambda B: B.log_softmax(B.from_numpy(s2), 0))
    # batchnorm.wgsl
    bx, gam, bet = rand(4, 3, 5, 5) * 2 + 1, rand(3), rand(3)
    add("batch_norm train", lambda B: B.batch_norm_train(*up(B, bx, gam, bet), (0, 2, 3), 1e-5),
        atol=1e-4)
    bgy = rand(4, 3, 5, 5)

    def bn_grad(B: Any) -> Any:
        _, mean, invstd = B.batch_norm_train(*up(B, bx, gam, bet), (0, 2, 3), 1e-5)
        return B.batch_norm_grad(*up(B, bgy, bx, gam), mean, invstd, (0, 2, 3))

    add("batch_norm grad", bn_grad, atol=1e-4)
    # optim.wgsl (two steps each, in place; parameters and state compared)
    p0, g1, g2 = rand(37), rand(37), rand(37)

    def steps(fn: Callable[..., None], n_state: int) -> Callable[[Any], Any]:
        def go(B: Any) -> Any:
            p = B.from_numpy(p0.copy())
            st = [B.from_numpy(np.zeros_like(p0)) for _ in range(n_state)]
            for t, g in enumerate((g1, g2), start=1):
                fn(B, p, B.from_numpy(g), st, t)
            return (p, *st)
        return go

    add("sgd nesterov", steps(lambda B, p, g, s, t: B.sgd_step_(
        p, g, s[0], 0.1, 0.9, 0.0, True, 0.01, t == 1), 1))
    add("adagrad", steps(lambda B, p, g, s, t: B.adagrad_step_(p, g, s[0], 0.1, 1e-8, 0.01), 1))
    add("rmsprop momentum", steps(lambda B, p, g, s, t: B.rmsprop_step_(
        p, g, s[0], s[1], 0.01, 0.99, 1e-8, 0.9, 0.0), 2))
    add("adamw", steps(lambda B, p, g, s, t: B.adam_step_(
        p, g, s[0], s[1], 1e-3, 0.9, 0.999, 1e-8, 0.01, True, t), 2))
    # embedding.wgsl
    table, idx, vals = rand(6, 4), ints(2, 3, lo=0, hi=6), rand(2, 3, 4)
    add("gather rows", lambda B: B.gather_rows(*up(B, table, idx)))
    add("scatter rows add", lambda B: B.scatter_rows_add(6, *up(B, idx, vals)))
    # movement.wgsl
    mv, r43, pidx, pv = rand(2, 3, 4), rand(4, 3), ints(2, 1, 4, lo=0, hi=3), rand(2, 1, 4)
    add("permute", lambda B: B.permute(B.from_numpy(mv), (2, 0, 1)))
    add("slice", lambda B: B.getitem(B.from_numpy(mv), (slice(None), slice(1, 3), 2)))
    add("pad", lambda B: B.pad(B.from_numpy(mv), [(0, 1), (2, 0), (1, 1)], 0.5))
    add("gather (fancy index)", lambda B: B.getitem(B.from_numpy(mv), (np.array([1, 0, 1]),)))
    add("index_add (segment sum)", lambda B: B.index_add(
        (5, 3), (np.array([0, 2, 0, 4]),), B.from_numpy(r43)))
    tidx = ints(2, 2, 4, lo=0, hi=3)
    add("take_along", lambda B: B.take_along(*up(B, mv, tidx), 1))
    add("put_along", lambda B: B.put_along((2, 3, 4), *up(B, pidx, pv), 1))
    # fm.wgsl (factorization machine pairwise term and its two gradients)
    fv, fx, fg = rand(3, 5, 4), rand(3, 5), rand(3)
    add("fm pairwise", lambda B: B.fm_pairwise(*up(B, fv, fx)))
    add("fm pairwise grad", lambda B: B.fm_pairwise_grad(*up(B, fg, fv, fx)))
    # recurrent.wgsl, recurrent_grad.wgsl (fused RNN/LSTM/GRU steps, forward and backward)
    def scan(B: Any, mode: str, reverse: bool, arrays: list) -> Any:
        x, h0, c0, w_ih, w_hh, b_ih, b_hh, g = [None if v is None else B.from_numpy(v)
                                                for v in arrays]
        out, saved = B.recurrent_scan(mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse)
        grads = B.recurrent_scan_grad(mode, g, out, saved, x, h0, c0, w_ih, w_hh, reverse)
        return (out, *(grads[k] for k in sorted(grads)))

    for mode, reverse, G in (("LSTM", False, 4), ("GRU", True, 3), ("RNN_RELU", False, 1)):
        T, N, I, H = 4, 2, 3, 5
        xs = [rand(T, N, I), rand(N, H), rand(N, H) if mode == "LSTM" else None,
              rand(G * H, I) * 0.5, rand(G * H, H) * 0.5, rand(G * H), rand(G * H),
              rand(T + (mode == "LSTM"), N, H)]
        add(f"{mode} scan{' reverse' if reverse else ''}",
            lambda B, m=mode, r=reverse, a=xs: scan(B, m, r, a))
    return cases


class CpuBackendShape:
    """Output sizes for the cases' gradient inputs (the backends' own formula)."""

    @staticmethod
    def conv(xs: Sequence[int], ws: Sequence[int], st: Sequence[int], pd: Sequence[int],
             dl: Sequence[int], groups: int) -> tuple[int, ...]:
        from ..window import conv_out_size

        return (xs[0], ws[0], conv_out_size(xs[2], ws[2], st[0], pd[0], dl[0]),
                conv_out_size(xs[3], ws[3], st[1], pd[1], dl[1]))

    @staticmethod
    def pool(xs: Sequence[int], k: Sequence[int], st: Sequence[int], pd: Sequence[int],
             dl: Sequence[int]) -> tuple[int, int]:
        from ..window import conv_out_size

        return (conv_out_size(xs[2], k[0], st[0], pd[0], dl[0]),
                conv_out_size(xs[3], k[1], st[1], pd[1], dl[1]))


def main() -> int:
    """Replay the cases on wgpu-native (checks the replay itself, and the kernels)."""
    import asyncio

    from .native import NativeDevice

    cases = build_cases()
    report = asyncio.run(run(NativeDevice(), cases, log=print))
    print(json.dumps({k: v for k, v in report.items() if k != "failures"}))
    for f in report["failures"]:
        print("FAIL", f)
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())

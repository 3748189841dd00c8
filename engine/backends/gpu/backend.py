"""GpuBackend: every primitive of the Backend protocol as WGSL compute kernels on a Device.

Arrays are `GpuArray`s: contiguous, 32-bit elements (see `array.logical_dtype` for how
float64/int64/bool map onto them). Nothing is read back until `to_numpy`; every other
method only records dispatches on the Device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .array import BOOL, F32, I32, GpuArray, Storage, logical_dtype
from .device import Device, Kernel, Params

Pair = tuple[int, int]
WG = 256  # invocations per workgroup of the 1-D kernels (their WGSL default)
MAX_GROUPS = 65535

_UNARY = {op: i for i, op in enumerate(
    ("neg", "exp", "log", "sqrt", "abs", "sign", "relu", "tanh", "sigmoid", "erf"))}
_INT_UNARY = ("neg", "abs", "sign", "relu")
_BINARY = {op: i for i, op in enumerate(
    ("add", "sub", "mul", "div", "pow", "maximum", "minimum",
     "gt", "ge", "lt", "le", "eq", "ne"))}
_COMPARE = ("gt", "ge", "lt", "le", "eq", "ne")
_REDUCE = {"sum": 0, "max": 1, "min": 2}
F32_DT = np.dtype(np.float32)
I64_DT = np.dtype(np.int64)
BOOL_DT = np.dtype(bool)


def _contig(shape: Sequence[int]) -> list[int]:
    """Row-major element strides."""
    out, acc = [], 1
    for s in reversed(shape):
        out.append(acc)
        acc *= s
    return out[::-1]


def _coalesce(shape: Sequence[int], *strides: Sequence[int]) -> tuple[list[int], list[list[int]]]:
    """Drop size-1 dims and merge neighbours that are contiguous in every stride list."""
    dims: list[tuple[int, list[int]]] = []
    for i, s in enumerate(shape):
        if s == 1:
            continue
        st = [x[i] for x in strides]
        if dims and all(p == c * s for p, c in zip(dims[-1][1], st)):
            dims[-1] = (dims[-1][0] * s, st)
        else:
            dims.append((s, st))
    return [d[0] for d in dims], [[d[1][k] for d in dims] for k in range(len(strides))]


def _bcast_strides(shape: Sequence[int], out_shape: Sequence[int]) -> list[int]:
    """Element strides of a contiguous `shape` read as `out_shape` (0 on broadcast dims)."""
    st = _contig(shape)
    lead = len(out_shape) - len(shape)
    return [0] * lead + [0 if s == 1 and o != 1 else t
                         for s, t, o in zip(shape, st, out_shape[lead:])]


def _resolve_shape(size: int, shape: Sequence[int]) -> tuple[int, ...]:
    shape = [int(s) for s in shape]
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        shape[shape.index(-1)] = size // known if known else 0
    if math.prod(shape) != size:
        raise ValueError(f"cannot reshape array of size {size} into shape {tuple(shape)}")
    return tuple(shape)


def _view(shape: Sequence[int], index: tuple) -> tuple[tuple[int, ...], list[int], int]:
    """(shape, element strides, element offset) of a basic-indexing view of a contiguous
    array, computed by NumPy on a fake strided array (no memory is touched)."""
    base = np.zeros(1, dtype=np.int32)
    probe = as_strided(base, shape=tuple(shape),
                       strides=tuple(4 * s for s in _contig(shape)), writeable=False)
    v = probe[index]
    offset = (v.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // 4
    return v.shape, [s // 4 for s in v.strides], offset


def _is_advanced(index: tuple) -> bool:
    return any(isinstance(i, (np.ndarray, list)) for i in index)


def _grid(n: int) -> tuple[int, int, int]:
    """Workgroups covering n items, 2-D when one dimension is not enough."""
    g = max(1, -(-n // WG))
    if g <= MAX_GROUPS:
        return g, 1, 1
    return MAX_GROUPS, -(-g // MAX_GROUPS), 1


def _grid_groups(g: int) -> tuple[int, int, int]:
    """A 2-D grid of at least g workgroups (kernels index them as x + y * nx)."""
    if g <= MAX_GROUPS:
        return max(g, 1), 1, 1
    return MAX_GROUPS, -(-g // MAX_GROUPS), 1


def _pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def _tiles(M: int, N: int, batch: int) -> tuple[int, int, int]:
    """(BM, BN, BK) for the tiled GEMM kernels: the tile follows the matrix' shape, so a
    thin product (few output channels, a single input channel) does not waste most of a
    64 x 64 tile, within 256 invocations (BM * BN / 16) and 16 KiB of workgroup memory
    (4 * BK * (BM + BN) bytes)."""
    bm, bn = min(64, max(4, _pow2(M))), min(64, max(4, _pow2(N)))
    while bm * bn < 4096 and bn < min(256, _pow2(N)):
        bn *= 2
    while bm * bn < 4096 and bm < min(256, _pow2(M)):
        bm *= 2
    if bm == bn == 64 and -(-M // 64) * -(-N // 64) * batch < 16:
        bm = bn = 32  # more, smaller workgroups when the product is small
    return bm, bn, 16 if bm + bn <= 256 else 8


def _conv_out(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _pair(v: Any) -> Pair:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def host_array(a: GpuArray, raw: bytes) -> np.ndarray:
    """The host copy of `a` from the bytes read back from its buffer."""
    host = np.frombuffer(raw, dtype=a.storage_dtype, count=a.size).reshape(a.shape)
    return host.astype(a.dtype) if host.dtype != a.dtype else host.copy()


class GpuBackend:
    """The Backend protocol on a GPU `Device` (by default wgpu-py's `NativeDevice`)."""

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

    # -- internals -----------------------------------------------------------------------
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

    def _copy_strided(self, src: GpuArray | Storage, src_off: int, src_st: Sequence[int],
                      dst: GpuArray, dst_off: int, dst_st: Sequence[int],
                      shape: Sequence[int]) -> None:
        n = math.prod(shape)
        if n == 0:
            return
        shp, (ss, ds) = _coalesce(shape, src_st, dst_st)
        sst = src.storage if isinstance(src, GpuArray) else src
        if not shp or (len(shp) == 1 and ss[0] == 1 and ds[0] == 1):
            self.dev.copy(sst.buffer, 4 * src_off, dst.storage.buffer, 4 * dst_off, 4 * n)
            return
        p = (Params().u(n, len(shp), 0, 0).i(src_off, dst_off, 0, 0).vec8(shp)
             .vec8(ss, signed=True).vec8(ds, signed=True))
        self._run("movement", "copy_strided", "wr", p, [dst, sst], _grid(n))

    def _fill(self, out: GpuArray, value: float | int | bool) -> GpuArray:
        if out.size == 0:
            return out
        bits = int(np.array(value, dtype=out.storage_dtype).view(np.int32))
        p = Params().u(out.size, 0).i(bits, 0).f(0, 0, 0, 0)
        self._run("elementwise", "fill", "w", p, [out], _grid(out.size))
        return out

    # -- transfer and creation ---------------------------------------------------------
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

    def full(self, shape: Sequence[int], value: float, dtype: Any) -> GpuArray:
        return self._fill(self._new(shape, logical_dtype(dtype)), value)

    def astype(self, a: GpuArray, dtype: Any) -> GpuArray:
        dt = logical_dtype(dtype)
        out = self._new(a.shape, dt)
        if a.size == 0:
            return out
        if out.kind == a.kind:
            self.dev.copy(a.storage.buffer, 0, out.storage.buffer, 0, 4 * a.size)
        else:
            self._elementwise("astype", out, a=a)
        return out

    # -- elementwise ---------------------------------------------------------------------
    def _elementwise(self, entry: str, out: GpuArray, a: Any = None, b: Any = None,
                     c: GpuArray | None = None, op: int = 0, int_math: bool = False,
                     lo: float | None = None, hi: float | None = None) -> GpuArray:
        """Launch an elementwise.wgsl entry point; a and b may be Python scalars."""
        n = out.size
        if n == 0:
            return out
        operands = [x for x in (a, b, c) if isinstance(x, GpuArray)]
        bcast = any(x.shape != out.shape for x in operands)
        shape: list[int] = list(out.shape)
        strides = [_bcast_strides(x.shape, out.shape) if isinstance(x, GpuArray)
                   else [0] * out.ndim for x in (a, b, c)]
        if bcast:
            shape, strides = _coalesce(out.shape, _contig(out.shape), *strides)
            strides = strides[1:]
        sa = a if not isinstance(a, GpuArray) and a is not None else 0
        sb = b if not isinstance(b, GpuArray) and b is not None else 0
        p = (Params().u(n, len(shape)).i(int(sa), int(sb))
             .f(float(sa), float(sb), 0.0 if lo is None else lo, 0.0 if hi is None else hi)
             .vec8(shape if bcast else []).vec8(strides[0] if bcast else [])
             .vec8(strides[1] if bcast else []).vec8(strides[2] if bcast else []))

        def kind(x: Any) -> int:
            return x.kind if isinstance(x, GpuArray) else F32

        arrays: list[Any] = [out, a if isinstance(a, GpuArray) else None]
        bindings = "wr"
        if entry in ("binary", "select_"):
            arrays.append(b if isinstance(b, GpuArray) else None)
            bindings += "r"
        if entry == "select_":
            arrays.append(c)
            bindings += "r"
        self._run("elementwise", entry, bindings, p, arrays, _grid(n), OP=op,
                  KIND_A=kind(a), KIND_B=kind(b), KIND_C=kind(c), KIND_OUT=out.kind,
                  INT_MATH=int_math, BCAST=bcast,
                  SCALAR_A=a is not None and not isinstance(a, GpuArray),
                  SCALAR_B=b is not None and not isinstance(b, GpuArray),
                  HAS_LO=lo is not None, HAS_HI=hi is not None)
        return out

    def unary(self, op: str, a: GpuArray) -> GpuArray:
        if op not in _UNARY:
            raise ValueError(f"unknown unary op {op!r}; expected one of {tuple(_UNARY)}")
        a = self._arr(a)
        int_math = a.kind != F32 and op in _INT_UNARY
        dt = a.dtype if int_math else F32_DT
        if a.kind == BOOL and int_math:
            dt = I64_DT if op != "abs" else BOOL_DT
        return self._elementwise("unary", self._new(a.shape, dt), a=a, op=_UNARY[op],
                                 int_math=int_math)

    @staticmethod
    def _scalar_type(x: Any) -> Any:
        return x.dtype if isinstance(x, GpuArray) else x

    def binary(self, op: str, a: Any, b: Any) -> GpuArray:
        if op not in _BINARY:
            raise ValueError(f"unknown binary op {op!r}; expected one of {tuple(_BINARY)}")
        if not isinstance(a, GpuArray):
            a = a if isinstance(a, (int, float, bool, np.generic)) else self._arr(a)
        if not isinstance(b, GpuArray):
            b = b if isinstance(b, (int, float, bool, np.generic)) else self._arr(b)
        if isinstance(a, np.generic):
            a = a.item()
        if isinstance(b, np.generic):
            b = b.item()
        shapes = [x.shape for x in (a, b) if isinstance(x, GpuArray)]
        try:
            out_shape = np.broadcast_shapes(*shapes)
        except ValueError:
            raise ValueError(f"{op}: shapes {shapes[0]} and {shapes[1]} cannot be broadcast "
                             "together") from None
        rt = np.result_type(self._scalar_type(a), self._scalar_type(b))
        is_int = rt.kind in "iub"
        if op in _COMPARE:
            dt, int_math = BOOL_DT, is_int
        elif op == "div" and is_int:
            dt, int_math = F32_DT, False
        else:
            dt, int_math = logical_dtype(rt), is_int
        return self._elementwise("binary", self._new(out_shape, dt), a=a, b=b,
                                 op=_BINARY[op], int_math=int_math)

    def where(self, cond: Any, a: Any, b: Any) -> GpuArray:
        cond = self._arr(cond)
        if isinstance(a, np.ndarray):
            a = self._arr(a)
        if isinstance(b, np.ndarray):
            b = self._arr(b)
        if isinstance(a, GpuArray):
            dt = a.dtype
        elif isinstance(b, GpuArray):
            dt = b.dtype
        else:
            dt = logical_dtype(np.result_type(a, b))
        shapes = [x.shape for x in (cond, a, b) if isinstance(x, GpuArray)]
        out = self._new(np.broadcast_shapes(*shapes), dt)
        return self._elementwise("select_", out, a=a, b=b, c=cond,
                                 int_math=out.kind != F32)

    def clip(self, a: GpuArray, lo: float | None, hi: float | None) -> GpuArray:
        a = self._arr(a)
        return self._elementwise("clip", self._new(a.shape, a.dtype), a=a,
                                 int_math=a.kind != F32, lo=lo, hi=hi)

    # -- reductions ----------------------------------------------------------------------
    def _axes(self, axes: Sequence[int], ndim: int) -> tuple[int, ...]:
        return tuple(sorted({int(x) % ndim for x in axes})) if ndim else ()

    def _as_alc(self, a: GpuArray, axes: tuple[int, ...]) -> tuple[GpuArray, int, int, int]:
        """View `a` as contiguous (A, L, C) with the `axes` merged into L (permuting a copy
        when the reduced axes are not one block)."""
        groups: list[list[Any]] = []  # [reduced?, size]
        for i, s in enumerate(a.shape):
            if s == 1:
                continue
            red = i in axes
            if groups and groups[-1][0] == red:
                groups[-1][1] *= s
            else:
                groups.append([red, s])
        kinds = [g[0] for g in groups]
        sizes = [g[1] for g in groups]
        if not groups:
            return a, 1, 1, 1
        if kinds == [True]:
            return a, 1, sizes[0], 1
        if kinds == [False]:
            return a, sizes[0], 1, 1
        if kinds == [False, True]:
            return a, sizes[0], sizes[1], 1
        if kinds == [True, False]:
            return a, 1, sizes[0], sizes[1]
        if kinds == [False, True, False]:
            return a, sizes[0], sizes[1], sizes[2]
        kept = [i for i in range(a.ndim) if i not in axes]
        moved = self.permute(a, kept + list(axes))
        n_kept = math.prod(a.shape[i] for i in kept)
        return moved, n_kept, a.size // max(n_kept, 1), 1

    def _reduce_alc(self, op: str, x: GpuArray, A: int, L: int, C: int,
                    out: GpuArray) -> None:
        int_math = x.kind != F32
        if C == 1 and L > 64:
            nch = 1
            if A < 128 and L >= 8192:
                nch = min(-(-L // 2048), max(1, 256 // A))
            chunk = -(-L // nch)
            dst = out if nch == 1 else self._new((A, nch), I64_DT if int_math else F32_DT)
            p = Params().u(A, L, 1, nch).u(chunk, 0, 0, 0)
            self._run("reduce", "reduce_rows", "wr", p, [dst, x], _grid_groups(A * nch),
                      OP=_REDUCE[op], KIND_IN=x.kind, KIND_OUT=dst.kind, INT_MATH=int_math)
            if nch > 1:
                self._reduce_alc(op, dst, A, nch, 1, out)
            return
        p = Params().u(A, L, C, 1).u(L, 0, 0, 0)
        self._run("reduce", "reduce_strided", "wr", p, [out, x], _grid(A * C),
                  OP=_REDUCE[op], KIND_IN=x.kind, KIND_OUT=out.kind, INT_MATH=int_math)

    def reduce(self, op: str, a: GpuArray, axes: Sequence[int], keepdims: bool) -> GpuArray:
        if op not in _REDUCE:
            raise ValueError(f"unknown reduction {op!r}; expected sum, max or min")
        a = self._arr(a)
        axes = self._axes(axes, a.ndim)
        if op == "sum":
            dt = F32_DT if a.kind == F32 else I64_DT
        else:
            dt = a.dtype
        kept = tuple(1 if i in axes else s for i, s in enumerate(a.shape))
        shape = kept if keepdims else tuple(s for i, s in enumerate(a.shape) if i not in axes)
        out = self._new(shape, dt)
        if out.size == 0:
            return out
        if a.size == 0:
            if op != "sum":
                raise ValueError(f"zero-size array to reduction operation {op} which has no "
                                 "identity")
            return self._fill(out, 0)
        x, A, L, C = self._as_alc(a, axes)
        self._reduce_alc(op, x, A, L, C, out)
        return out

    def argmax(self, a: GpuArray, axis: int) -> GpuArray:
        a = self._arr(a)
        axis = int(axis) % a.ndim
        A = math.prod(a.shape[:axis])
        L = a.shape[axis]
        C = math.prod(a.shape[axis + 1:])
        out = self._new(a.shape[:axis] + a.shape[axis + 1:], I64_DT)
        if out.size == 0:
            return out
        if L == 0:
            raise ValueError("attempt to get argmax of an empty sequence")
        p = Params().u(A, L, C, 1).u(L, 0, 0, 0)
        if C == 1 and L > 64:
            self._run("reduce", "argmax_rows", "wr", p, [out, a], _grid_groups(A),
                      KIND_IN=a.kind)
        else:
            self._run("reduce", "argmax_strided", "wr", p, [out, a], _grid(A * C),
                      KIND_IN=a.kind)
        return out

    # -- linear algebra ------------------------------------------------------------------
    def _batched(self, a: GpuArray, batch: tuple[int, ...]) -> tuple[GpuArray, int]:
        """(array, batch stride) for reading `a` at every index of the broadcast batch."""
        own = a.shape[:-2]
        mat = a.shape[-2] * a.shape[-1]
        if math.prod(own) <= 1:
            return a, 0
        if tuple(own) == tuple(batch[len(batch) - len(own):]) and \
                math.prod(own) == math.prod(batch):
            return a, mat
        return self.broadcast_to(a, tuple(batch) + tuple(a.shape[-2:])), mat

    def matmul(self, a: GpuArray, b: GpuArray, trans_a: bool = False,
               trans_b: bool = False, kernel: str = "tiled") -> GpuArray:
        """`kernel="naive"` selects the reference kernel (benchmarks only)."""
        a, b = self._arr(a), self._arr(b)
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError(f"matmul: operands need 2+ dims, got {a.shape} and {b.shape}")
        if a.kind != F32 or b.kind != F32:
            a = a if a.kind == F32 else self.astype(a, F32_DT)
            b = b if b.kind == F32 else self.astype(b, F32_DT)
        M, K = (a.shape[-1], a.shape[-2]) if trans_a else a.shape[-2:]
        K2, N = (b.shape[-1], b.shape[-2]) if trans_b else b.shape[-2:]
        if K != K2:
            raise ValueError(f"matmul: shapes {a.shape}{'ᵀ' if trans_a else ''} and "
                             f"{b.shape}{'ᵀ' if trans_b else ''} do not align ({K} != {K2})")
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        out = self._new(tuple(batch) + (M, N), F32_DT)
        if out.size == 0:
            return out
        if K == 0:
            return self._fill(out, 0.0)
        a, sa = self._batched(a, batch)
        b, sb = self._batched(b, batch)
        nb = math.prod(batch)
        for z0 in range(0, nb, MAX_GROUPS):
            nz = min(MAX_GROUPS, nb - z0)
            p = Params().u(M, N, K, z0).u(sa, sb, M * N, 0)
            if kernel == "naive":
                self._run("matmul", "naive", "wrr", p, [out, a, b],
                          (-(-N // 16), -(-M // 16), nz), TRANS_A=trans_a, TRANS_B=trans_b)
                continue
            bm, bn, bk = _tiles(M, N, nb)
            self._run("matmul", "tiled", "wrr", p, [out, a, b],
                      (-(-N // bn), -(-M // bm), nz), TRANS_A=trans_a, TRANS_B=trans_b,
                      BM=bm, BN=bn, BK=bk)
        return out

    # -- movement ------------------------------------------------------------------------
    def reshape(self, a: GpuArray, shape: Sequence[int]) -> GpuArray:
        a = self._arr(a)
        return GpuArray(a.storage, _resolve_shape(a.size, shape), a.dtype)

    def permute(self, a: GpuArray, axes: Sequence[int]) -> GpuArray:
        a = self._arr(a)
        axes = [int(x) % a.ndim for x in axes] if a.ndim else []
        if sorted(axes) != list(range(a.ndim)):
            raise ValueError(f"permute: {tuple(axes)} is not a permutation of {a.ndim} dims")
        shape = [a.shape[i] for i in axes]
        out = self._new(shape, a.dtype)
        st = _contig(a.shape)
        self._copy_strided(a, 0, [st[i] for i in axes], out, 0, _contig(shape), shape)
        return out

    def broadcast_to(self, a: GpuArray, shape: Sequence[int]) -> GpuArray:
        a = self._arr(a)
        shape = tuple(int(s) for s in shape)
        if np.broadcast_shapes(a.shape, shape) != shape:
            raise ValueError(f"broadcast_to: cannot broadcast {a.shape} to {shape}")
        if shape == a.shape:
            return a
        out = self._new(shape, a.dtype)
        self._copy_strided(a, 0, _bcast_strides(a.shape, shape), out, 0, _contig(shape), shape)
        return out

    def _upload_index(self, idx: np.ndarray) -> GpuArray:
        return self.from_numpy(np.ascontiguousarray(idx, dtype=np.int32))

    def getitem(self, a: GpuArray, index: tuple) -> GpuArray:
        a = self._arr(a)
        if not isinstance(index, tuple):
            index = (index,)
        if _is_advanced(index):
            flat = np.arange(a.size, dtype=np.int64).reshape(a.shape)[index]
            out = self._new(flat.shape, a.dtype)
            if out.size:
                idx = self._upload_index(flat.reshape(-1))
                p = Params().u(out.size, 0, 0, 0).i(0, 0, 0, 0)
                self._run("movement", "gather", "wrr", p.vec8([]).vec8([]).vec8([]),
                          [out, a, idx], _grid(out.size))
            return out
        shape, strides, offset = _view(a.shape, index)
        out = self._new(shape, a.dtype)
        self._copy_strided(a, offset, strides, out, 0, _contig(shape), shape)
        return out

    def index_add(self, shape: Sequence[int], index: tuple, values: GpuArray) -> GpuArray:
        values = self._arr(values)
        shape = tuple(int(s) for s in shape)
        if not isinstance(index, tuple):
            index = (index,)
        if values.kind != F32:
            res = self.index_add(shape, index, self.astype(values, F32_DT))
            return self.astype(res, values.dtype)
        out = self._new(shape, values.dtype)
        if not _is_advanced(index):
            vshape, vstrides, offset = _view(shape, index)
            self._fill(out, 0.0)
            self._copy_strided(values, 0, _bcast_strides(values.shape, vshape), out, offset,
                               vstrides, vshape)
            return out
        flat = np.arange(out.size, dtype=np.int64).reshape(shape)[index]
        if values.shape != flat.shape:
            values = self.broadcast_to(values, flat.shape)
        flat = flat.reshape(-1)
        order = np.argsort(flat, kind="stable")
        starts = np.zeros(out.size + 1, dtype=np.int64)
        np.cumsum(np.bincount(flat, minlength=out.size), out=starts[1:])
        p = Params().u(out.size, 0, 0, 0).i(0, 0, 0, 0).vec8([]).vec8([]).vec8([])
        self._run("movement", "segment_sum", "wrrr", p,
                  [out, values, self._upload_index(order), self._upload_index(starts)],
                  _grid(out.size))
        return out

    def _along(self, entry: str, out: GpuArray, src: GpuArray, idx: GpuArray, axis: int,
               length: int) -> GpuArray:
        if out.size == 0:
            return out
        if idx.kind != I32:
            idx = self.astype(idx, I64_DT)
        p = (Params().u(out.size, out.ndim, axis, length).i(0, 0, 0, 0).vec8(out.shape)
             .vec8(self._along_strides(src.shape, out.shape, axis), signed=True)
             .vec8(self._along_strides(idx.shape, out.shape, axis), signed=True))
        self._run("movement", entry, "wrr", p, [out, src, idx], _grid(out.size))
        return out

    @staticmethod
    def _along_strides(shape: Sequence[int], out_shape: Sequence[int], axis: int) -> list[int]:
        st = _contig(shape)
        return [t if (d == axis or s != 1 or o == 1) else 0
                for d, (s, t, o) in enumerate(zip(shape, st, out_shape))]

    def take_along(self, a: GpuArray, idx: GpuArray, axis: int) -> GpuArray:
        a, idx = self._arr(a), self._arr(idx)
        axis = int(axis) % a.ndim
        if idx.ndim != a.ndim:
            raise ValueError(f"take_along: index has {idx.ndim} dims, array has {a.ndim}")
        shape = tuple(idx.shape[d] if d == axis else max(a.shape[d], idx.shape[d])
                      for d in range(a.ndim))
        return self._along("take_along", self._new(shape, a.dtype), a, idx, axis,
                           a.shape[axis])

    def put_along(self, shape: Sequence[int], idx: GpuArray, values: GpuArray,
                  axis: int) -> GpuArray:
        idx, values = self._arr(idx), self._arr(values)
        shape = tuple(int(s) for s in shape)
        axis = int(axis) % len(shape)
        if values.kind != F32:
            res = self.put_along(shape, idx, self.astype(values, F32_DT), axis)
            return self.astype(res, values.dtype)
        if values.shape != idx.shape:
            values = self.broadcast_to(values, np.broadcast_shapes(values.shape, idx.shape))
        return self._along("put_along", self._new(shape, values.dtype), values, idx, axis,
                           idx.shape[axis])

    def gather_rows(self, table: GpuArray, idx: GpuArray) -> GpuArray:
        table, idx = self._arr(table), self._arr(idx)
        if idx.kind != I32:
            idx = self.astype(idx, I64_DT)
        d = math.prod(table.shape[1:])
        out = self._new(idx.shape + table.shape[1:], table.dtype)
        if out.size == 0:
            return out
        p = Params().u(idx.size, d, table.shape[0], 0)
        self._run("embedding", "gather_rows", "wrr", p, [out, table, idx], _grid(out.size))
        return out

    def scatter_rows_add(self, n_rows: int, idx: GpuArray, values: GpuArray) -> GpuArray:
        idx, values = self._arr(idx), self._arr(values)
        if idx.kind != I32:
            idx = self.astype(idx, I64_DT)
        if values.kind != F32:
            values = self.astype(values, F32_DT)
        d = values.shape[-1] if values.ndim else 1
        out = self._new((int(n_rows), d), values.dtype)
        if out.size == 0:
            return out
        p = Params().u(idx.size, d, int(n_rows), 0)
        self._run("embedding", "scatter_rows_add", "wrr", p, [out, values, idx],
                  _grid(out.size))
        return out

    def pad(self, a: GpuArray, widths: Sequence[tuple[int, int]],
            value: float = 0.0) -> GpuArray:
        a = self._arr(a)
        widths = [(int(lo), int(hi)) for lo, hi in widths]
        if len(widths) != a.ndim or any(lo < 0 or hi < 0 for lo, hi in widths):
            raise ValueError(f"pad: need one non-negative (before, after) pair per dim of "
                             f"{a.shape}, got {widths}")
        shape = [s + lo + hi for s, (lo, hi) in zip(a.shape, widths)]
        out = self._fill(self._new(shape, a.dtype), value)
        st = _contig(shape)
        off = sum(lo * s for (lo, _), s in zip(widths, st))
        self._copy_strided(a, 0, _contig(a.shape), out, off, st, a.shape)
        return out

    def concat(self, arrays: Sequence[GpuArray], axis: int) -> GpuArray:
        arrays = [self._arr(x) for x in arrays]
        first = arrays[0]
        axis = int(axis) % first.ndim
        for x in arrays[1:]:
            if x.ndim != first.ndim or any(s != t for i, (s, t) in
                                           enumerate(zip(x.shape, first.shape)) if i != axis):
                raise ValueError(f"concat: shapes {first.shape} and {x.shape} differ outside "
                                 f"axis {axis}")
        shape = list(first.shape)
        shape[axis] = sum(x.shape[axis] for x in arrays)
        dt = np.result_type(*[x.dtype for x in arrays])
        out = self._new(shape, logical_dtype(dt))
        st = _contig(shape)
        start = 0
        for x in arrays:
            if x.dtype != out.dtype:
                x = self.astype(x, out.dtype)
            self._copy_strided(x, 0, _contig(x.shape), out, start * st[axis], st, x.shape)
            start += x.shape[axis]
        return out

    # -- convolution and pooling ---------------------------------------------------------
    def _conv_gemm(self, mode: int, out: GpuArray, x_op: GpuArray, y_op: GpuArray,
                   geom: dict[str, int], M: int, N: int, K: int, groups: int,
                   splits: int = 1) -> None:
        g = geom
        p = Params().u(M, N, K, -(-K // splits))
        bm, bn, bk = _tiles(M, N, groups * splits)
        self._run("conv2d", "main", "wrr", p, [out, x_op, y_op],
                  (-(-N // bn), -(-M // bm), groups * splits), MODE=mode, BM=bm, BN=bn, BK=bk,
                  GROUPS=groups, SPLITS=splits, C_IN=g["c"], H=g["h"], W=g["w"],
                  C_OUT=g["co"], HO=g["ho"], WO=g["wo"], KH=g["kh"], KW=g["kw"], SH=g["sh"],
                  SW=g["sw"], DH=g["dh"], DW=g["dw"], PH=g["ph"], PW=g["pw"])

    def _conv_geom(self, x_shape: Sequence[int], w_shape: Sequence[int], stride: Pair,
                   pad: Pair, dilation: Pair, groups: int) -> dict[str, int]:
        n, c, h, w = (int(s) for s in x_shape)
        co, cg, kh, kw = (int(s) for s in w_shape)
        stride, pad, dilation = _pair(stride), _pair(pad), _pair(dilation)
        if c != cg * groups or co % groups:
            raise ValueError(f"conv2d: input has {c} channels and weight {tuple(w_shape)} "
                             f"with groups={groups}; need C_in == weight.shape[1] * groups and "
                             "C_out divisible by groups")
        ho = _conv_out(h, kh, stride[0], pad[0], dilation[0])
        wo = _conv_out(w, kw, stride[1], pad[1], dilation[1])
        if ho <= 0 or wo <= 0:
            raise ValueError(f"conv2d: kernel {(kh, kw)} (dilation {dilation}) does not fit "
                             f"input {(h, w)} with padding {pad}")
        return dict(n=n, c=c, h=h, w=w, co=co, cg=cg, kh=kh, kw=kw, ho=ho, wo=wo,
                    sh=stride[0], sw=stride[1], ph=pad[0], pw=pad[1], dh=dilation[0],
                    dw=dilation[1])

    def conv2d(self, x: GpuArray, w: GpuArray, stride: Pair, pad: Pair, dilation: Pair,
               groups: int) -> GpuArray:
        x, w = self._arr(x), self._arr(w)
        g = self._conv_geom(x.shape, w.shape, stride, pad, dilation, groups)
        out = self._new((g["n"], g["co"], g["ho"], g["wo"]), F32_DT)
        M, N, K = g["co"] // groups, g["n"] * g["ho"] * g["wo"], g["cg"] * g["kh"] * g["kw"]
        self._conv_gemm(0, out, x, w, g, M, N, K, groups)
        return out

    def conv2d_grad_input(self, gy: GpuArray, w: GpuArray, x_shape: Sequence[int],
                          stride: Pair, pad: Pair, dilation: Pair, groups: int) -> GpuArray:
        gy, w = self._arr(gy), self._arr(w)
        g = self._conv_geom(x_shape, w.shape, stride, pad, dilation, groups)
        g["ho"], g["wo"] = gy.shape[2], gy.shape[3]  # as given (transposed convolutions)
        out = self._new(tuple(int(s) for s in x_shape), F32_DT)
        M, N = g["cg"], g["n"] * g["h"] * g["w"]
        K = (g["co"] // groups) * g["kh"] * g["kw"]
        self._conv_gemm(1, out, gy, w, g, M, N, K, groups)
        return out

    def conv2d_grad_weight(self, gy: GpuArray, x: GpuArray, w_shape: Sequence[int],
                           stride: Pair, pad: Pair, dilation: Pair, groups: int) -> GpuArray:
        gy, x = self._arr(gy), self._arr(x)
        g = self._conv_geom(x.shape, w_shape, stride, pad, dilation, groups)
        M, N = g["co"] // groups, g["cg"] * g["kh"] * g["kw"]
        K = g["n"] * g["ho"] * g["wo"]
        bm, bn, _ = _tiles(M, N, groups)
        tiles = -(-M // bm) * -(-N // bn) * groups
        # split-K: long reductions (batch * pixels) over few output tiles get more workgroups
        splits = max(1, min(K // 512, 64 // tiles if tiles < 64 else 1))
        wshape = tuple(int(s) for s in w_shape)
        if splits == 1:
            out = self._new(wshape, F32_DT)
            self._conv_gemm(2, out, gy, x, g, M, N, K, groups)
            return out
        part = self._new((splits, math.prod(wshape)), F32_DT)
        self._conv_gemm(2, part, gy, x, g, M, N, K, groups, splits)
        return self.reshape(self.reduce("sum", part, (0,), False), wshape)

    def _pool_geom(self, x_shape: Sequence[int], kernel: Pair, stride: Pair, pad: Pair,
                   dilation: Pair) -> tuple[Params, dict[str, int], tuple[int, int]]:
        """Uniform parameters, specialisation constants and output size of a pooling."""
        n, c, h, w = (int(s) for s in x_shape)
        kernel, stride, pad, dilation = (_pair(kernel), _pair(stride), _pair(pad),
                                         _pair(dilation))
        ho = _conv_out(h, kernel[0], stride[0], pad[0], dilation[0])
        wo = _conv_out(w, kernel[1], stride[1], pad[1], dilation[1])
        if ho <= 0 or wo <= 0:
            raise ValueError(f"pool: window {kernel} does not fit input {(h, w)} with padding "
                             f"{pad}")
        consts = dict(H=h, W=w, HO=ho, WO=wo, KH=kernel[0], KW=kernel[1], SH=stride[0],
                      SW=stride[1], DH=dilation[0], DW=dilation[1], PH=pad[0], PW=pad[1])
        return Params().u(n * c, 0, 0, 0), consts, (ho, wo)

    def maxpool2d(self, x: GpuArray, kernel: Pair, stride: Pair, pad: Pair,
                  dilation: Pair) -> tuple[GpuArray, GpuArray]:
        x = self._arr(x)
        p, consts, (ho, wo) = self._pool_geom(x.shape, kernel, stride, pad, dilation)
        shape = (x.shape[0], x.shape[1], ho, wo)
        out = self._new(shape, F32_DT)
        geom = (_pair(kernel), _pair(stride), _pair(pad), _pair(dilation))
        arg = self._new(shape, np.int32, meta=geom)
        if out.size:
            self._run("pooling", "maxpool", "wrw", p, [out, x, arg], _grid(out.size), **consts)
        return out, arg

    def maxpool2d_grad(self, gy: GpuArray, argmax: GpuArray,
                       x_shape: Sequence[int]) -> GpuArray:
        gy, argmax = self._arr(gy), self._arr(argmax)
        out = self._new(tuple(int(s) for s in x_shape), F32_DT)
        if out.size == 0:
            return out
        n, c, h, w = out.shape
        ho, wo = gy.shape[2], gy.shape[3]
        if isinstance(argmax.meta, tuple):  # windows known: gather over the covering taps
            kernel, stride, pad, dilation = argmax.meta
            p, consts, _ = self._pool_geom(x_shape, kernel, stride, pad, dilation)
            self._run("pooling", "maxpool_grad", "wrw", p, [out, gy, argmax], _grid(out.size),
                      **consts)
        else:  # e.g. an argmax uploaded from the host: scan the whole output plane
            self._run("pooling", "maxpool_grad_scan", "wrw", Params().u(n * c, 0, 0, 0),
                      [out, gy, argmax], _grid(out.size), H=h, W=w, HO=ho, WO=wo)
        return out

    def avgpool2d(self, x: GpuArray, kernel: Pair, stride: Pair, pad: Pair,
                  count_include_pad: bool) -> GpuArray:
        x = self._arr(x)
        p, consts, (ho, wo) = self._pool_geom(x.shape, kernel, stride, pad, (1, 1))
        out = self._new((x.shape[0], x.shape[1], ho, wo), F32_DT)
        if out.size:
            self._run("pooling", "avgpool", "wr", p, [out, x], _grid(out.size),
                      INCLUDE_PAD=bool(count_include_pad), **consts)
        return out

    def avgpool2d_grad(self, gy: GpuArray, x_shape: Sequence[int], kernel: Pair,
                       stride: Pair, pad: Pair, count_include_pad: bool) -> GpuArray:
        gy = self._arr(gy)
        p, consts, _ = self._pool_geom(x_shape, kernel, stride, pad, (1, 1))
        out = self._new(tuple(int(s) for s in x_shape), F32_DT)
        if out.size:
            self._run("pooling", "avgpool_grad", "wr", p, [out, gy], _grid(out.size),
                      INCLUDE_PAD=bool(count_include_pad), **consts)
        return out

    # -- fused numerics ------------------------------------------------------------------
    def _softmax(self, a: GpuArray, axis: int, log: bool) -> GpuArray:
        a = self._arr(a)
        if a.kind != F32:
            a = self.astype(a, F32_DT)
        axis = int(axis) % a.ndim
        A = math.prod(a.shape[:axis])
        L = a.shape[axis]
        C = math.prod(a.shape[axis + 1:])
        out = self._new(a.shape, F32_DT)
        if out.size == 0:
            return out
        p = Params().u(A, L, C, 0)
        if C == 1 and L > 64:
            self._run("softmax", "softmax_rows", "wr", p, [out, a], _grid_groups(A), LOG=log)
        else:
            self._run("softmax", "softmax_strided", "wr", p, [out, a], _grid(A * C), LOG=log)
        return out

    def softmax(self, a: GpuArray, axis: int) -> GpuArray:
        return self._softmax(a, axis, False)

    def log_softmax(self, a: GpuArray, axis: int) -> GpuArray:
        return self._softmax(a, axis, True)

    def _bn_view(self, x: GpuArray, axes: Sequence[int]) -> tuple[int, int, int] | None:
        """(A, K, B) when the kept (channel) axes form one block, else None."""
        axes = self._axes(axes, x.ndim)
        kept = [i for i in range(x.ndim) if i not in axes]
        if kept and kept != list(range(kept[0], kept[-1] + 1)):
            return None
        if not kept:
            return 1, 1, x.size
        A = math.prod(x.shape[:kept[0]])
        K = math.prod(x.shape[kept[0]:kept[-1] + 1])
        return A, K, math.prod(x.shape[kept[-1] + 1:])

    def _bn_permuted(self, x: GpuArray, axes: Sequence[int]) -> tuple[list[int], list[int]]:
        axes = list(self._axes(axes, x.ndim))
        kept = [i for i in range(x.ndim) if i not in axes]
        perm = kept + axes
        inv = [perm.index(i) for i in range(x.ndim)]
        return perm, inv

    def batch_norm_train(self, x: GpuArray, gamma: GpuArray, beta: GpuArray,
                         axes: tuple[int, ...], eps: float) -> tuple[GpuArray, GpuArray, GpuArray]:
        x, gamma, beta = self._arr(x), self._arr(gamma), self._arr(beta)
        view = self._bn_view(x, axes)
        if view is None:
            perm, inv = self._bn_permuted(x, axes)
            n_kept = x.ndim - len(self._axes(axes, x.ndim))
            y, mean, invstd = self.batch_norm_train(self.permute(x, perm), gamma, beta,
                                                    tuple(range(n_kept, x.ndim)), eps)
            return self.permute(y, inv), mean, invstd
        A, K, B = view
        y = self._new(x.shape, F32_DT)
        mean = self._new(gamma.shape, F32_DT)
        invstd = self._new(gamma.shape, F32_DT)
        p = Params().u(A, K, B, 0).f(eps, 0, 0, 0)
        self._run("batchnorm", "bn_train", "wwwrrr", p, [y, mean, invstd, x, gamma, beta],
                  _grid_groups(K))
        return y, mean, invstd

    def batch_norm_grad(self, gy: GpuArray, x: GpuArray, gamma: GpuArray, mean: GpuArray,
                        invstd: GpuArray, axes: tuple[int, ...]
                        ) -> tuple[GpuArray, GpuArray, GpuArray]:
        gy, x, gamma = self._arr(gy), self._arr(x), self._arr(gamma)
        mean, invstd = self._arr(mean), self._arr(invstd)
        view = self._bn_view(x, axes)
        if view is None:
            perm, inv = self._bn_permuted(x, axes)
            n_kept = x.ndim - len(self._axes(axes, x.ndim))
            gx, gg, gb = self.batch_norm_grad(self.permute(gy, perm), self.permute(x, perm),
                                              gamma, mean, invstd,
                                              tuple(range(n_kept, x.ndim)))
            return self.permute(gx, inv), gg, gb
        A, K, B = view
        gx = self._new(x.shape, F32_DT)
        ggamma = self._new(gamma.shape, F32_DT)
        gbeta = self._new(gamma.shape, F32_DT)
        p = Params().u(A, K, B, 0).f(0, 0, 0, 0)
        self._run("batchnorm", "bn_grad", "wwwrrrrr", p,
                  [gx, ggamma, gbeta, gy, x, gamma, mean, invstd], _grid_groups(K))
        return gx, ggamma, gbeta

    def _fm_operands(self, v: Any, x: Any) -> tuple[GpuArray, GpuArray, int, int, int]:
        v, x = self._arr(v), self._arr(x)
        v = v if v.kind == F32 else self.astype(v, F32_DT)
        x = x if x.kind == F32 else self.astype(x, F32_DT)
        if v.ndim != 3 or tuple(x.shape) != tuple(v.shape[:2]):
            raise ValueError(f"fm_pairwise: need v (B, N, K) and x (B, N), got {v.shape} "
                             f"and {x.shape}")
        return v, x, *v.shape

    def fm_pairwise(self, v: GpuArray, x: GpuArray) -> GpuArray:
        v, x, B, N, K = self._fm_operands(v, x)
        out = self._new((B,), F32_DT)
        if v.size == 0:
            return self._fill(out, 0.0)
        self._run("fm", "pairwise", "wwrr", Params().u(B, N, K, 0), [out, None, v, x],
                  _grid_groups(B))
        return out

    def fm_pairwise_grad(self, g: GpuArray, v: GpuArray,
                         x: GpuArray) -> tuple[GpuArray, GpuArray]:
        v, x, B, N, K = self._fm_operands(v, x)
        g = self._arr(g)
        g = g if g.kind == F32 else self.astype(g, F32_DT)
        gv, gx = self._new(v.shape, F32_DT), self._new(x.shape, F32_DT)
        if v.size == 0:
            return gv, self._fill(gx, 0.0)
        s = self._new((B, K), F32_DT)  # s = sum_n v x, shared by the two kernels
        p = Params().u(B, N, K, 0)
        self._run("fm", "pairwise_grad_v", "wwrrr", p, [gv, s, v, x, g], _grid(B * K))
        self._run("fm", "pairwise_grad_x", "wwrrr", p, [gx, s, v, x, g], _grid(B * N))
        return gv, gx

    # -- optimizer updates, in place -----------------------------------------------------
    def _optim(self, entry: str, p: GpuArray, g: GpuArray, s1: GpuArray | None,
               s2: GpuArray | None, scalars: Sequence[float], **flags: bool) -> None:
        for name, t in (("param", p), ("grad", g), ("state", s1), ("state", s2)):
            if t is not None and (not isinstance(t, GpuArray) or t.kind != F32):
                raise TypeError(f"{entry}: {name} must be a float32 GPU array")
        if g.size != p.size:
            raise ValueError(f"{entry}: gradient shape {g.shape} != parameter shape {p.shape}")
        if p.size == 0:
            return
        vals = list(scalars) + [0.0] * (12 - len(scalars))
        prm = Params().u(p.size, 0, 0, 0).f(*vals)
        self._run("optim", entry, "wrww", prm, [p, g, s1, s2], _grid(p.size), **flags)

    def sgd_step_(self, p: GpuArray, g: GpuArray, buf: GpuArray | None, lr: float,
                  momentum: float, dampening: float, nesterov: bool, weight_decay: float,
                  first: bool) -> None:
        if momentum and buf is None:
            raise ValueError("sgd_step_: momentum needs a buffer")
        self._optim("sgd", p, g, buf if momentum else None, None,
                    [lr, momentum, 1.0 - dampening, weight_decay],
                    MOMENTUM=bool(momentum), NESTEROV=bool(nesterov), FIRST=bool(first),
                    DECAY=bool(weight_decay))

    def adagrad_step_(self, p: GpuArray, g: GpuArray, acc: GpuArray, lr: float, eps: float,
                      weight_decay: float) -> None:
        self._optim("adagrad", p, g, acc, None, [lr, eps, weight_decay],
                    DECAY=bool(weight_decay))

    def rmsprop_step_(self, p: GpuArray, g: GpuArray, sq: GpuArray, buf: GpuArray | None,
                      lr: float, alpha: float, eps: float, momentum: float,
                      weight_decay: float) -> None:
        if momentum and buf is None:
            raise ValueError("rmsprop_step_: momentum needs a buffer")
        self._optim("rmsprop", p, g, sq, buf if momentum else None,
                    [lr, alpha, 1.0 - alpha, eps, momentum, weight_decay], MOMENTUM=bool(momentum),
                    DECAY=bool(weight_decay))

    def adam_step_(self, p: GpuArray, g: GpuArray, m: GpuArray, v: GpuArray, lr: float,
                   beta1: float, beta2: float, eps: float, weight_decay: float,
                   decoupled: bool, step: int) -> None:
        bc1 = 1.0 - beta1 ** step
        bc2 = 1.0 - beta2 ** step
        self._optim("adam", p, g, m, v,
                    [lr, beta1, 1.0 - beta1, beta2, 1.0 - beta2, eps, weight_decay, lr / bc1,
                     math.sqrt(bc2), 1.0 - lr * weight_decay],
                    DECAY=bool(weight_decay), DECOUPLED=bool(decoupled))

    def copy_(self, dst: GpuArray, src: Any) -> None:
        src = self._arr(src)
        if src.size != dst.size:
            src = self.broadcast_to(src, dst.shape)
        if src.kind == dst.kind:
            if dst.size:
                self.dev.copy(src.storage.buffer, 0, dst.storage.buffer, 0, 4 * dst.size)
            return
        self._elementwise("astype", GpuArray(dst.storage, dst.shape, dst.dtype), a=src)

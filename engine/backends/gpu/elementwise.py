"""shaders/elementwise.wgsl: fill, cast, unary and broadcasting binary ops, where, clip."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .array import BOOL, F32, GpuArray, logical_dtype
from .core import GpuCore
from .device import Params
from .layout import BOOL_DT, F32_DT, I64_DT, bcast_strides, coalesce, contig, grid

_UNARY = {op: i for i, op in enumerate(
    ("neg", "exp", "log", "sqrt", "abs", "sign", "relu", "tanh", "sigmoid", "erf"))}
_INT_UNARY = ("neg", "abs", "sign", "relu")
_BINARY = {op: i for i, op in enumerate(
    ("add", "sub", "mul", "div", "pow", "maximum", "minimum",
     "gt", "ge", "lt", "le", "eq", "ne"))}
_COMPARE = ("gt", "ge", "lt", "le", "eq", "ne")


class ElementwiseOps(GpuCore):
    """Elementwise primitives (and `clip`, a fast kernel)."""

    def _fill(self, out: GpuArray, value: float | int | bool) -> GpuArray:
        if out.size == 0:
            return out
        bits = int(np.array(value, dtype=out.storage_dtype).view(np.int32))
        p = Params().u(out.size, 0).i(bits, 0).f(0, 0, 0, 0)
        self._run("elementwise", "fill", "w", p, [out], grid(out.size))
        return out

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

    def copy_(self, dst: GpuArray, src: Any) -> None:
        src = self._arr(src)
        if src.size != dst.size:
            src = self.broadcast_to(src, dst.shape)
        if src.kind == dst.kind:
            if dst.size:
                self.dev.copy(src.storage.buffer, 0, dst.storage.buffer, 0, 4 * dst.size)
            return
        self._elementwise("astype", GpuArray(dst.storage, dst.shape, dst.dtype), a=src)

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
        strides = [bcast_strides(x.shape, out.shape) if isinstance(x, GpuArray)
                   else [0] * out.ndim for x in (a, b, c)]
        if bcast:
            shape, strides = coalesce(out.shape, contig(out.shape), *strides)
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
        self._run("elementwise", entry, bindings, p, arrays, grid(n), OP=op,
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

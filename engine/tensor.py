"""Tensor: an array on a device plus its place on the autograd tape."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partialmethod
from typing import Any

import numpy as np

from . import backends, fused
from . import functions as F
from .autograd import _state as _tape
from .autograd import backward as _run_backward
from .autograd import is_grad_enabled

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_ALLOWED = _FLOATS + (np.dtype(np.int32), np.dtype(np.int64), np.dtype(bool))


def _as_dtype(dtype: Any) -> np.dtype:
    if isinstance(dtype, str) and dtype in ("float", "double", "long", "int"):
        dtype = {"float": np.float32, "double": np.float64, "long": np.int64,
                 "int": np.int32}[dtype]
    dt = np.dtype(dtype)
    if dt not in _ALLOWED:
        raise TypeError(f"unsupported dtype {dt}: use float32 (default), float64, int32, "
                        "int64 or bool")
    return dt


def _to_numpy(data: Any, dtype: Any = None) -> np.ndarray:
    """Host array with the engine's dtype rules: floats become float32 unless asked."""
    if dtype is not None:
        return np.asarray(data, dtype=_as_dtype(dtype))
    arr = np.asarray(data)
    if arr.dtype.kind == "f":
        return arr.astype(np.float32, copy=False)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "b":
        return arr
    raise TypeError(f"cannot make a Tensor from data of dtype {arr.dtype}: "
                    "pass numbers, a NumPy array of numbers, or a Tensor")


def _normalize_axes(axis: Any, ndim: int, op: str) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dims")
        out.append(a % ndim if ndim else 0)
    return tuple(sorted(set(out)))


class Tensor:
    """An n-dimensional array with reverse-mode autograd, on "cpu" or "gpu".

    `data` is the backend's array handle (for the engine's core; layers and optimizers
    use Tensor methods); use `.numpy()` to get host values. Floating data defaults to
    float32; pass ``dtype="float64"`` (or a float64 Tensor) for float64.
    """

    __array_priority__ = 1000  # so ndarray <op> Tensor defers to Tensor
    # _ctx: the Function that computed this tensor; _out: which of its outputs it is
    __slots__ = ("data", "device", "requires_grad", "grad", "_ctx", "_out", "__weakref__")

    def __init__(self, data: Any, requires_grad: bool = False, device: str | None = None,
                 dtype: Any = None) -> None:
        if isinstance(data, Tensor):
            src = data
            dev = backends.resolve(device) if device is not None else src.device
            arr = src.numpy() if dev != src.device or dtype is not None else None
            if arr is None:
                self.data = src.backend.reshape(src.data, src.shape)
            else:
                self.data = backends.get(dev).from_numpy(_to_numpy(arr, dtype or src.dtype))
            self.device = dev
        else:
            self.device = backends.resolve(device)
            self.data = backends.get(self.device).from_numpy(_to_numpy(data, dtype))
        if requires_grad and self.dtype not in _FLOATS:
            raise TypeError(f"only floating tensors can require gradients, not {self.dtype}")
        self.requires_grad = bool(requires_grad)
        self.grad: Tensor | None = None
        self._ctx = None
        self._out = 0

    @classmethod
    def _wrap(cls, data: Any, device: str, requires_grad: bool = False) -> Tensor:
        t = object.__new__(cls)
        t.data, t.device, t.requires_grad, t.grad, t._ctx = data, device, requires_grad, None, None
        t._out = 0
        return t

    # -- properties ----------------------------------------------------------------------
    @property
    def backend(self):
        return backends.get(self.device)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.data.dtype)

    @property
    def ndim(self) -> int:
        return len(self.data.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def numel(self) -> int:
        return self.size

    def dim(self) -> int:
        return self.ndim

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        dev = "" if self.device == "cpu" else f", device='{self.device}'"
        body = np.array2string(self.numpy(), separator=", ", precision=4, threshold=50)
        return f"Tensor({body}{dev}{grad})"

    # -- host access ---------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """Values on the host (the only place a GPU tensor is read back)."""
        tracer = getattr(_tape, "tracer", None)
        if tracer is not None:
            tracer.host_reads += 1
        return self.backend.to_numpy(self.data)

    def item(self) -> float | int | bool:
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, not shape {self.shape}")
        return self.numpy().reshape(()).item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        arr = self.numpy()
        return arr if dtype is None else arr.astype(dtype)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        return bool(self.item())

    __hash__ = object.__hash__

    # -- graph ---------------------------------------------------------------------------
    def detach(self) -> Tensor:
        return Tensor._wrap(self.data, self.device, False)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        if flag and self.dtype not in _FLOATS:
            raise TypeError(f"only floating tensors can require gradients, not {self.dtype}")
        self.requires_grad = flag
        return self

    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad; it was not "
                               "computed from any tensor with requires_grad=True")
        if grad is None:
            if self.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient argument needs a scalar output, but this "
                    f"tensor has shape {self.shape}; reduce it first (e.g. loss.sum() or "
                    f".mean()) or pass a gradient of shape {self.shape}")
            g = self.backend.full(self.shape, 1.0, self.dtype)
        else:
            g = _coerce(grad, self).data
            if tuple(g.shape) != self.shape:
                raise ValueError(f"backward(): gradient shape {tuple(g.shape)} does not match "
                                 f"tensor shape {self.shape}")
        _run_backward(self, g, retain_graph)

    def to(self, device: str | None = None, dtype: Any = None) -> Tensor:
        dev = backends.resolve(device) if device is not None else self.device
        if dev == self.device and (dtype is None or _as_dtype(dtype) == self.dtype):
            return self
        if dev == self.device:
            return self.astype(dtype)
        arr = backends.get(dev).from_numpy(self.numpy() if dtype is None
                                           else self.numpy().astype(_as_dtype(dtype)))
        out = Tensor._wrap(arr, dev, self.requires_grad and self.is_leaf)
        return out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    # -- in place ------------------------------------------------------------------------
    def copy_(self, src: Any) -> Tensor:
        """Write `src` (a Tensor on any device, or array-like) into this tensor in place,
        broadcast to its shape and cast to its dtype; views of it see the new values.
        Not differentiable: on a tensor that requires grad, do it under `no_grad()`."""
        if self.requires_grad and is_grad_enabled():
            raise RuntimeError(f"copy_/assign_: an in-place write to a tensor that requires "
                               f"grad (shape {self.shape}) would corrupt its gradient; wrap it "
                               "in `with engine.no_grad():`")
        if not isinstance(src, Tensor):
            src = Tensor(np.asarray(src), device=self.device, dtype=self.dtype)
        elif src.device != self.device:
            src = src.to(self.device)
        try:
            fits = src.shape == self.shape or \
                np.broadcast_shapes(src.shape, self.shape) == self.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"copy_: cannot write shape {src.shape} into a tensor of shape "
                             f"{self.shape} (it must broadcast to it)")
        self.backend.copy_(self.data, src.data)
        return self

    assign_ = copy_  # tinygrad's name: optimizers assign their updates

    def set_(self, src: Tensor) -> Tensor:
        """Make this tensor hold `src`'s data (its device, dtype and shape): how
        `Module.to` moves parameters while keeping the Parameter objects."""
        self.data, self.device = src.data, src.device
        return self

    def astype(self, dtype: Any) -> Tensor:
        dt = _as_dtype(dtype)
        if dt == self.dtype:
            return self
        return Tensor._wrap(self.backend.astype(self.data, dt), self.device, False)

    def float(self) -> Tensor:
        return self.astype(np.float32)

    def double(self) -> Tensor:
        return self.astype(np.float64)

    def long(self) -> Tensor:
        return self.astype(np.int64)

    # -- arithmetic ----------------------------------------------------------------------
    def _binary(self, fn: type[F.Function], other: Any, op: str, reverse: bool = False):
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            a = self if self.dtype in _FLOATS or isinstance(other, int) else self.float()
            return fn.apply(a, float(other) if a.dtype in _FLOATS else other)
        other = _coerce(other, self)
        a, b = (other, self) if reverse else (self, other)
        _check_binary(a, b, op)
        return fn.apply(a, b)

    def __add__(self, o):
        return self._binary(F.Add, o, "add")

    def __radd__(self, o):
        return self._binary(F.Add, o, "add", reverse=True)

    def __sub__(self, o):
        return self._binary(F.Sub, o, "sub")

    def __rsub__(self, o):
        if isinstance(o, (int, float)):
            return F.RSub.apply(self, float(o))
        return self._binary(F.Sub, o, "sub", reverse=True)

    def __mul__(self, o):
        return self._binary(F.Mul, o, "mul")

    def __rmul__(self, o):
        return self._binary(F.Mul, o, "mul", reverse=True)

    def __truediv__(self, o):
        return self._binary(F.Div, o, "div")

    def __rtruediv__(self, o):
        if isinstance(o, (int, float)):
            _need_float(self, "div")
            return F.RDiv.apply(self, float(o))
        return self._binary(F.Div, o, "div", reverse=True)

    def __pow__(self, o):
        _need_float(self, "pow")
        return self._binary(F.Pow, o, "pow")

    def __rpow__(self, o):
        base = _coerce(o, self)
        _need_float(base, "pow")
        return F.Pow.apply(base, self)

    def __neg__(self):
        return F.Neg.apply(self)

    def __matmul__(self, o):
        return matmul(self, _coerce(o, self))

    def __rmatmul__(self, o):
        return matmul(_coerce(o, self), self)

    # comparisons give bool masks (no gradient)
    def _compare(self, op: str, o: Any) -> Tensor:
        if isinstance(o, Tensor):
            _check_binary(self, o, op)
            o = o.data
        elif not isinstance(o, (int, float)):
            o = _coerce(o, self).data
        return Tensor._wrap(self.backend.binary(op, self.data, o), self.device)

    __gt__ = partialmethod(_compare, "gt")
    __ge__ = partialmethod(_compare, "ge")
    __lt__ = partialmethod(_compare, "lt")
    __le__ = partialmethod(_compare, "le")
    __eq__ = partialmethod(_compare, "eq")  # type: ignore[assignment]
    __ne__ = partialmethod(_compare, "ne")  # type: ignore[assignment]

    # -- unary math ----------------------------------------------------------------------
    def exp(self) -> Tensor:
        return F.Exp.apply(_need_float(self, "exp"))

    def log(self) -> Tensor:
        return F.Log.apply(_need_float(self, "log"))

    def sqrt(self) -> Tensor:
        return F.Sqrt.apply(_need_float(self, "sqrt"))

    def abs(self) -> Tensor:
        return F.Abs.apply(self)

    def relu(self) -> Tensor:
        return F.Relu.apply(self)

    def tanh(self) -> Tensor:
        return F.Tanh.apply(_need_float(self, "tanh"))

    def sigmoid(self) -> Tensor:
        return F.Sigmoid.apply(_need_float(self, "sigmoid"))

    def clip(self, min: float | None = None, max: float | None = None) -> Tensor:  # noqa: A002
        if min is None and max is None:
            raise ValueError("clip: give at least one of min and max")
        return fused.clip(self, lo=min, hi=max)

    clamp = clip

    # -- reductions ----------------------------------------------------------------------
    def sum(self, axis: Any = None, keepdims: bool = False, *, dim: Any = None,
            keepdim: bool | None = None) -> Tensor:
        axes = _normalize_axes(dim if axis is None else axis, self.ndim, "sum")
        return F.Sum.apply(self, axes=axes, keepdims=keepdim if keepdim is not None else keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False, *, dim: Any = None,
             keepdim: bool | None = None) -> Tensor:
        _need_float(self, "mean")
        axes = _normalize_axes(dim if axis is None else axis, self.ndim, "mean")
        n = int(np.prod([self.shape[a] for a in axes], dtype=np.int64))
        total = self.sum(axes, keepdims, keepdim=keepdim)
        return total * (1.0 / max(n, 1))

    def var(self, axis: Any = None, keepdims: bool = False, unbiased: bool = False) -> Tensor:
        axes = _normalize_axes(axis, self.ndim, "var")
        n = int(np.prod([self.shape[a] for a in axes], dtype=np.int64))
        d = self - self.mean(axes, keepdims=True)
        return (d * d).sum(axes, keepdims) * (1.0 / max(n - (1 if unbiased else 0), 1))

    def max(self, axis: Any = None, keepdims: bool = False, *, dim: Any = None,
            keepdim: bool | None = None) -> Tensor:
        axes = _normalize_axes(dim if axis is None else axis, self.ndim, "max")
        return F.Max.apply(self, axes=axes, keepdims=keepdim if keepdim is not None else keepdims)

    def min(self, axis: Any = None, keepdims: bool = False, *, dim: Any = None,
            keepdim: bool | None = None) -> Tensor:
        axes = _normalize_axes(dim if axis is None else axis, self.ndim, "min")
        return F.Max.apply(self, axes=axes, keepdims=keepdim if keepdim is not None else keepdims,
                           op="min")

    def argmax(self, axis: int = -1) -> Tensor:
        return Tensor._wrap(self.backend.argmax(self.data, axis % max(self.ndim, 1)),
                            self.device)

    # -- shape ---------------------------------------------------------------------------
    def reshape(self, *shape: Any) -> Tensor:
        shape = _shape_arg(shape)
        target = F.reshape_target(self.shape, shape)
        if target is None:
            raise ValueError(f"reshape: cannot reshape tensor of shape {self.shape} "
                             f"({self.size} elements) into {tuple(shape)}")
        if target == self.shape:
            return self
        return F.Reshape.apply(self, shape=target)

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        if self.ndim == 0:
            return self.reshape(1)
        s, e = start_dim % self.ndim, end_dim % self.ndim
        return self.reshape(*self.shape[:s], -1, *self.shape[e + 1:])

    def permute(self, *axes: Any) -> Tensor:
        axes = tuple(a % self.ndim for a in _shape_arg(axes))
        if sorted(axes) != list(range(self.ndim)):
            raise ValueError(f"permute: {axes} is not a permutation of the {self.ndim} "
                             f"dims of shape {self.shape}")
        if axes == tuple(range(self.ndim)):
            return self
        return F.Permute.apply(self, axes=axes)

    def transpose(self, dim0: int = -2, dim1: int = -1) -> Tensor:
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return self.permute(*axes)

    @property
    def T(self) -> Tensor:
        return self.permute(*reversed(range(self.ndim)))

    def unsqueeze(self, dim: int) -> Tensor:
        dim = dim % (self.ndim + 1)
        return self.reshape(*self.shape[:dim], 1, *self.shape[dim:])

    def squeeze(self, dim: int | None = None) -> Tensor:
        if dim is None:
            return self.reshape(*[s for s in self.shape if s != 1])
        dim = dim % self.ndim
        if self.shape[dim] != 1:
            return self
        return self.reshape(*self.shape[:dim], *self.shape[dim + 1:])

    def expand(self, *shape: Any) -> Tensor:
        shape = tuple(s if s != -1 else self.shape[i - (len(shape) - self.ndim)]
                      for i, s in enumerate(_shape_arg(shape)))
        try:
            np.broadcast_shapes(self.shape, shape)
        except ValueError:
            raise ValueError(f"expand: cannot broadcast shape {self.shape} to {shape}") from None
        return F.BroadcastTo.apply(self, shape=shape)

    def __getitem__(self, index: Any) -> Tensor:
        return F.GetItem.apply(self, index=_normalize_index(index, self))


# -- module-level helpers used by operators and nn.functional --------------------------

def _shape_arg(shape: Sequence[Any]) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


def _need_float(t: Tensor, op: str) -> Tensor:
    if t.dtype not in _FLOATS:
        raise TypeError(f"{op}: needs a floating-point tensor, got {t.dtype}; "
                        "convert with .float()")
    return t


def _check_binary(a: Tensor, b: Tensor, op: str) -> None:
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast "
                         "together") from None
    if a.dtype != b.dtype and a.dtype in _FLOATS and b.dtype in _FLOATS:
        raise TypeError(f"{op}: dtype mismatch {a.dtype} vs {b.dtype}; convert one with "
                        ".float() or .double()")


def _coerce(x: Any, like: Tensor) -> Tensor:
    """Make x a Tensor on like's device (floats take like's float dtype)."""
    if isinstance(x, Tensor):
        return x
    arr = np.asarray(x)
    if arr.dtype.kind == "f" or (arr.dtype.kind in "iu" and like.dtype in _FLOATS):
        arr = arr.astype(like.dtype if like.dtype in _FLOATS else np.float32)
    return Tensor(arr, device=like.device, dtype=arr.dtype if arr.dtype in _ALLOWED else None)


def _normalize_index(index: Any, t: Tensor) -> tuple:
    """Index tuple with Tensors/lists turned into host integer or bool arrays."""
    if not isinstance(index, tuple):
        index = (index,)
    out = []
    for i in index:
        if isinstance(i, Tensor):
            i = i.numpy()
        if isinstance(i, (list, np.ndarray)):
            i = np.asarray(i)
            if i.dtype.kind not in "iub":
                raise TypeError(f"index arrays must be integer or bool, not {i.dtype}")
            if i.dtype.kind in "iu":
                i = i.astype(np.int64)
        out.append(i)
    probe = np.empty(t.shape, dtype=np.bool_)
    try:
        probe[tuple(out)]
    except IndexError as exc:
        raise IndexError(f"index {index!r} is invalid for tensor of shape {t.shape}: {exc}") \
            from None
    return tuple(out)


def clear_grads(params: Iterable[Tensor], set_to_none: bool = True) -> None:
    """What Module.zero_grad and Optimizer.zero_grad do: None frees the memory, zeros
    keep the gradient buffers (and their shape) for code that reads them."""
    for p in params:
        if p.grad is None:
            continue
        if set_to_none:
            p.grad = None
        else:
            p.grad = Tensor._wrap(p.backend.full(p.shape, 0.0, p.dtype), p.device)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    _need_float(a, "matmul")
    _need_float(b, "matmul")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: both operands need at least one dimension; use * for scalars")
    squeeze_a, squeeze_b = a.ndim == 1, b.ndim == 1
    a2 = a.reshape(1, -1) if squeeze_a else a
    b2 = b.reshape(-1, 1) if squeeze_b else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align "
                         f"({a2.shape[-1]} != {b2.shape[-2]})")
    try:
        if a2.ndim > 2 or b2.ndim > 2:  # (2-D operands, every Linear: nothing to check)
            np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dims of {a.shape} and {b.shape} cannot be "
                         "broadcast") from None
    if a.dtype != b.dtype:
        raise TypeError(f"matmul: dtype mismatch {a.dtype} vs {b.dtype}")
    out = F.MatMul.apply(a2, b2)
    if squeeze_a:
        out = out.squeeze(-2)
    if squeeze_b:
        out = out.squeeze(-1)
    return out


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """Elementwise cond ? a : b with gradients to a and b."""
    like = next((x for x in (a, b, cond) if isinstance(x, Tensor)), None)
    if like is None:
        like = Tensor(np.asarray(a, dtype=np.float32))
    ta = _coerce(a, like)
    tb = _coerce(b, ta)
    c = _coerce(cond, ta)
    shape = np.broadcast_shapes(c.shape, ta.shape, tb.shape)
    return F.Where.apply(c.data if shape == c.shape else
                         c.backend.broadcast_to(c.data, shape), ta, tb)


def maximum(a: Tensor, b: Any) -> Tensor:
    return F.Maximum.apply(a, b if isinstance(b, (int, float)) else _coerce(b, a))


def minimum(a: Tensor, b: Any) -> Tensor:
    return F.Maximum.apply(a, b if isinstance(b, (int, float)) else _coerce(b, a), op="minimum")


def cat(tensors: Iterable[Tensor], dim: int = 0) -> Tensor:
    ts = list(tensors)
    if not ts:
        raise ValueError("cat: needs at least one tensor")
    nd = ts[0].ndim
    dim = dim % nd
    for t in ts[1:]:
        if t.ndim != nd or any(s != r for i, (s, r) in enumerate(zip(t.shape, ts[0].shape))
                               if i != dim):
            raise ValueError(f"cat: shapes {ts[0].shape} and {t.shape} differ outside dim {dim}")
    return fused.concat(*ts, axis=dim)


def stack(tensors: Iterable[Tensor], dim: int = 0) -> Tensor:
    return cat([t.unsqueeze(dim) for t in tensors], dim)

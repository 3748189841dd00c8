"""Constant padding, concatenation and clipping: one pass where a backend has the kernel,
composed from scatters, selects and min/max elsewhere."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import functions as F
from .. import tensor as T
from .registry import Function, FusedKernel, Sample


def _pad_ref(x: T.Tensor, widths: Sequence[tuple[int, int]] = (),
             value: float = 0.0) -> T.Tensor:
    """x placed inside a `value`-filled array, `widths[d]` = (before, after) along dim d."""
    shape = tuple(s + lo + hi for s, (lo, hi) in zip(x.shape, widths))
    index = tuple(slice(lo, lo + s) for (lo, _), s in zip(widths, x.shape))
    placed = F.IndexAdd.apply(x, shape=shape, index=index)
    if value == 0.0:
        return placed
    inside = np.zeros(shape, dtype=bool)
    inside[index] = True
    return T.where(T.Tensor(inside, device=x.device), placed, float(value))


def _pad_samples(rng: np.random.Generator) -> list[Sample]:
    x = rng.standard_normal((2, 3, 4), dtype=np.float32)
    return [Sample((x,), {"widths": [(0, 1), (2, 0), (1, 1)], "value": 0.0}),
            Sample((x,), {"widths": [(1, 0), (0, 0), (2, 3)], "value": -1.5})]


pad = FusedKernel("pad", _pad_ref, samples=_pad_samples)


@pad.fast("pad")
class _Pad(Function):
    def forward(self, a, widths=(), value: float = 0.0):
        self.index = tuple(slice(lo, lo + s) for (lo, _), s in zip(widths, a.shape))
        return self.b.pad(a, widths, value)

    def backward(self, g):
        return self.b.getitem(g, self.index)


def _slices(sizes: Sequence[int], axis: int) -> list[tuple]:
    out, start = [], 0
    for n in sizes:
        out.append((slice(None),) * axis + (slice(start, start + n),))
        start += n
    return out


def _concat_ref(*xs: T.Tensor, axis: int = 0) -> T.Tensor:
    """The tensors joined along `axis` (each scattered into place, then summed)."""
    shape = list(xs[0].shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    parts = [F.IndexAdd.apply(x, shape=tuple(shape), index=i)
             for x, i in zip(xs, _slices([x.shape[axis] for x in xs], axis))]
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    return total


def _concat_samples(rng: np.random.Generator) -> list[Sample]:
    parts = [rng.standard_normal(s, dtype=np.float32) for s in ((2, 3, 4), (2, 1, 4), (2, 5, 4))]
    return [Sample(tuple(parts), {"axis": 1}), Sample(tuple(p[:, :1] for p in parts), {"axis": 0})]


concat = FusedKernel("concat", _concat_ref, samples=_concat_samples)


@concat.fast("concat")
class _Concat(Function):
    def forward(self, *arrays, axis: int = 0):
        self.slices = _slices([x.shape[axis] for x in arrays], axis)
        return self.b.concat(arrays, axis)

    def backward(self, g):
        return tuple(self.b.getitem(g, i) for i in self.slices)


def _clip_ref(x: T.Tensor, lo: float | None = None, hi: float | None = None) -> T.Tensor:
    """min(max(x, lo), hi); the gradient passes where lo <= x <= hi."""
    if lo is not None:
        x = T.maximum(x, lo)
    if hi is not None:
        x = T.minimum(x, hi)
    return x


def _clip_samples(rng: np.random.Generator) -> list[Sample]:
    x = rng.standard_normal((4, 5), dtype=np.float32)
    return [Sample((x,), {"lo": -0.5, "hi": 0.5}), Sample((x,), {"lo": None, "hi": 0.2}),
            Sample((x,), {"lo": -0.1, "hi": None})]


clip = FusedKernel("clip", _clip_ref, samples=_clip_samples)


@clip.fast("clip")
class _Clip(Function):
    def forward(self, a, lo: float | None = None, hi: float | None = None):
        bk = self.b
        self.inside = None
        if lo is not None:
            self.inside = bk.binary("ge", a, lo)
        if hi is not None:
            le = bk.binary("le", a, hi)
            self.inside = le if self.inside is None else bk.where(self.inside, le, self.inside)
        return bk.clip(a, lo, hi)

    def backward(self, g):
        return g if self.inside is None else self.b.where(self.inside, g, 0.0)

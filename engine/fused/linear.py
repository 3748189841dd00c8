"""The affine map of a Linear layer, y = x @ W.T + b, as one op.

Written with Tensor ops it is three (a transpose, a matmul, a broadcast add), so three
tape entries and three backward steps; for a single image through LeNet-5's three Linear
layers that Python was about 60 of the forward's 340 us (PyTorch: one addmm). The fast path
is one Function over the backend's `linear` (one GEMM and an in-place add on NumPy).

Transparent to traces: an ONNX export or a cached plan records the reference's three ops,
so the exporter's table and the plans see exactly what they saw before (and the plans,
which replay those ops, stay bit-identical to this fast path: it does the same two NumPy
operations).
"""

from __future__ import annotations

import numpy as np

from .. import tensor as T
from .registry import Function, FusedKernel, Sample


def _linear_ref(x: T.Tensor, w: T.Tensor, b: T.Tensor | None = None) -> T.Tensor:
    """x (N, in), w (out, in), b (out,) or None -> (N, out)."""
    y = x @ w.T
    return y if b is None else y + b


def _samples(rng: np.random.Generator) -> list[Sample]:
    def r(*s: int) -> np.ndarray:
        return rng.standard_normal(s, dtype=np.float32)
    return [Sample((r(3, 5), r(4, 5), r(4))), Sample((r(1, 6), r(2, 6), None)),
            Sample((r(2, 3).astype(np.float64), r(4, 3).astype(np.float64),
                    r(4).astype(np.float64)))]


linear = FusedKernel("linear", _linear_ref, samples=_samples, transparent=True)


@linear.fast("linear")
class _Linear(Function):
    def forward(self, x, w, b=None):
        self.x, self.w = x, w
        return self.b.linear(x, w, b)

    def backward(self, g):
        bk = self.b
        gx = bk.matmul(g, self.w) if self.needs[0] else None
        gw = bk.matmul(g, self.x, trans_a=True) if self.needs[1] else None
        gb = bk.reduce("sum", g, (0,), False) if len(self.needs) > 2 and self.needs[2] \
            else None
        return (gx, gw, gb)[:len(self.needs)]


__all__ = ["linear"]

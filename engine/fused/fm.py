"""The factorization machine's pairwise interactions of padded sparse rows.

v (B, N, K) gathered factor rows, x (B, N) values (padding: 0) -> (B,)
0.5 * sum_k [(sum_n v x)^2 - sum_n (v x)^2], Rendle's O(N K) form of
sum_{n<m} <v_n, v_m> x_n x_m. Fused because the composed version keeps several (B, N, K)
temporaries alive for the backward pass; the fast paths keep only v and x.
"""

from __future__ import annotations

import numpy as np

from .. import tensor as T
from .registry import Function, FusedKernel, Sample


def _fm_pairwise_ref(v: T.Tensor, x: T.Tensor) -> T.Tensor:
    """0.5 * sum_k [(sum_n v x)^2 - sum_n (v x)^2] per row."""
    e = v * x.reshape(*x.shape, 1)
    s = e.sum(1)
    return ((s * s).sum(1) - (e * e).sum((1, 2))) * 0.5


def _fm_samples(rng: np.random.Generator) -> list[Sample]:
    out = []
    for b, n, k in ((5, 7, 3), (3, 40, 65), (1, 1, 1)):
        x = rng.uniform(0.2, 1.5, (b, n)).astype(np.float32)
        x[:, n - 1:] = 0.0  # a padding entry per row
        out.append(Sample((rng.standard_normal((b, n, k), dtype=np.float32), x), atol=1e-4))
    return out


fm_pairwise = FusedKernel("fm_pairwise", _fm_pairwise_ref, samples=_fm_samples)


@fm_pairwise.fast("fm_pairwise", "fm_pairwise_grad")
class _FMPairwise(Function):
    def forward(self, v, x):
        self.v, self.x = v, x
        return self.b.fm_pairwise(v, x)

    def backward(self, g):
        gv, gx = self.b.fm_pairwise_grad(g, self.v, self.x)
        return (gv if self.needs[0] else None), (gx if self.needs[-1] else None)

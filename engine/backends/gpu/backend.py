"""GpuBackend: the Backend protocol and the fast kernels as WGSL compute shaders on a Device.

One mixin per shader family (shaders/NAME.wgsl <-> NAME.py here): the core primitives in
elementwise, reduce, matmul, movement and embedding; the fast kernels of the fused ops
(`engine.fused`) in conv, pooling, softmax, batchnorm, fm, optim and recurrent.

Arrays are `GpuArray`s: contiguous, 32-bit elements (see `array.logical_dtype` for how
float64/int64/bool map onto them). Nothing is read back until `to_numpy`; every other
method only records dispatches on the Device.
"""

from __future__ import annotations

from .batchnorm import BatchNormKernels
from .conv import ConvKernels
from .elementwise import ElementwiseOps
from .embedding import EmbeddingOps
from .fm import FmKernels
from .layout import host_array
from .matmul import MatmulOps
from .movement import MovementOps
from .optim import OptimKernels
from .pooling import PoolingKernels
from .recurrent import RecurrentKernels
from .reduce import ReduceOps
from .softmax import SoftmaxKernels

__all__ = ["GpuBackend", "host_array"]


class GpuBackend(ElementwiseOps, ReduceOps, MatmulOps, MovementOps, EmbeddingOps,
                 ConvKernels, PoolingKernels, SoftmaxKernels, BatchNormKernels, FmKernels,
                 OptimKernels, RecurrentKernels):
    """The Backend protocol on a GPU `Device` (by default wgpu-py's `NativeDevice`)."""

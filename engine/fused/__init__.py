"""Fused kernels: every op that is not a core primitive, as a reference in Tensor ops
beside optional per-backend fast paths (see `registry` and docs/architecture.md).

A backend runs a kernel's fast path when its class implements the backend methods that
fast path names, and the reference otherwise, so a new device needs only the core
protocol (`engine.backends.base`) to run everything here.
"""

from .conv import conv2d, conv_transpose2d
from .fm import fm_pairwise
from .linear import linear
from .movement import clip, concat, pad
from .norm import batch_norm
from .optim import adagrad_step, adam_step, rmsprop_step, sgd_step
from .pooling import avg_pool2d, max_pool2d
from .recurrent import recurrent_scan
from .registry import FastPath, FusedKernel, FusedUpdate, Sample, kernels, reference_only
from .softmax import cross_entropy, log_softmax, softmax

__all__ = [
    "FusedKernel", "FusedUpdate", "FastPath", "Sample", "kernels", "reference_only",
    "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "batch_norm", "softmax",
    "log_softmax", "cross_entropy", "fm_pairwise", "pad", "concat", "clip", "sgd_step",
    "adagrad_step", "rmsprop_step", "adam_step", "recurrent_scan", "linear",
]

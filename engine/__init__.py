"""Demystify's deep-learning engine: tensors with autograd on NumPy or WGSL/WebGPU."""

from __future__ import annotations

from . import nn, optim, train  # noqa: E402  (after Tensor: they build on it)
from .autograd import enable_grad, is_grad_enabled, no_grad
from .backends import DeviceError, default_device, devices
from .backends.cpu_parallel import get_num_threads, set_num_threads
from .creation import from_numpy, full, full_like, ones, zeros, zeros_like
from .plan import compile  # noqa: A004 - torch.compile's name: inference plans
from .random import manual_seed
from .serialize import load_state, save
from .tensor import Tensor, cat, matmul, maximum, minimum, stack, where
from .train import fit

__all__ = [
    "Tensor", "no_grad", "enable_grad", "is_grad_enabled", "devices", "default_device",
    "DeviceError", "manual_seed", "cat", "stack", "matmul", "where", "maximum", "minimum",
    "nn", "optim", "train", "fit", "save", "load_state", "full", "zeros", "ones", "full_like",
    "zeros_like", "from_numpy", "compile", "set_num_threads", "get_num_threads",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    """`engine.onnx` on first use, so `import engine` works without the onnx package."""
    if name in ("onnx", "models"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")

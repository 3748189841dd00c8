"""An `onnx.backend.base.Backend` over the engine, so ONNX's own node tests can run it."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

from ..autograd import no_grad
from .importer import load


class EngineRep(BackendRep):
    def __init__(self, module: Any) -> None:
        self.module = module

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        if isinstance(inputs, dict):
            args, kw = (), inputs
        else:
            args, kw = tuple(inputs if isinstance(inputs, (list, tuple)) else [inputs]), {}
        with no_grad():
            out = self.module(*args, **kw)
        outs = out if isinstance(out, tuple) else (out,)
        return tuple(o.numpy() for o in outs)


class EngineBackend(Backend):
    """CPU (NumPy) or GPU: the device ONNX asks for maps to the engine's."""

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> EngineRep:
        super().prepare(model, device, **kwargs)
        return EngineRep(load(model, device="cpu" if device.upper() == "CPU" else "gpu"))

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device.upper() in ("CPU", "CUDA")

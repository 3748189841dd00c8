"""ONNX export and import: models travel between Demystify, PyTorch, Keras and runtimes.

    engine.onnx.export(model, example_input, "model.onnx")   # trace -> ONNX file
    model = engine.onnx.load("model.onnx", device="auto")    # ONNX -> trainable nn.Module

`ops.OPS` is the one table from ONNX op names to engine implementations. Every problem with
a file or its inputs raises an `OnnxError` (see `errors`).
"""

from .errors import (
    ExecutionError,
    ExportError,
    InputError,
    ModelFileError,
    OnnxError,
    UnsupportedOpError,
)
from .exporter import export
from .importer import DEFAULT_MAX_BYTES, OnnxModule, load
from .info import describe
from .ops import OPS

SUPPORTED_OPS = frozenset(OPS)

__all__ = [
    "export", "load", "describe", "OnnxModule", "OPS", "SUPPORTED_OPS", "DEFAULT_MAX_BYTES",
    "OnnxError", "ModelFileError", "UnsupportedOpError", "InputError", "ExecutionError",
    "ExportError",
]

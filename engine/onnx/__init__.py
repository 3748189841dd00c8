"""ONNX export and import: models travel between Demystify, PyTorch, Keras and runtimes.

    engine.onnx.export(model, example_input, "model.onnx")   # trace -> ONNX file
    model = engine.onnx.load("model.onnx", device="auto")    # ONNX -> trainable nn.Module

`ops.OPS` is the one table from ONNX op names to engine implementations. Every problem with
a file or its inputs raises an `OnnxError` (see `errors`); what a file may cost (bytes,
nodes, tensor sizes, memory) is bounded by `Limits` (see `limits`). Loading needs no `onnx` package
(`wire` reads the protobuf), so it also works in the browser (Pyodide); exporting builds
the graph with `onnx.helper` and needs `pip install onnx`.
"""

from typing import Any

from .errors import (
    ExecutionError,
    ExportError,
    InputError,
    LimitError,
    ModelFileError,
    OnnxError,
    UnsupportedOpError,
)
from .importer import DEFAULT_MAX_BYTES, OnnxModule, load
from .info import describe
from .limits import Limits
from .ops import OPS

SUPPORTED_OPS = frozenset(OPS)


def export(model: Any, example_input: Any, path: Any = None, **kwargs: Any) -> Any:
    """Write `model` as an ONNX file and return the onnx.ModelProto (`exporter.export`)."""
    try:
        from .exporter import export as _export
    except ImportError as exc:
        raise ExportError(f"exporting ONNX needs the onnx package ({exc}); install it with "
                          "`pip install onnx` (it is not available in the browser build, "
                          "where loading models still works)") from None
    return _export(model, example_input, path, **kwargs)


__all__ = [
    "export", "load", "describe", "OnnxModule", "OPS", "SUPPORTED_OPS", "DEFAULT_MAX_BYTES",
    "Limits", "OnnxError", "ModelFileError", "LimitError", "UnsupportedOpError", "InputError",
    "ExecutionError", "ExportError",
]

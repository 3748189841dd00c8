"""Error types of `engine.onnx`: every problem with a model file or its inputs is one of these.

They are ValueErrors (the file or the call was wrong, not the engine), so callers can catch
`OnnxError` alone and the fuzz tests can check that nothing else ever escapes the loader.
"""

from __future__ import annotations


class OnnxError(ValueError):
    """Base class: something about an ONNX model, its file or its inputs is wrong."""


class ModelFileError(OnnxError):
    """The file is not a readable ONNX model: truncated, corrupt, too large, or it points
    at external data outside its own folder."""


class LimitError(ModelFileError):
    """The model would need more than a resource limit allows (file size, messages, nodes,
    elements of a tensor, bytes of constants or of one call's values). Checked before the
    memory is allocated; the message names the node, the shape and the `Limits` field."""


class UnsupportedOpError(OnnxError):
    """The graph uses ops (or op settings) the engine does not implement.

    `ops` lists every offender as (node name, op type, reason), so one error tells the
    user everything that has to change.
    """

    def __init__(self, message: str, ops: list[tuple[str, str, str]] | None = None) -> None:
        super().__init__(message)
        self.ops = ops or []


class InputError(OnnxError):
    """The inputs given to a loaded model do not match its graph (name, shape or dtype)."""


class ExecutionError(OnnxError):
    """A node failed while running; the message names the node and its op."""


class ExportError(OnnxError):
    """A model cannot be exported (an op without an ONNX equivalent, data-dependent
    control flow, ...)."""

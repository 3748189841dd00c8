"""`describe`: what is in an ONNX file, and whether the engine can run it (for the CLI)."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from . import _proto
from .errors import UnsupportedOpError
from .importer import DEFAULT_MAX_BYTES, read_model
from .ops import resolve


def describe(source: Any, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """Inputs, outputs, op counts, parameter count and unsupported nodes of a model.

    Reads only the file's structure (initializer sizes come from their dims), so it also
    works for models the engine cannot run.
    """
    model, _ = read_model(source, max_bytes)
    g = model.graph
    opsets = {imp.domain or "ai.onnx": int(imp.version) for imp in model.opset_import}
    opset = opsets.get("ai.onnx", 0)
    init_names = {t.name for t in g.initializer}

    def sig(vi: Any, what: str) -> dict[str, Any]:
        try:
            dt, shape = _proto.value_signature(vi, what)
            return {"name": vi.name, "dtype": str(dt),
                    "shape": None if shape is None else list(shape)}
        except Exception as exc:  # keep describing: report what is odd
            return {"name": vi.name, "dtype": f"unsupported ({exc})", "shape": None}

    params = sum(math.prod(t.dims) for t in g.initializer
                 if t.data_type in (1, 10, 11) and len(t.dims) >= 1)
    unsupported = []
    for i, n in enumerate(g.node):
        if n.domain not in ("", "ai.onnx") or resolve(n.op_type, opset) is None:
            unsupported.append({"node": n.name or f"#{i}", "op": n.op_type,
                                "domain": n.domain})
    return {
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "ir_version": int(model.ir_version), "opsets": opsets,
        "inputs": [sig(vi, "input") for vi in g.input if vi.name not in init_names],
        "outputs": [sig(vi, "output") for vi in g.output],
        "op_counts": dict(Counter(n.op_type for n in g.node).most_common()),
        "nodes": len(g.node), "parameters": int(params),
        "initializers": len(g.initializer),
        "unsupported": unsupported, "supported": not unsupported,
    }


def format_description(d: dict[str, Any]) -> str:
    def shape(s: Any) -> str:
        return "(any)" if s is None else "(" + ", ".join(
            "?" if v is None else str(v) for v in s) + ")"

    lines = [f"producer: {d['producer'] or '(unknown)'}   IR {d['ir_version']}   opsets "
             + ", ".join(f"{k} {v}" for k, v in d["opsets"].items())]
    lines.append("inputs:")
    lines += [f"  {i['name']}: {i['dtype']} {shape(i['shape'])}" for i in d["inputs"]]
    lines.append("outputs:")
    lines += [f"  {o['name']}: {o['dtype']} {shape(o['shape'])}" for o in d["outputs"]]
    lines.append(f"ops ({d['nodes']} nodes):")
    lines += [f"  {op:<22} {n}" for op, n in d["op_counts"].items()]
    lines.append(f"parameters: {d['parameters']:,} in {d['initializers']} initializers")
    if d["supported"]:
        lines.append("engine support: yes, every op is supported")
    else:
        lines.append(f"engine support: NO, {len(d['unsupported'])} unsupported node(s):")
        lines += [f"  {u['node']}: {(u['domain'] + '.') if u['domain'] else ''}{u['op']}"
                  for u in d["unsupported"]]
    return "\n".join(lines)


__all__ = ["describe", "format_description", "UnsupportedOpError"]

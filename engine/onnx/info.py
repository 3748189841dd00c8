"""`describe`: what is in an ONNX file, and whether the engine can run it (for the CLI and
the Engine page). Reports are bounded: a file with ten million nodes gets the first few
listed and "… and 9,999,980 more", never a ten-million-line report."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from . import _proto
from .errors import UnsupportedOpError
from .importer import read_model
from .limits import MAX_LISTED, Limits, check_nodes, cut, listing
from .ops import resolve


def describe(source: Any, max_bytes: int | None = None, limits: Limits | None = None
             ) -> dict[str, Any]:
    """Inputs, outputs, op counts, parameter count and unsupported nodes of a model.

    Reads only the file's structure (initializer sizes come from their dims), so it also
    works for models the engine cannot run. `unsupported` lists the first `MAX_LISTED`
    offenders, `unsupported_count` counts them all; names are cut to a readable length.
    """
    model, _ = read_model(source, max_bytes, limits)
    g = model.graph
    check_nodes(len(g.node), limits or Limits())
    opsets = {imp.domain or "ai.onnx": int(imp.version) for imp in model.opset_import}
    opset = opsets.get("ai.onnx", 0)
    init_names = {t.name for t in g.initializer}

    def sig(vi: Any, what: str) -> dict[str, Any]:
        try:
            dt, shape = _proto.value_signature(vi, what)
            return {"name": cut(vi.name), "dtype": str(dt),
                    "shape": None if shape is None else [cut(d) if isinstance(d, str) else d
                                                         for d in shape]}
        except Exception as exc:  # keep describing: report what is odd
            return {"name": cut(vi.name), "dtype": f"unsupported ({cut(exc, 200)})",
                    "shape": None}

    params = sum(math.prod(t.dims) for t in g.initializer
                 if t.data_type in (1, 10, 11) and len(t.dims) >= 1)
    unsupported, count = [], 0
    for i, n in enumerate(g.node):
        if n.domain not in ("", "ai.onnx") or resolve(n.op_type, opset) is None:
            count += 1
            if len(unsupported) < MAX_LISTED:
                unsupported.append({"node": cut(n.name or f"#{i}"), "op": cut(n.op_type),
                                    "domain": cut(n.domain)})
    return {
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "ir_version": int(model.ir_version), "opsets": opsets,
        "inputs": [sig(vi, "input") for vi in g.input if vi.name not in init_names],
        "outputs": [sig(vi, "output") for vi in g.output],
        "op_counts": {cut(op): k for op, k in Counter(n.op_type for n in g.node).most_common()},
        "nodes": len(g.node), "parameters": int(params),
        "initializers": len(g.initializer),
        "unsupported": unsupported, "unsupported_count": count, "supported": not count,
    }


def format_description(d: dict[str, Any]) -> str:
    def shape(s: Any) -> str:
        return "(any)" if s is None else "(" + ", ".join(
            "?" if v is None else str(v) for v in s) + ")"

    lines = [f"producer: {d['producer'] or '(unknown)'}   IR {d['ir_version']}   opsets "
             + ", ".join(f"{k} {v}" for k, v in d["opsets"].items())]
    def bounded(rows: list[str], total: int | None = None) -> list[str]:
        head, more = listing(rows, total)
        return head + ([f"  {more}"] if more else [])

    lines.append("inputs:")
    lines += bounded([f"  {i['name']}: {i['dtype']} {shape(i['shape'])}"
                      for i in d["inputs"]])
    lines.append("outputs:")
    lines += bounded([f"  {o['name']}: {o['dtype']} {shape(o['shape'])}"
                      for o in d["outputs"]])
    lines.append(f"ops ({d['nodes']:,} nodes):")
    lines += bounded([f"  {op:<22} {n:,}" for op, n in d["op_counts"].items()])
    lines.append(f"parameters: {d['parameters']:,} in {d['initializers']:,} initializers")
    count = d.get("unsupported_count", len(d["unsupported"]))
    if d["supported"]:
        lines.append("engine support: yes, every op is supported")
    else:
        lines.append(f"engine support: NO, {count:,} unsupported node(s):")
        lines += bounded([f"  {u['node']}: {(u['domain'] + '.') if u['domain'] else ''}"
                          f"{u['op']}" for u in d["unsupported"]], count)
    return "\n".join(lines)


__all__ = ["describe", "format_description", "UnsupportedOpError"]

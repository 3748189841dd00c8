"""`python -m engine.onnx info model.onnx`: inputs, outputs, ops, parameters, support."""

from __future__ import annotations

import argparse
import json
import sys

from .errors import OnnxError
from .info import describe, format_description


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.onnx",
                                 description="Inspect ONNX models for the Demystify engine.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    info = sub.add_parser("info", help="print inputs, outputs, op counts, parameter count "
                                       "and whether the engine supports every op")
    info.add_argument("model", help="path to a .onnx file")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.add_argument("--max-mb", type=float, default=100.0, help="size limit (default 100)")
    args = ap.parse_args(argv)
    try:
        d = describe(args.model, max_bytes=int(args.max_mb * 2**20))
    except OnnxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(d, indent=2) if args.json else format_description(d))
    return 0 if d["supported"] else 1


if __name__ == "__main__":
    sys.exit(main())

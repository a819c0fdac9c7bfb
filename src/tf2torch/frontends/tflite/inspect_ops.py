"""`tf2torch inspect model.tflite`: the operator types of the file, their counts, and support."""

from __future__ import annotations

import collections

from tf2torch.frontends.tflite.lowering import LOWERINGS, live_operators
from tf2torch.frontends.tflite.quantization import dequantize_model
from tf2torch.frontends.tflite.reader import read_tflite


def format_tflite_ops(path: str) -> str:
    model = read_tflite(path)
    counts = collections.Counter(op.op_type for op in model.operators)
    live = {op.op_type for op in live_operators(model)}

    def support(name: str) -> str:
        if name in LOWERINGS:
            return "yes"
        return "NO" if name in live else "yes (shape arithmetic, evaluated at conversion)"

    quantized = sum(t.quantized for t in model.tensors)
    kind = dequantize_model(model).kind
    rows = [("operator", "count", "supported")]
    rows += [(name, str(n), support(name)) for name, n in sorted(counts.items())]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"TFLite operators of {path} (subgraph 0 of {model.subgraph_count}):"]
    for i, row in enumerate(rows):
        lines.append("  ".join(c.rjust(w) if col == 1 else c.ljust(w) for col, (c, w) in enumerate(zip(row, widths))).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    unsupported = sorted(name for name in counts if support(name) == "NO")
    lines.append(f"{len(model.operators)} operators, {len(counts)} types, {len(unsupported)} unsupported, "
                 f"{len(model.tensors)} tensors")
    if quantized:
        lines.append(f"{quantized} quantized tensors ({kind}): converted dequantized to float parameters, or "
                     "rounded as the file does with --keep-quantization.")
    if unsupported:
        lines.append(f"Unsupported operators: {', '.join(unsupported)}.")
    return "\n".join(lines)

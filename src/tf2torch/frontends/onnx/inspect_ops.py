"""`tf2torch inspect model.onnx`: the op types of the graph, their counts, and whether they convert."""

from __future__ import annotations

import collections

from tf2torch.frontends.onnx.loader import load_onnx_file
from tf2torch.frontends.onnx.registry import is_supported_onnx_op


def inspect_onnx_ops(path: str) -> list[tuple[str, int, bool]]:
    """(op type, count, supported) per op type of the model's main graph, in first-use order."""
    model = load_onnx_file(path)
    counts = collections.Counter(
        node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}" for node in model.graph.node)
    return [(op, n, is_supported_onnx_op(op)) for op, n in counts.items()]


def format_onnx_ops(path: str, rows: list[tuple[str, int, bool]]) -> str:
    width = max([len("op type")] + [len(op) for op, _, _ in rows])
    lines = [f"ONNX ops of {path}:", f"{'op type':<{width}}  {'count':>5}  supported", f"{'-' * width}  -----  ---------"]
    lines += [f"{op:<{width}}  {n:>5}  {'yes' if ok else 'NO'}" for op, n, ok in rows]
    unsupported = [op for op, _, ok in rows if not ok]
    lines.append(f"{sum(n for _, n, _ in rows)} nodes, {len(rows)} op types, {len(unsupported)} unsupported")
    if unsupported:
        lines.append(f"Unsupported op types: {', '.join(unsupported)}.")
    return "\n".join(lines)

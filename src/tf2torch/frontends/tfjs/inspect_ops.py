"""`tf2torch inspect` on a TF.js model.json: a graph-model's op table (its fused ops counted
as the TF ops they are split into); a layers-model is inspected as a Keras model."""

from __future__ import annotations

from pathlib import Path

from tf2torch.frontends.tf.inspect_ops import OpRow, format_tf_ops
from tf2torch.frontends.tfjs.model_json import read_model_json


def inspect_graph_model(path: str) -> str | None:
    """The op table of a graph-model; None for a layers-model (the caller lists its layers)."""
    from tf2torch.frontends.tfjs.graph_model import import_graph_model

    model = read_model_json(path)
    if model.format != "graph-model":
        return None
    importer = import_graph_model(model, Path(path).stem, tolerant=True).importer
    rows = []
    for op_type, count in sorted(importer.op_counts.items()):
        if op_type in importer.unsupported:
            status = "NO"
        elif op_type in importer.failures:
            status = f"NO ({importer.failures[op_type]})"
        else:
            status = "yes"
        rows.append(OpRow(op_type, count, status))
    return format_tf_ops(path, rows)

"""`tf2torch inspect` on a TF.js model.json: a graph-model's op table (its fused ops counted
as the TF ops they are split into); a layers-model is inspected as a Keras model."""

from __future__ import annotations

from pathlib import Path

from tf2torch.frontends.tf.inspect_ops import format_tf_ops, op_rows
from tf2torch.frontends.tfjs.model_json import read_model_json


def inspect_graph_model(path: str) -> str | None:
    """The op table of a graph-model; None for a layers-model (the caller lists its layers)."""
    from tf2torch.frontends.tfjs.graph_model import import_graph_model

    model = read_model_json(path)
    if model.format != "graph-model":
        return None
    importer = import_graph_model(model, Path(path).stem, tolerant=True).importer
    return format_tf_ops(path, op_rows(importer))

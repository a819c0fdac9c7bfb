"""Conversion of a TF.js model.json: a layers-model goes through the Keras frontend (its
KerasSource is read by `load_keras_file`), a graph-model through the TF frontend here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tf2torch.frontends.tfjs.model_json import read_model_json
from tf2torch.limits import DEFAULT_LIMITS, Limits


def tfjs_format(path: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """"layers-model" or "graph-model" (BadModelFile when model.json is not a TF.js model)."""
    return read_model_json(path, limits).format


def convert_tfjs_graph_model(
    path: str, model_name: str | None = None, limits: Limits = DEFAULT_LIMITS, *,
    inputs: list[str] | None = None, outputs: list[str] | None = None,
) -> Any:
    """`inputs` / `outputs` (node or tensor names) replace those of the file's signature."""
    from tf2torch.api import ConversionResult
    from tf2torch.codegen.emit import emit_module
    from tf2torch.frontends.tfjs.graph_model import import_graph_model
    from tf2torch.passes.pipeline import run_passes

    name = Path(path).stem
    imported = import_graph_model(read_model_json(path, limits), name, inputs=inputs, outputs=outputs)
    graph = run_passes(imported.graph)
    generated = emit_module(graph, Path(path).name, model_name or name)
    compile(generated.source, "model.py", "exec")  # a syntax check; the module is built on first use
    result = ConversionResult(source_code=generated.source, graph=graph, generated=generated, source_path=path,
                              keras_major=0)
    result._keras_model = imported.runner
    result._file_path = path
    return result

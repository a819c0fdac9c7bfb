"""Conversion of an .onnx file: load -> import -> passes -> emit, verified by onnxruntime."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def is_onnx_source(source: Any) -> bool:
    return isinstance(source, (str, os.PathLike)) and Path(source).suffix.lower() == ".onnx"


def convert_onnx(path: str | os.PathLike, *, model_name: str | None = None) -> Any:
    from tf2torch.api import ConversionResult
    from tf2torch.codegen.emit import emit_module
    from tf2torch.frontends.onnx.importer import import_onnx_model
    from tf2torch.frontends.onnx.loader import load_onnx_file
    from tf2torch.frontends.onnx.runner import OnnxRuntimeRunner
    from tf2torch.passes.pipeline import run_passes

    path = str(path)
    rewrites: list[str] = []
    model = load_onnx_file(path, rewrites)
    graph = import_onnx_model(model, path)
    graph.notes.extend(f"{Path(path).name}: {note}" for note in rewrites)
    graph = run_passes(graph)
    generated = emit_module(graph, Path(path).name, model_name or Path(path).stem)
    compile(generated.source, "model.py", "exec")
    result = ConversionResult(source_code=generated.source, graph=graph, generated=generated, source_path=path,
                              keras_major=0)
    result._keras_model = OnnxRuntimeRunner(path, list(graph.input_names), model.SerializeToString() if rewrites else None)
    return result

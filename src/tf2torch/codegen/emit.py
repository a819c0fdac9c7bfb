"""Run the converters over a graph and render model.py plus its state dict."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tf2torch import converters  # noqa: F401  (fills CONVERTERS)
from tf2torch.codegen.naming import class_name as make_class_name
from tf2torch.codegen.program import ModuleBuilder
from tf2torch.codegen.render import render_module, state_dict
from tf2torch.converters.registry import CONVERTERS
from tf2torch.errors import ConversionError
from tf2torch.ir import Graph


@dataclass
class GeneratedModule:
    class_name: str
    source: str
    state: dict[str, np.ndarray]
    builder: ModuleBuilder


def emit_module(graph: Graph, source_name: str, model_name: str) -> GeneratedModule:
    builder = ModuleBuilder(graph)
    for node in graph.nodes:
        converter = CONVERTERS.get(node.op)
        if converter is None:
            raise ConversionError(f"no converter for IR op {node.op!r} (layer {node.source.name!r}); this is a tf2torch bug")
        converter(node, builder)
    name = make_class_name(model_name)
    return GeneratedModule(name, render_module(graph, builder, name, source_name), state_dict(builder), builder)

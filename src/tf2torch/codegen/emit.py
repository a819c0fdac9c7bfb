"""Run the converters over a graph and render model.py plus its state dict."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tf2torch import converters  # noqa: F401  (fills CONVERTERS)
from tf2torch.codegen.naming import class_name as make_class_name
from tf2torch.codegen.program import ModuleBuilder, Statement
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
    use_channels_last_memory(graph, builder)
    for node in graph.nodes:
        converter = CONVERTERS.get(node.op)
        if converter is None:
            raise ConversionError(f"no converter for IR op {node.op!r} (layer {node.source.name!r}); this is a tf2torch bug")
        converter(node, builder)
    name = make_class_name(model_name)
    return GeneratedModule(name, render_module(graph, builder, name, source_name), state_dict(builder), builder)


def use_channels_last_memory(graph: Graph, builder: ModuleBuilder) -> None:
    """A model with 2-D convolutions starts by putting its NCHW image inputs in channels_last
    memory (NHWC strides; shapes and indexing stay NCHW). oneDNN's CPU convolutions, pooling and
    element-wise ops run fastest on it and keep it, so every later activation stays NHWC in
    memory. The weights and the state dict are untouched (plain contiguous tensors)."""
    if not any(node.op == "conv" and node.attrs.get("rank") == 2 for node in graph.nodes):
        return
    for value in graph.inputs:
        if value.rank == 4 and value.perm is not None and value not in graph.outputs:
            var = builder.var(value)
            builder.statements.append(Statement(
                [var], f"{var}.contiguous(memory_format=torch.channels_last)",
                comment="NHWC in memory (shapes stay NCHW): the fast layout for CPU convolutions."))

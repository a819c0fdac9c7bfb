"""Run the converters over a graph and render model.py plus its state dict."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tf2torch import converters  # noqa: F401  (fills CONVERTERS)
from tf2torch.codegen.naming import class_name as make_class_name
from tf2torch.codegen.program import ModuleBuilder, Statement
from tf2torch.codegen.render import render_module, state_dict
from tf2torch.codegen.render_structured import render_structured, structure_of
from tf2torch.converters.quantization import apply_integer_kernels, apply_weight_grids
from tf2torch.converters.registry import CONVERTERS
from tf2torch.errors import ConversionError
from tf2torch.ir import Graph

STRUCTURES = ("blocks", "flat")


@dataclass
class GeneratedModule:
    class_name: str
    source: str
    state: dict[str, np.ndarray]
    builder: ModuleBuilder
    structure: str = "flat"
    # Flat attribute (the builder's, one per Keras layer) -> its path in the generated module
    # ("conv2_block1_1_conv" -> "conv2.0.conv1"); the identity for flat output.
    attr_paths: dict[str, str] = field(default_factory=dict)

    def attr_path(self, attr: str) -> str:
        return self.attr_paths.get(attr, attr)

    def flat_state(self, state: dict) -> dict:
        """A state dict of the generated module with the flat rendering's keys."""
        flat_of = {path: attr for attr, path in self.attr_paths.items()}
        out = {}
        for key, value in state.items():
            prefix, _, name = key.rpartition(".")
            while prefix and prefix not in flat_of:
                prefix, _, head = prefix.rpartition(".")
                name = f"{head}.{name}"
            out[f"{flat_of[prefix]}.{name}" if prefix else key] = value
        return out


def emit_module(graph: Graph, source_name: str, model_name: str, structure: str = "flat") -> GeneratedModule:
    """model.py for `graph`: with `structure="blocks"` repeated blocks become classes (see
    codegen.blocks); "flat" puts every layer in one class."""
    if structure not in STRUCTURES:
        raise ValueError(f"structure must be one of {STRUCTURES}, got {structure!r}")
    batch_norms_after_their_layers(graph)
    builder = ModuleBuilder(graph)
    use_channels_last_memory(graph, builder)
    for node in graph.nodes:
        converter = CONVERTERS.get(node.op)
        if converter is None:
            raise ConversionError(f"no converter for IR op {node.op!r} (layer {node.source.name!r}); this is a tf2torch bug")
        converter(node, builder)
    apply_weight_grids(graph, builder)
    apply_integer_kernels(graph, builder)
    name = make_class_name(model_name)
    flat = state_dict(builder)
    if structure == "flat":
        return GeneratedModule(name, render_module(graph, builder, name, source_name), flat, builder)
    blocks = structure_of(graph, builder, name)
    paths = blocks.key_map(builder)
    source = render_structured(graph, builder, blocks, name, source_name)
    state = {}
    for sub in builder.submodules:
        for key, array in sub.state.items():
            state[f"{paths[sub.attr]}.{key}"] = array
    return GeneratedModule(name, source, state, builder, structure, paths)


def batch_norms_after_their_layers(graph: Graph) -> None:
    """Move each BatchNorm whose input is a conv / dense output read by it alone to right after
    that layer (Keras orders layers by depth: ResNet's shortcut conv, its residual-branch conv,
    then both BatchNorms). The pair then folds into one call (bn_folding), and blocks with and
    without a shortcut list their statements alike. Only the order of independent nodes changes."""
    nodes = graph.nodes
    for bn in [n for n in nodes if n.op == "batch_norm" and len(n.inputs) == 1]:
        producer = bn.inputs[0].producer
        if producer is None or producer.op not in ("conv", "dense"):
            continue
        readers = graph.consumers(bn.inputs[0])
        if len(readers) != 1 or readers[0] is not bn:
            continue
        nodes.remove(bn)
        nodes.insert(next(i for i, n in enumerate(nodes) if n is producer) + 1, bn)


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

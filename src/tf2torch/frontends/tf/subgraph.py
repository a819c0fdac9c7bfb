"""Sub-graphs: bodies of While loops, If branches and traced custom Keras layers.

A sub-graph is an IR Graph of its own, in the source (TF) layout at its boundary; its
layout is decided here, once, by the same LayoutPass (convolutions inside still run NCHW,
bracketed by the permutes the pass names).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tf2torch.ir import Graph, Node, SourceRef, TensorSpec, Value
from tf2torch.passes.cleanup import cancel_transposes, remove_dead_code
from tf2torch.passes.layout import LayoutPass


class SubgraphLayoutPass(LayoutPass):
    """LayoutPass for a sub-graph: inputs and outputs stay in the source layout."""

    def run(self) -> Graph:
        for value in self.graph.inputs:
            value.perm = None
        for node in list(self.graph.nodes):
            self._visit(node)
        for i, value in enumerate(self.graph.outputs):
            if value.perm is not None:
                anchor = Node("transpose", [], [], SourceRef("tf", "layout", value.name))
                self.graph.nodes.append(anchor)
                converted = self._converted_value(value, None, anchor)
                self.graph.nodes.remove(anchor)
                self.graph.outputs[i] = converted
        return self.graph


def finish_subgraph(graph: Graph) -> Graph:
    SubgraphLayoutPass(graph).run()
    cancel_transposes(graph)
    remove_dead_code(graph)
    return graph


def new_subgraph(name: str, input_specs: list[tuple[str, TensorSpec]]) -> Graph:
    graph = Graph(name=name, source_format="tf")
    for input_name, spec in input_specs:
        value = Value(input_name, spec)
        graph.inputs.append(value)
        graph.input_names.append(input_name)
    return graph


@contextmanager
def building(importer, graph: Graph) -> Iterator[Graph]:
    """Point the importer's `add` at `graph` while a sub-graph is imported."""
    saved = importer.graph
    importer.graph = graph
    try:
        yield graph
    finally:
        importer.graph = saved

"""Graph, Node, Value, Param, TensorSpec, SourceRef: the whole IR.

Values carry their shape in the *source* layout (Keras: channels-last). The layout pass
adds `perm`, the permutation that turns a source-layout tensor into the tensor the
generated PyTorch code holds (`torch_tensor = source_tensor.permute(perm)`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Shape = tuple[int | None, ...]


@dataclass(frozen=True)
class TensorSpec:
    """Shape including the batch dimension; None marks a dynamic dimension."""

    shape: Shape
    dtype: str = "float32"

    @property
    def rank(self) -> int:
        return len(self.shape)


@dataclass(frozen=True)
class SourceRef:
    """Where a node came from: used by errors, reports and layer-by-layer verification."""

    framework: str  # "keras2" or "keras3"
    kind: str  # the layer class name
    name: str  # the layer name ("outer/inner" inside nested models)
    call_index: int = 0  # which call of a shared layer
    # The source objects the node is part of, outermost first, as (name, class): a nested
    # model ("encoder", "Functional"), a keras_hub layer ("transformer_layer_0",
    # "TransformerEncoder"). Codegen makes each one a submodule of its own class.
    scope: tuple[tuple[str, str], ...] = ()


@dataclass
class Param:
    """A weight. `layout` names its axes in the source framework (e.g. "HWIO")."""

    array: np.ndarray
    layout: str
    trainable: bool = True


@dataclass(eq=False)
class Value:
    name: str
    spec: TensorSpec
    producer: Node | None = None
    perm: tuple[int, ...] | None = None  # set by the layout pass; None means identity
    # For the output of a channels-first Flatten: torch feature j is source feature
    # feature_order[j]. A following Dense absorbs it by reordering its weight rows.
    feature_order: np.ndarray | None = None

    @property
    def rank(self) -> int:
        return self.spec.rank

    @property
    def torch_shape(self) -> Shape:
        if self.perm is None:
            return self.spec.shape
        return tuple(self.spec.shape[i] for i in self.perm)

    def torch_axis(self, source_axis: int) -> int:
        """The torch dim holding source axis `source_axis` (negative axes allowed)."""
        axis = source_axis % self.rank
        if self.perm is None:
            return axis
        return self.perm.index(axis)

    def __repr__(self) -> str:
        return f"Value({self.name}, {self.spec.shape}, perm={self.perm})"


@dataclass(eq=False)
class Node:
    op: str
    inputs: list[Value]
    outputs: list[Value]
    source: SourceRef
    attrs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Param] = field(default_factory=dict)

    def __repr__(self) -> str:
        ins = ", ".join(v.name for v in self.inputs)
        outs = ", ".join(v.name for v in self.outputs)
        return f"Node({self.op} {self.source.name}: {ins} -> {outs})"


@dataclass(eq=False)
class Graph:
    name: str
    source_format: str  # "keras3", "keras2"
    inputs: list[Value] = field(default_factory=list)
    outputs: list[Value] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)  # topological order
    input_names: list[str] = field(default_factory=list)  # source names of the inputs
    output_names: list[str] = field(default_factory=list)
    # The source returns a dict keyed by output_names (Keras dict outputs, keras_hub backbones):
    # the generated forward returns a NamedTuple with those fields.
    named_outputs: bool = False
    notes: list[str] = field(default_factory=list)  # approximations and boundary permutes

    def add_node(
        self,
        op: str,
        inputs: list[Value],
        output_specs: list[TensorSpec],
        source: SourceRef,
        attrs: dict[str, Any] | None = None,
        params: dict[str, Param] | None = None,
    ) -> Node:
        node = Node(op, list(inputs), [], source, dict(attrs or {}), dict(params or {}))
        for i, spec in enumerate(output_specs):
            suffix = "" if len(output_specs) == 1 else f"_{i}"
            node.outputs.append(Value(f"{source.name}{suffix}", spec, node))
        self.nodes.append(node)
        return node

    def consumers(self, value: Value) -> list[Node]:
        return [n for n in self.nodes if any(v is value for v in n.inputs)]

    def replace_uses(self, old: Value, new: Value, after: Node | None = None) -> None:
        """Point every use of `old` at `new` (only in nodes after `after`, if given)."""
        started = after is None
        for node in self.nodes:
            if started:
                node.inputs = [new if v is old else v for v in node.inputs]
            elif node is after:
                started = True
        self.outputs = [new if v is old else v for v in self.outputs]

    def insert_before(self, anchor: Node, node: Node) -> None:
        self.nodes.insert(self.nodes.index(anchor), node)

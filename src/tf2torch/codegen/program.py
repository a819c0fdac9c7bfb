"""The Python module model: submodules, forward statements, imports and helper classes.

Converters write into a `ModuleBuilder`; `render.render_module` turns it into text. Naming
is decided here, once: Keras layer names become attribute names, a linear chain reuses
`x`, and a value used more than once gets its producing layer's name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from tf2torch.codegen.naming import MODULE_RESERVED, NameScope
from tf2torch.ir import Graph, Node, Value


@dataclass
class Submodule:
    attr: str
    ctor: str
    state: dict[str, np.ndarray]
    frozen: tuple[str, ...] = ()  # parameter names with requires_grad=False; "*" for all
    comment: str | None = None


@dataclass
class Statement:
    targets: list[str]
    expr: str
    comment: str | None = None
    values: tuple[Value, ...] = ()  # the IR values assigned (for verification taps)
    operator: str = "="  # "+=" for an in-place add
    # The same computation as separate statements (one per IR op), for what must see every
    # op's value: verification taps and activity-regularizer hooks (e.g. conv + BatchNorm
    # emitted as one folded call).
    unfused: tuple[Statement, ...] = ()


# Ops whose generated call returns a new tensor that their backward does not read back.
# Such a value, used once, may be overwritten in place by its consumer (torchvision's
# `ReLU(inplace=True)` and `out += identity`): one feature-map allocation less per use.
FRESH_OUTPUT_OPS = frozenset({"conv", "batch_norm", "add", "dense"})


@dataclass
class ModuleBuilder:
    graph: Graph
    imports: set[str] = field(default_factory=lambda: {"import torch", "from torch import nn"})
    helpers: dict[str, str] = field(default_factory=dict)
    submodules: list[Submodule] = field(default_factory=list)
    statements: list[Statement] = field(default_factory=list)
    # Extra methods of the generated class (source text, one indentation level), by name.
    methods: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._attrs = NameScope(MODULE_RESERVED)
        self._by_key: dict[tuple[str, str], Submodule] = {}
        self._vars, self._scope = assign_variable_names(self.graph)
        self._uses: dict[int, int] = {}
        for node in self.graph.nodes:
            for value in node.inputs:
                self._uses[id(value)] = self._uses.get(id(value), 0) + 1
        for value in self.graph.outputs:
            self._uses[id(value)] = self._uses.get(id(value), 0) + 1

    # -- what converters call -------------------------------------------------------------

    def var(self, value: Value) -> str:
        return self._vars[id(value)]

    def overwritable(self, value: Value) -> bool:
        """True when `value`'s only use is the op being converted, so that op may write its
        result into it (see FRESH_OUTPUT_OPS)."""
        producer = value.producer
        return (
            producer is not None
            and producer.op in FRESH_OUTPUT_OPS
            and len(producer.outputs) == 1
            and self._uses.get(id(value), 0) == 1
        )

    def submodule(
        self, node: Node, ctor: str, state: dict[str, np.ndarray], *, suffix: str = "",
        frozen: tuple[str, ...] = (), comment: str | None = None,
    ) -> str:
        """Declare `self.<layer name>` once per Keras layer; a shared layer reuses it."""
        key = (node.source.name, suffix)
        if key not in self._by_key:
            base = node.source.name + (f"_{suffix}" if suffix else "")
            sub = Submodule(self._attrs.unique(base), ctor, state, frozen, comment)
            self._by_key[key] = sub
            self.submodules.append(sub)
        return f"self.{self._by_key[key].attr}"

    def layer_submodules(self) -> list[tuple[str, Submodule]]:
        """(Keras layer name, submodule) for every submodule declared by `submodule()`."""
        return [(layer, sub) for (layer, _), sub in self._by_key.items()]

    def emit(self, outputs: Value | list[Value], expr: str, comment: str | None = None, operator: str = "=") -> None:
        values = outputs if isinstance(outputs, list) else [outputs]
        self.statements.append(Statement([self.var(v) for v in values], expr, comment, tuple(values), operator))

    def temp(self, base: str, expr: str, comment: str | None = None) -> str:
        """A statement whose result has no IR value (an intermediate step of one op)."""
        name = self._scope.unique(base)
        self.statements.append(Statement([name], expr, comment))
        return name

    def fresh(self, base: str) -> str:
        """A new local variable name (for statements with several targets)."""
        return self._scope.unique(base)

    def alias(self, output: Value, source: Value) -> None:
        """An op that changes nothing: reuse the input's variable when the names allow it."""
        if self.var(output) != self.var(source):
            self.emit(output, self.var(source))

    def unfused_statements(self) -> list[Statement]:
        """`statements` with every combined statement replaced by its separate steps."""
        return [part for st in self.statements for part in (st.unfused or (st,))]

    def use_functional(self) -> str:
        self.imports.add("import torch.nn.functional as F")
        return "F"

    def helper(self, name: str, source: str) -> str:
        self.helpers.setdefault(name, source)
        return name


_MADE_UP_INPUT = re.compile(r"(input|input_layer|keras_tensor|inputs|args|x)(_\d+)?")


def made_up_input_name(name: str) -> bool:
    """Did Keras (or TensorFlow) make the input's name up? Then `x` says as much; a name the
    author gave (`image`, `tokens`) is the forward()'s parameter."""
    return _MADE_UP_INPUT.fullmatch(name) is not None


def assign_variable_names(graph: Graph) -> tuple[dict[int, str], NameScope]:
    """`x` for a value consumed once, by the very next statement; else the layer's name."""
    scope = NameScope({"x"})
    names: dict[int, str] = {}
    first = graph.nodes[0] if graph.nodes else None
    single_input = len(graph.inputs) == 1
    for value, name in zip(graph.inputs, graph.input_names):
        consumers = graph.consumers(value)
        chain = single_input and len(consumers) == 1 and consumers[0] is first and value not in graph.outputs
        names[id(value)] = "x" if chain and made_up_input_name(name) else scope.unique(name)
    # Outputs of a dict-returning source are named by their keys (`sequence_output`).
    for value, name in zip(graph.outputs, graph.output_names if graph.named_outputs else []):
        if id(value) not in names:
            names[id(value)] = scope.unique(name)
    for i, node in enumerate(graph.nodes):
        following = graph.nodes[i + 1] if i + 1 < len(graph.nodes) else None
        for value in node.outputs:
            if id(value) in names:
                continue
            consumers = graph.consumers(value)
            chain = (
                len(node.outputs) == 1
                and len(consumers) == 1
                and consumers[0] is following
                and value not in graph.outputs
            )
            names[id(value)] = "x" if chain else scope.unique(value.name)
    return names, scope

"""Where a Keras layer's output is in the converted module, for activity regularizers.

Keras applies `activity_regularizer` to the layer's *output* (after its fused activation),
divided by the output's batch size, once per call of the layer, in training and in
evaluation alike (keras/src/layers/layer.py `Layer.__call__`; tf_keras
engine/base_layer.py `_handle_activity_regularization`).

The converted forward() does not always return that tensor from the layer's torch module:
`Dense(activation="tanh")` becomes `x = self.hidden(x)` then `x = torch.tanh(x)`. Rather than
re-deriving the activation from the layer config, the statements that forward() itself runs
between the module call and the layer's final value are copied into a small function
(`output` standing for the module's result); a forward hook on the module runs it. model.py
stays untouched, and the activity is exactly what forward() computes.

L1/L2 sums do not depend on the layout (NCHW vs NHWC, a reordered Flatten); an
axis-dependent regularizer (orthogonal) is refused unless the torch tensor has the Keras
layout.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass

from tf2torch.codegen.program import ModuleBuilder
from tf2torch.ir import Graph, Node, Value
from tf2torch.training.compile_config import Obj, UnsupportedTraining

# Names a copied statement may use besides its own locals: they are imported by model.py,
# train.py and the code of training_setup() alike.
_GLOBALS = {"self", "output", "torch", "F", "math"} | set(dir(builtins))
_LAYOUT_FREE = ("L1L2",)  # regularizers that sum over every element


@dataclass
class ActivityTap:
    """Keras layer `layer` ends in torch module `self.<attr>`; `function` (source text of
    `def <function_name>(self, output) -> list[Tensor]`, or None when the module's result is
    the layer's output) recovers the layer's outputs from that module's result."""

    layer: str
    attr: str
    function_name: str | None = None
    function: str | None = None


def _is_call_of(node: ast.AST, attrs: set[str]) -> str | None:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in attrs:
        owner = node.func.value
        if isinstance(owner, ast.Name) and owner.id == "self":
            return node.func.attr
    return None


def _module_calls(text: str, attrs: set[str]) -> list[str]:
    return [a for n in ast.walk(ast.parse(text)) if (a := _is_call_of(n, attrs)) is not None]


class _ReplaceCall(ast.NodeTransformer):
    def __init__(self, attr: str) -> None:
        self.attr = attr

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if _is_call_of(node, {self.attr}):
            return ast.copy_location(ast.Name("output", ast.Load()), node)
        return self.generic_visit(node)


def _statement_text(targets: list[str], expr: str) -> str:
    return f"{', '.join(targets)} = {expr}"


def _layer_nodes(graph: Graph, layer: str) -> dict[int, list[Node]]:
    calls: dict[int, list[Node]] = {}
    for node in graph.nodes:
        if node.source.name == layer and node.source.kind != "layout":
            calls.setdefault(node.source.call_index, []).append(node)
    return calls


def _tail(builder: ModuleBuilder, graph: Graph, layer: str, nodes: list[Node],
          attrs: set[str]) -> tuple[str, list[str], list[Value]]:
    """(module attr, statements from the module call to the layer's output, final values)."""
    final = nodes[-1]
    statements = builder.unfused_statements()
    outputs = {id(v) for v in final.outputs}
    last = max((i for i, st in enumerate(statements) if any(id(v) in outputs for v in st.values)), default=None)
    if last is None:
        raise UnsupportedTraining(
            f"layer {layer!r}: activity_regularizer: its output has no statement of its own in forward()")
    first_node = graph.nodes.index(nodes[0])
    own = set(map(id, nodes))
    start = None
    for i in range(last, -1, -1):
        st = statements[i]
        producers = [v.producer for v in st.values if v.producer is not None]
        if any(id(p) not in own and p.source.kind != "layout" for p in producers):
            break
        if any(graph.nodes.index(p) < first_node for p in producers):
            break
        if _module_calls(st.expr, attrs):
            start = i
            break
    if start is None:
        raise UnsupportedTraining(
            f"layer {layer!r}: activity_regularizer on a layer whose output is not computed by its own torch "
            "module (no forward hook can see it); not supported yet"
        )
    called = _module_calls(statements[start].expr, attrs)
    if len(called) != 1:
        raise UnsupportedTraining(
            f"layer {layer!r}: activity_regularizer: its module is called {len(called)} times in one statement")
    lines = [_statement_text(st.targets, st.expr) for st in statements[start : last + 1]]
    return called[0], lines, list(final.outputs)


def _function_body(layer: str, attr: str, lines: list[str], final: list[str]) -> list[str] | None:
    """The statements with the module call replaced by `output`; None when there is nothing
    to do (the module's result is the layer's only output)."""
    first = ast.parse(lines[0]).body[0]
    if (len(lines) == 1 and isinstance(first, ast.Assign) and len(first.targets) == 1
            and isinstance(first.targets[0], ast.Name) and final == [first.targets[0].id]
            and _is_call_of(first.value, {attr})):
        return None
    body: list[str] = []
    defined: set[str] = set()
    for i, line in enumerate(lines):
        tree = ast.parse(line)
        if i == 0:
            tree = ast.fix_missing_locations(_ReplaceCall(attr).visit(tree))
        if _module_calls(ast.unparse(tree), {attr}):
            raise UnsupportedTraining(
                f"layer {layer!r}: activity_regularizer: self.{attr} is called again after the layer's module")
        statement = tree.body[0]
        loads = {n.id for n in ast.walk(statement.value) if isinstance(n, ast.Name)}
        unknown = loads - defined - _GLOBALS
        if unknown:
            raise UnsupportedTraining(
                f"layer {layer!r}: activity_regularizer: the statements after self.{attr}(...) in forward() use "
                f"{sorted(unknown)}, which a hook on self.{attr} cannot see; not supported yet"
            )
        defined |= {n.id for t in statement.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        body.append(ast.unparse(tree))
    missing = [v for v in final if v not in defined]
    if missing:
        raise UnsupportedTraining(
            f"layer {layer!r}: activity_regularizer: its output {missing} is not computed after self.{attr}(...)")
    return body + [f"return [{', '.join(final)}]"]


def _normalized(body: list[str]) -> str:
    """The statements with local names numbered by first appearance (shared layers' calls
    differ only in variable names)."""
    names: dict[str, str] = {}
    trees = [ast.parse(line) for line in body]
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id not in _GLOBALS:
                node.id = names.setdefault(node.id, f"v{len(names)}")
    return "\n".join(ast.dump(t) for t in trees)


def activity_taps(builder: ModuleBuilder, graph: Graph, regularizers: list[tuple[str, Obj]]) -> dict[str, ActivityTap]:
    """One tap per activity-regularized Keras layer (raises UnsupportedTraining when a layer's
    output cannot be observed from a torch module)."""
    taps: dict[str, ActivityTap] = {}
    for layer, obj in regularizers:
        attrs = {sub.attr for key, sub in builder._by_key.items() if key[0] == layer}
        calls = _layer_nodes(graph, layer)
        if not calls:
            raise UnsupportedTraining(f"layer {layer!r}: activity_regularizer on a layer that the conversion removed")
        if not attrs:
            raise UnsupportedTraining(
                f"layer {layer!r}: activity_regularizer on a layer without its own torch module (its output is "
                "computed inline in forward(), where no hook can see it); not supported yet"
            )
        bodies, attr, finals = [], None, []
        for call in sorted(calls):
            call_attr, lines, final = _tail(builder, graph, layer, calls[call], attrs)
            if attr is not None and call_attr != attr:
                raise UnsupportedTraining(
                    f"layer {layer!r}: activity_regularizer: its calls end in different torch modules")
            attr = call_attr
            finals += final
            bodies.append(_function_body(layer, attr, lines, [builder.var(v) for v in final]))
        total = sum(len(_module_calls(_statement_text(st.targets, st.expr), {attr})) for st in builder.unfused_statements())
        if total != len(calls):
            raise UnsupportedTraining(
                f"layer {layer!r}: activity_regularizer: forward() calls self.{attr} {total} times for "
                f"{len(calls)} Keras call(s) of the layer"
            )
        if any(b != bodies[0] for b in bodies) and len({_normalized(b or []) for b in bodies}) > 1:
            raise UnsupportedTraining(
                f"layer {layer!r}: activity_regularizer: the calls of this shared layer differ in forward()")
        if obj.ctor not in _LAYOUT_FREE:
            odd = [v for v in finals if v.perm is not None or v.feature_order is not None]
            if odd:
                raise UnsupportedTraining(
                    f"layer {layer!r}: activity regularizer {obj.ctor} depends on the axes of the output, and the "
                    f"converted module holds it in another layout ({odd[0].rank}-D, channels first or reordered features); "
                    "not supported"
                )
        tap = ActivityTap(layer, attr)
        if bodies[0] is not None:
            tap.function_name = f"{attr}_keras_outputs"
            doc = f'"""The outputs of Keras layer {layer!r}: forward()\'s statements after self.{attr}(...)."""'
            body = "\n".join(f"    {line}" for line in [doc] + bodies[0])
            tap.function = f"def {tap.function_name}(self: torch.nn.Module, output):\n{body}"
        taps[layer] = tap
    return taps


__all__ = ["ActivityTap", "activity_taps"]

"""Keras' dropout, as TensorFlow lowers it in a traced training-mode call(), folded back
into one `dropout` node (`nn.Dropout` in model.py).

Keras 3 on TensorFlow (`stateless_dropout`) computes
    keep = uniform(shape(x)) >= rate;  where(keep, x * (1 / (1 - rate)), 0)
which is exactly what `nn.Dropout(rate)` does in train(). A draw over another shape (a
`noise_shape`) is left as it is: still correct, only less idiomatic.
"""

from __future__ import annotations

import re

from tf2torch.ir import Graph, Node, SourceRef, Value


def fold_dropout(graph: Graph) -> None:
    """Replace every recognised dropout chain in `graph` by a `dropout` node."""
    producers = {id(v): n for n in graph.nodes for v in n.outputs}
    uses: dict[int, int] = {}
    for node in graph.nodes:
        for v in node.inputs:
            uses[id(v)] = uses.get(id(v), 0) + 1
    for v in graph.outputs:
        uses[id(v)] = uses.get(id(v), 0) + 1
    for node in list(graph.nodes):
        match = _match(node, producers, uses)
        if match is None:
            continue
        x, rate, chain = match
        name = node.source.name.split("/stateless_dropout")[0].split("/")[-1]
        folded = Node("dropout", [x], node.outputs, SourceRef("tf", "Dropout", re.sub(r"(_\d+)+$", "", name)),
                      {"rate": rate})
        graph.nodes[graph.nodes.index(node)] = folded
        for dead in chain:
            graph.nodes.remove(dead)


def _match(node: Node, producers: dict, uses: dict) -> tuple[Value, float, list[Node]] | None:
    """(x, rate, the nodes the fold makes dead) when `node` is where(keep, x * scale, 0)."""
    if node.op != "tf_nary" or node.attrs.get("fn") != "where":
        return None
    ops = node.attrs["operands"]
    if [op[0] for op in ops] != ["value", "value", "scalar"] or ops[2][1] != 0:
        return None
    keep, scaled = producers.get(id(node.inputs[ops[0][1]])), producers.get(id(node.inputs[ops[1][1]]))
    if not (_binary(keep, "ge") and _binary(scaled, "mul")):
        return None
    draw = producers.get(id(keep.inputs[0]))
    if draw is None or draw.op != "tf_random" or draw.attrs["distribution"] != "uniform":
        return None
    rate, scale = float(keep.attrs["operands"][1][1]), float(scaled.attrs["operands"][1][1])
    x = scaled.inputs[0]
    if not 0 < rate < 1 or abs(scale * (1 - rate) - 1) > 1e-6 or not _same_shape(draw, x):
        return None
    if any(uses.get(id(n.outputs[0]), 0) != 1 for n in (keep, scaled, draw)):
        return None  # the mask or the draw is used elsewhere: not a plain dropout
    return x, rate, [draw, keep, scaled]


def _binary(node: Node | None, fn: str) -> bool:
    return (node is not None and node.op == "tf_binary" and node.attrs.get("fn") == fn
            and [op[0] for op in node.attrs["operands"]] == ["value", "scalar"])


def _same_shape(draw: Node, x: Value) -> bool:
    """The draw has x's shape: every size is x's (as a run-time `x.shape[i]` or the same constant)."""
    items = draw.attrs["shape"]
    if len(items) != len(x.spec.shape) or (draw.inputs and draw.inputs[0] is not x):
        return False
    return all((item == ("dim", 0, i) and draw.inputs) or item == size
               for i, (item, size) in enumerate(zip(items, x.spec.shape)))

"""Which outputs of a converted graph depend on a random draw (keras.random in a traced
layer): those cannot match Keras value for value, only in shape."""

from __future__ import annotations

from tf2torch.ir import Graph, Node, Value


def random_outputs(graph: Graph, training: bool = False) -> list[Value]:
    """The graph's outputs computed, directly or through a traced sub-graph, from a `tf_random`
    node (in `training` mode, a traced layer runs its training-mode sub-graph when it has one)."""
    # One pass in the graph's (topological) node order: no recursion, so a 1,000-layer network
    # is no deeper to walk than a small one.
    drawn: set[int] = set()
    for node in graph.nodes:
        if _draws(node, training) or any(id(v) in drawn for v in node.inputs):
            drawn.update(id(v) for v in node.outputs)
    return [v for v in graph.outputs if id(v) in drawn]


def _draws(node: Node, training: bool) -> bool:
    if node.op == "tf_random":
        return True
    if node.op != "tf_subgraph":
        return False
    inner = (training and node.attrs.get("train_graph")) or node.attrs.get("graph")
    return isinstance(inner, Graph) and bool(random_outputs(inner, training))

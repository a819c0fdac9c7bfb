"""Which outputs of a converted graph depend on a random draw (keras.random in a traced
layer): those cannot match Keras value for value, only in shape."""

from __future__ import annotations

from tf2torch.ir import Graph, Value


def random_outputs(graph: Graph) -> list[Value]:
    """The graph's outputs computed, directly or through a traced sub-graph, from a `tf_random` node."""
    drawn: dict[int, bool] = {}

    def depends(value: Value) -> bool:
        key = id(value)
        if key not in drawn:
            drawn[key] = False  # a cycle guard; graphs are acyclic
            node = value.producer
            if node is None:
                return False
            drawn[key] = _draws(node) or any(depends(v) for v in node.inputs)
        return drawn[key]

    return [v for v in graph.outputs if depends(v)]


def _draws(node) -> bool:
    if node.op == "tf_random":
        return True
    inner = node.attrs.get("graph") if node.op == "tf_subgraph" else None
    return isinstance(inner, Graph) and bool(random_outputs(inner))

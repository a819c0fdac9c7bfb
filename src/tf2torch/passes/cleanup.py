"""CancelTransposesPass and DeadCodePass."""

from __future__ import annotations

from tf2torch.ir import Graph


def cancel_transposes(graph: Graph) -> bool:
    """transpose(transpose(x)) -> one transpose, or none when they cancel.

    before: a -> transpose(p) -> t1 -> transpose(q) -> t2 -> ...
    after:  a -> transpose(p o q) -> t2   (or a -> ... when p o q is the identity)
    """
    modified = False
    for node in list(graph.nodes):
        if node.op != "transpose" or node not in graph.nodes:
            continue
        src = node.inputs[0].producer
        if src is not None and src.op == "transpose" and src in graph.nodes:
            node.attrs["dims"] = tuple(src.attrs["dims"][d] for d in node.attrs["dims"])
            node.inputs = [src.inputs[0]]
            modified = True
        if node.attrs["dims"] == tuple(range(len(node.attrs["dims"]))):
            graph.replace_uses(node.outputs[0], node.inputs[0])
            graph.nodes.remove(node)
            modified = True
    return modified


def remove_dead_code(graph: Graph) -> bool:
    """Drop nodes none of whose outputs is used (by a node or as a graph output)."""
    modified = False
    used = {id(v) for v in graph.outputs}
    for node in reversed(list(graph.nodes)):
        if any(id(v) in used for v in node.outputs):
            used.update(id(v) for v in node.inputs)
        else:
            graph.nodes.remove(node)
            modified = True
    return modified

"""Attention written out in TF ops -> one `F.scaled_dot_product_attention` (IR op tf_sdpa).

    scores = einsum(q, k) or matmul(q, k, transpose_b=True)
    scores = scores * c                    (optional; also q * c before the product)
    scores = scores + mask                 (optional additive mask)
    out    = einsum / matmul(softmax(scores), v)

is exactly softmax(q k^T * c + mask) v, what SDPA computes (its float mask is added to the
scaled scores). Heads may sit on axis 1 (batch, heads, steps, depth) or, as in Keras'
MultiHeadAttention, on axis 2 (batch, steps, heads, depth): then SDPA gets transposed views.
Every intermediate must be used only by the next step, so nothing else needs it.
"""

from __future__ import annotations

import numpy as np

from tf2torch.frontends.tf.context import OpContext
from tf2torch.ir import Node, Value


def _equation(node: Node) -> tuple[str, str, str] | None:
    eq = node.attrs.get("equation", "").replace(" ", "")
    if "->" not in eq or eq.count(",") != 1 or "." in eq:
        return None
    ins, out = eq.split("->")
    a, b = ins.split(",")
    return a, b, out


def _scores_layout(node: Node) -> str | None:
    """"steps_first" for q (b,t,n,h), k (b,s,n,h) -> (b,n,t,s); "heads_first" for the (b,n,t,h) form."""
    if node.op == "tf_matmul":
        ok = node.attrs["transpose_b"] and not node.attrs["transpose_a"] and node.inputs[0].rank == 4
        return "heads_first" if ok else None
    parts = _equation(node)
    if parts is None or {len(p) for p in parts} != {4} or len(set(parts[0] + parts[1])) != 5:
        return None
    q, k, out = parts
    if q[0] == k[0] and q[2:] == k[2:] and out == q[0] + q[2] + q[1] + k[1]:
        return "steps_first"
    if q[:2] == k[:2] and q[3] == k[3] and out == q[:3] + k[2]:
        return "heads_first"
    return None


def values_layout(node: Node) -> str | None:
    """The layout of `node` as the last product of an attention, probs @ v (see _scores_layout)."""
    if node.op == "tf_matmul":
        ok = not node.attrs["transpose_a"] and not node.attrs["transpose_b"]
        return "heads_first" if ok else None
    parts = _equation(node)
    if parts is None or {len(p) for p in parts} != {4}:
        return None
    p, v, out = parts
    if p[0] == v[0] and v[1] == p[3] and out == p[0] + p[2] + v[2] + v[3] and p[1] == v[2]:
        return "steps_first"
    if p[:2] == v[:2] and v[2] == p[3] and out == p[:3] + v[3]:
        return "heads_first"
    return None


def _two_values(node: Node) -> bool:
    return all(op[0] == "value" for op in node.attrs["operands"]) and len(node.inputs) == 2


def _scalar_factor(node: Node) -> float | None:
    """c if `node` is x * c for a scalar c."""
    if node is None or node.op != "tf_binary" or node.attrs["fn"] != "mul" or len(node.inputs) != 1:
        return None
    scalars = [op[1] for op in node.attrs["operands"] if op[0] == "scalar"]
    return float(scalars[0]) if len(scalars) == 1 else None


def fold_attention(ctx: OpContext, last: Node) -> Value | None:
    """The tf_sdpa node replacing the attention ending in `last` = probs @ v, or None."""
    product = values_layout(last) if _two_values(last) else None
    if product is None:
        return None
    probs, v = last.inputs
    graph = ctx.importer.graph
    uses = ctx.importer.tf_uses

    def only_use(value: Value, node: Node) -> bool:
        return value not in graph.outputs and uses.get(id(value)) == 1 and graph.consumers(value) == [node]

    softmax = probs.producer
    if softmax is None or softmax.op != "softmax" or softmax.attrs["log"] or softmax.attrs["axis"] != probs.rank - 1:
        return None
    if probs.rank != 4 or not only_use(probs, last):
        return None
    dead = [softmax]
    x, mask, scale = softmax.inputs[0], None, 1.0
    node = x.producer
    if node is not None and node.op == "tf_binary" and node.attrs["fn"] == "add" and _two_values(node):
        for scores_side, mask_side in (node.inputs, node.inputs[::-1]):
            inner = scores_side.producer
            if inner is not None and (inner.op in ("tf_einsum", "tf_matmul") or _scalar_factor(inner) is not None):
                if not only_use(x, softmax):
                    return None
                dead.append(node)
                x, mask = scores_side, mask_side
                break
        else:
            return None
    factor = _scalar_factor(x.producer)
    if factor is not None:
        if not only_use(x, dead[-1]):
            return None
        dead.append(x.producer)
        scale *= factor
        x = x.producer.inputs[0]
    product_node = x.producer
    if product_node is None or product_node.op not in ("tf_einsum", "tf_matmul") or not _two_values(product_node):
        return None
    layout = _scores_layout(product_node)
    if layout is None or layout != product or not only_use(x, dead[-1]):
        return None
    dead.append(product_node)
    q, k = product_node.inputs
    if mask is not None and mask.rank != 4:
        return None
    pre = _scalar_factor(q.producer)
    if pre is not None and only_use(q, product_node) and q is not k:
        dead.append(q.producer)
        scale *= pre
        q = q.producer.inputs[0]
    for node in dead + [last]:
        graph.nodes.remove(node)
    depth = q.spec.shape[-1]
    default = depth is not None and np.float32(scale) == np.float32(1.0 / np.sqrt(depth))
    attrs = {"heads_first": layout == "heads_first", "scale": None if default else float(np.float32(scale)),
             "masked": mask is not None}
    inputs = [q, k, v] + ([mask] if mask is not None else [])
    return ctx.add("tf_sdpa", inputs, attrs=attrs).outputs[0]

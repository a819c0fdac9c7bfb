"""dense, embedding, dot."""

from __future__ import annotations

from tf2torch.codegen.literals import call
from tf2torch.codegen.program import ModuleBuilder
from tf2torch.converters.params import frozen_names, state_array
from tf2torch.converters.registry import register_converter
from tf2torch.ir import Node


@register_converter("dense")
def convert_dense(node: Node, b: ModuleBuilder) -> None:
    x = node.inputs[0]
    kernel = node.params["kernel"].array  # (in, units)
    comment = None
    if x.feature_order is not None:
        kernel = kernel[x.feature_order]
        comment = "Weight columns reordered from Keras' channels-last flatten order: no permute needed."
    state = {"weight": state_array(kernel.T)}
    if "bias" in node.params:
        state["bias"] = state_array(node.params["bias"].array)
    kwargs = {} if "bias" in node.params else {"bias": False}
    ctor = call("nn.Linear", node.attrs["in_features"], node.attrs["units"], **kwargs)
    mod = b.submodule(node, ctor, state, frozen=frozen_names(node, {"kernel": "weight", "bias": "bias"}), comment=comment)
    b.emit(node.outputs[0], f"{mod}({b.var(x)})")


@register_converter("embedding")
def convert_embedding(node: Node, b: ModuleBuilder) -> None:
    ctor = call("nn.Embedding", node.attrs["num"], node.attrs["dim"])
    state = {"weight": state_array(node.params["embeddings"].array)}
    mod = b.submodule(node, ctor, state, frozen=frozen_names(node, {"embeddings": "weight"}))
    b.emit(node.outputs[0], f"{mod}({b.var(node.inputs[0])})")


@register_converter("dot")
def convert_dot(node: Node, b: ModuleBuilder) -> None:
    a, c = node.inputs
    va, vc = b.var(a), b.var(c)
    if node.attrs["normalize"]:
        F = b.use_functional()
        va = b.temp(f"{va}_unit", f"{F}.normalize({va}, dim={node.attrs['axes'][0]})")
        vc = b.temp(f"{vc}_unit", f"{F}.normalize({vc}, dim={node.attrs['axes'][1]})")
    letters_a = "bij"[: a.rank]
    letters_c = "bkl"[: c.rank]
    ax, cx = node.attrs["axes"]
    letters_c = letters_c[:cx] + letters_a[ax] + letters_c[cx + 1 :]
    out = "b" + "".join(ch for ch in letters_a[1:] if ch != letters_a[ax]) + "".join(
        ch for ch in letters_c[1:] if ch != letters_a[ax]
    )
    expr = f'torch.einsum("{letters_a},{letters_c}->{out}", {va}, {vc})'
    if len(out) == 1:
        expr += ".unsqueeze(1)"
    b.emit(node.outputs[0], expr)

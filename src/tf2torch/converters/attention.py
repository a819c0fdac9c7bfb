"""Attention and transformer parts: multi_head_attention (lowered to
F.scaled_dot_product_attention), dot_attention (keras Attention / AdditiveAttention),
einsum_dense, rms_norm, unit_norm, repeat_vector, position_embedding, take_step."""

from __future__ import annotations

import numpy as np

from tf2torch.codegen.literals import call, literal
from tf2torch.codegen.program import ModuleBuilder
from tf2torch.converters.params import state_array
from tf2torch.converters.registry import register_converter
from tf2torch.ir import Node

MHA_HELPER = '''
class MultiHeadAttention(nn.Module):
    """keras.layers.MultiHeadAttention through F.scaled_dot_product_attention (a softmax when the
    scores are returned). Masks are Keras' (True = attend); `masked_value` is what Keras puts at
    masked scores; `zero_masked_rows`: Keras 3 gives a fully masked row zero probabilities, not
    uniform ones; `use_gate`: each head's output times sigmoid(gate(query))."""

    def __init__(
        self, num_heads: int, key_dim: int, query_features: int, value_dim: int | None = None,
        key_features: int | None = None, value_features: int | None = None, output_shape: tuple[int, ...] | None = None,
        use_bias: bool = True, dropout: float = 0.0, rank: int = 3, attention_axes: tuple[int, ...] = (1,),
        masked_value: float = -1e9, zero_masked_rows: bool = False, use_gate: bool = False,
    ) -> None:
        super().__init__()
        value_dim = value_dim or key_dim
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim
        self.output_shape = output_shape or (query_features,)
        self.dropout = dropout
        self.attention_axes = attention_axes
        self.masked_value = masked_value
        self.zero_masked_rows = zero_masked_rows
        # (batch, *axes, heads, head_dim) -> (batch, *other axes, heads, attention positions, head_dim)
        others = [a for a in range(1, rank - 1) if a not in attention_axes]
        self.split_order = (0, *others, rank - 1, *attention_axes, rank)
        self.merge_order = tuple(self.split_order.index(a) for a in range(rank + 1))
        self.query = nn.Linear(query_features, num_heads * key_dim, bias=use_bias)
        self.key = nn.Linear(key_features or query_features, num_heads * key_dim, bias=use_bias)
        self.value = nn.Linear(value_features or query_features, num_heads * value_dim, bias=use_bias)
        self.gate = nn.Linear(query_features, num_heads * value_dim, bias=use_bias) if use_gate else None
        self.attention_output = nn.Linear(num_heads * value_dim, math.prod(self.output_shape), bias=use_bias)

    def split_heads(self, x: torch.Tensor, head_dim: int) -> torch.Tensor:
        x = x.unflatten(-1, (self.num_heads, head_dim)).permute(self.split_order)
        return x.flatten(-1 - len(self.attention_axes), -2)

    def merge_heads(self, x: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        x = x.unflatten(-2, [query.shape[a] for a in self.attention_axes])
        return x.permute(self.merge_order).flatten(-2)

    def project_output(self, x: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        x = self.merge_heads(x, query)
        if self.gate is not None:
            x = x * torch.sigmoid(self.gate(query))
        return self.attention_output(x).unflatten(-1, self.output_shape)

    def forward(
        self, query: torch.Tensor, value: torch.Tensor, key: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None, query_mask: torch.Tensor | None = None,
        value_mask: torch.Tensor | None = None, use_causal_mask: bool = False, return_attention_scores: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        key = value if key is None else key
        q = self.split_heads(self.query(query), self.key_dim)
        k = self.split_heads(self.key(key), self.key_dim)
        v = self.split_heads(self.value(value), self.value_dim)
        mask = None if attention_mask is None else attention_mask.bool()
        if query_mask is not None:
            mask = query_mask.bool()[:, :, None] if mask is None else mask & query_mask.bool()[:, :, None]
        if value_mask is not None:
            mask = value_mask.bool()[:, None, :] if mask is None else mask & value_mask.bool()[:, None, :]
        dropout = self.dropout if self.training else 0.0
        scale = self.key_dim**-0.5
        if mask is None and not return_attention_scores:
            x = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=use_causal_mask, scale=scale)
            return self.project_output(x, query)
        if use_causal_mask:
            causal = q.new_ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
            mask = causal if mask is None else mask & causal
        if mask is not None:
            mask = mask.unsqueeze(-3)  # broadcast over the heads
        if return_attention_scores:
            scores = torch.matmul(q * scale, k.transpose(-1, -2))
            if mask is not None:
                scores = scores.masked_fill(~mask, self.masked_value)
            scores = torch.softmax(scores, dim=-1)
            if mask is not None and self.zero_masked_rows:
                scores = scores.masked_fill(~mask, 0.0)
            x = torch.matmul(F.dropout(scores, dropout), v)
        else:
            bias = q.new_zeros(mask.shape).masked_fill(~mask, self.masked_value)
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout, scale=scale)
            if self.zero_masked_rows:
                x = x * mask.any(dim=-1, keepdim=True)
        x = self.project_output(x, query)
        if return_attention_scores:
            return x, scores.unflatten(-1, [key.shape[a] for a in self.attention_axes]).unflatten(
                -1 - len(self.attention_axes), [query.shape[a] for a in self.attention_axes])
        return x
'''

# Keras 3 on the TensorFlow backend, dot-product path: where(mask, logits, -0.7 * f32 max).
K3_SDPA_MASKED_VALUE = float(np.float32(3.38953e38 * -0.7))


def roles_index(attrs: dict, role: str) -> int:
    return attrs["roles"].index(role)


@register_converter("multi_head_attention")
def convert_multi_head_attention(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    p = node.params
    b.use_functional()
    b.imports.add("import math")
    cls = b.helper("MultiHeadAttention", MHA_HELPER)
    heads, key_dim, value_dim = a["num_heads"], a["key_dim"], a["value_dim"]
    query_kernel = p["query_kernel"].array
    kwargs: dict = {"num_heads": heads, "key_dim": key_dim, "query_features": int(query_kernel.shape[0])}
    if value_dim != key_dim:
        kwargs["value_dim"] = value_dim
    key_features, value_features = int(p["key_kernel"].array.shape[0]), int(p["value_kernel"].array.shape[0])
    if key_features != kwargs["query_features"]:
        kwargs["key_features"] = key_features
    if value_features != kwargs["query_features"]:
        kwargs["value_features"] = value_features
    out_shape = tuple(int(d) for d in p["output_kernel"].array.shape[2:])
    if out_shape != (kwargs["query_features"],):
        kwargs["output_shape"] = out_shape
    use_bias = "query_bias" in p
    if not use_bias:
        kwargs["use_bias"] = False
    if a["dropout"]:
        kwargs["dropout"] = a["dropout"]
    rank = node.inputs[roles_index(a, "query")].rank
    if rank != 3:
        kwargs["rank"] = rank
    if tuple(a["attention_axes"]) != (1,):
        kwargs["attention_axes"] = tuple(a["attention_axes"])
    if a["masked_value"] != -1e9:
        kwargs["masked_value"] = a["masked_value"]
    if a["zero_masked_rows"]:
        kwargs["zero_masked_rows"] = True
    if "gate_kernel" in p:
        kwargs["use_gate"] = True
    state = {}
    for name in ("query", "key", "value", "gate"):
        if f"{name}_kernel" not in p:
            continue
        kernel = p[f"{name}_kernel"].array  # (features, heads, head_dim)
        state[f"{name}.weight"] = state_array(kernel.reshape(kernel.shape[0], -1).T)
        if use_bias:
            state[f"{name}.bias"] = state_array(p[f"{name}_bias"].array.reshape(-1))
    out_kernel = p["output_kernel"].array  # (heads, value_dim, *output_shape)
    state["attention_output.weight"] = state_array(out_kernel.reshape(heads * value_dim, -1).T)
    if use_bias:
        state["attention_output.bias"] = state_array(p["output_bias"].array.reshape(-1))
    frozen = ("*",) if not p["query_kernel"].trainable else ()
    comment = None
    masked = any(r in a["roles"] for r in ("attention_mask", "query_mask", "value_mask"))
    if masked and a["masked_value"] == K3_SDPA_MASKED_VALUE:
        comment = "Keras 3 masks scores with -0.7 * float32 max on this path (a fully masked row is uniform)."
    mod = b.submodule(node, call(cls, **kwargs), state, frozen=frozen, comment=comment)
    _emit_attention_call(node, b, mod, ("key", "attention_mask", "query_mask", "value_mask"))


def _emit_attention_call(node: Node, b: ModuleBuilder, mod: str, optional_roles: tuple[str, ...]) -> None:
    """`outputs = self.layer(query, value, key=..., ..._mask=..., flags)` from the node's roles."""
    a = node.attrs
    roles = a["roles"]
    args = [b.var(node.inputs[roles.index("query")]), b.var(node.inputs[roles.index("value")])]
    for role in optional_roles:
        if role in roles:
            args.append(f"{role}={b.var(node.inputs[roles.index(role)])}")
    if a["use_causal_mask"]:
        args.append("use_causal_mask=True")
    if a["return_attention_scores"]:
        args.append("return_attention_scores=True")
    b.emit(node.outputs, f"{mod}({', '.join(args)})")


DOT_ATTENTION_HELPER = '''
class DotAttention(nn.Module):
    """keras.layers.Attention (score_mode "dot" or "concat") and AdditiveAttention
    ("additive"): scores, masked with -1e9, softmax, weighted sum of the values."""

    def __init__(self, score_mode: str = "dot", use_scale: bool = False, scale_shape: tuple[int, ...] = (),
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.score_mode = score_mode
        self.dropout = dropout
        self.scale = nn.Parameter(torch.ones(scale_shape)) if use_scale else None
        self.concat_score_weight = nn.Parameter(torch.ones(())) if score_mode == "concat" else None

    def scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        if self.score_mode == "dot":
            scores = torch.matmul(query, key.transpose(-1, -2))
            return scores if self.scale is None else scores * self.scale
        pairs = query.unsqueeze(-2) + key.unsqueeze(-3)  # (batch, Tq, Tv, dim)
        if self.score_mode == "concat":
            pairs = pairs if self.scale is None else self.scale * pairs
            return self.concat_score_weight * torch.tanh(pairs).sum(-1)
        return (torch.tanh(pairs) if self.scale is None else self.scale * torch.tanh(pairs)).sum(-1)

    def forward(
        self, query: torch.Tensor, value: torch.Tensor, key: torch.Tensor | None = None,
        query_mask: torch.Tensor | None = None, value_mask: torch.Tensor | None = None,
        use_causal_mask: bool = False, return_attention_scores: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        scores = self.scores(query, value if key is None else key)
        mask = None if value_mask is None else value_mask[:, None, :]
        if use_causal_mask:
            causal = scores.new_ones(scores.shape[-2:], dtype=torch.bool).tril()
            mask = causal if mask is None else mask & causal
        if mask is not None:
            scores = torch.where(mask, scores, scores - 1e9)
        weights = torch.softmax(scores, dim=-1)
        x = torch.matmul(F.dropout(weights, self.dropout, self.training), value)
        if query_mask is not None:
            x = x * query_mask[..., None]
        return (x, weights) if return_attention_scores else x
'''


@register_converter("dot_attention")
def convert_dot_attention(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    b.use_functional()
    cls = b.helper("DotAttention", DOT_ATTENTION_HELPER)
    kwargs: dict = {}
    if a["score_mode"] != "dot":
        kwargs["score_mode"] = a["score_mode"]
    state = {}
    if "scale" in node.params:
        scale = node.params["scale"].array
        kwargs["use_scale"] = True
        if scale.shape:
            kwargs["scale_shape"] = tuple(int(d) for d in scale.shape)
        state["scale"] = state_array(scale)
    if "concat_score_weight" in node.params:
        state["concat_score_weight"] = state_array(node.params["concat_score_weight"].array)
    if a["dropout"]:
        kwargs["dropout"] = a["dropout"]
    frozen = ("*",) if state and not next(iter(node.params.values())).trainable else ()
    mod = b.submodule(node, call(cls, **kwargs), state, frozen=frozen)
    _emit_attention_call(node, b, mod, ("key", "query_mask", "value_mask"))


EINSUM_DENSE_HELPER = '''
class EinsumDense(nn.Module):
    """keras.layers.EinsumDense: torch.einsum(equation, x, kernel) (+ bias, broadcast)."""

    def __init__(self, equation: str, kernel_shape: tuple[int, ...], bias_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.equation = equation
        self.kernel = nn.Parameter(torch.empty(kernel_shape))
        self.bias = nn.Parameter(torch.empty(bias_shape)) if bias_shape is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.einsum(self.equation, x, self.kernel)
        return x if self.bias is None else x + self.bias
'''


@register_converter("einsum_dense")
def convert_einsum_dense(node: Node, b: ModuleBuilder) -> None:
    cls = b.helper("EinsumDense", EINSUM_DENSE_HELPER)
    kernel = node.params["kernel"].array
    kwargs: dict = {"equation": node.attrs["equation"], "kernel_shape": tuple(int(d) for d in kernel.shape)}
    state = {"kernel": state_array(kernel)}
    if "bias" in node.params:
        bias = node.params["bias"].array
        kwargs["bias_shape"] = tuple(int(d) for d in bias.shape)
        state["bias"] = state_array(bias)
    frozen = ("*",) if not node.params["kernel"].trainable else ()
    mod = b.submodule(node, call(cls, **kwargs), state, frozen=frozen)
    b.emit(node.outputs[0], f"{mod}({b.var(node.inputs[0])})")


@register_converter("rms_norm")
def convert_rms_norm(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    x = node.inputs[0]
    shape = tuple(int(x.spec.shape[d]) for d in a["axes"])
    kwargs: dict = {"eps": a["eps"]}
    state = {}
    if "scale" in node.params:
        state["weight"] = state_array(node.params["scale"].array.reshape(shape))
    else:
        kwargs["elementwise_affine"] = False
    frozen = ("weight",) if "scale" in node.params and not node.params["scale"].trainable else ()
    mod = b.submodule(node, call("nn.RMSNorm", shape[0] if len(shape) == 1 else shape, **kwargs), state, frozen=frozen)
    b.emit(node.outputs[0], f"{mod}({b.var(x)})")


@register_converter("unit_norm")
def convert_unit_norm(node: Node, b: ModuleBuilder) -> None:
    # Keras 3: x / max(||x||, 1e-12); Keras 2 (l2_normalize): x / max(||x||, 1e-6).
    F = b.use_functional()
    dims = node.attrs["axes"]
    dim = dims[0] if len(dims) == 1 else tuple(dims)
    eps = literal(node.attrs["eps"])
    b.emit(node.outputs[0], f"{F}.normalize({b.var(node.inputs[0])}, dim={literal(dim)}, eps={eps})")


@register_converter("repeat_vector")
def convert_repeat_vector(node: Node, b: ModuleBuilder) -> None:
    x = b.var(node.inputs[0])
    b.emit(node.outputs[0], f"{x}.unsqueeze(1).expand(-1, {node.attrs['n']}, -1)")


@register_converter("position_embedding")
def convert_position_embedding(node: Node, b: ModuleBuilder) -> None:
    # keras_hub PositionEmbedding: the first `steps` rows of a learned table, broadcast over
    # the batch. A plain nn.Embedding of torch.arange(steps) gives exactly that.
    x = b.var(node.inputs[0])
    table = node.params["embeddings"]
    ctor = call("nn.Embedding", int(table.array.shape[0]), int(table.array.shape[1]))
    frozen = ("*",) if not table.trainable else ()
    mod = b.submodule(node, ctor, {"weight": state_array(table.array)}, frozen=frozen)
    positions = f"torch.arange({x}.shape[1], device={x}.device)"
    b.emit(node.outputs[0], f"{mod}({positions}).expand({x}.shape[0], -1, -1)")


@register_converter("take_step")
def convert_take_step(node: Node, b: ModuleBuilder) -> None:
    b.emit(node.outputs[0], f"{b.var(node.inputs[0])}[:, {node.attrs['index']}]")

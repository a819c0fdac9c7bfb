"""Attention and transformer parts: MultiHeadAttention, GroupedQueryAttention, Attention,
AdditiveAttention, EinsumDense, RMSNormalization, UnitNormalization, RepeatVector, and the
keras_hub layers (TransformerEncoder/Decoder, PositionEmbedding, ReversibleEmbedding,
TokenAndPositionEmbedding) with their Bert/GPT-2 backbones, which are converted by config.

keras_hub backbones save only their constructor arguments; `expand_keras_hub_models`
(called when a .keras archive is read) rewrites them into the functional graph their
constructor builds, with the same layer classes in the same order, so the weights file
lines up with Keras' own attribute paths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from tf2torch.errors import BadModelFile
from tf2torch.frontends.keras.archive import read_vars_group
from tf2torch.frontends.keras.context import LayerContext
from tf2torch.frontends.keras.importers.activations import apply_activation
from tf2torch.frontends.keras.masking import combine_masks, tokens_mask
from tf2torch.frontends.keras.registry import register_importer
from tf2torch.frontends.keras.weight_check import Shape, check_weights, projection_shapes
from tf2torch.ir import TensorSpec, Value

# Keras 3 on the TensorFlow backend, dot-product path: where(mask, logits, -0.7 * f32 max).
K3_SDPA_MASKED_VALUE = float(np.float32(3.38953e38 * -0.7))


# -- weights in sub-objects ---------------------------------------------------------------


def _group(ctx: LayerContext) -> Any:
    reader = ctx.reader
    if reader is None or not hasattr(reader, "group"):
        return None
    return reader.group(ctx.entry.name)


def _vars(ctx: LayerContext, group: Any, path: str) -> list[np.ndarray]:
    node = group
    for part in path.split("/"):
        if node is None or part not in node:
            raise ctx.unsupported(f"a weights file without {path!r} in this layer")
        node = node[part]
    return read_vars_group(node["vars"]) if "vars" in node else []


def _mha_weights(ctx: LayerContext, prefix: str, use_bias: bool, use_gate: bool = False,
                 expected: dict[str, list[Shape]] | None = None) -> dict[str, np.ndarray]:
    """query/key/value/output kernels (and biases) of a MultiHeadAttention; with use_gate
    also the gate's (an EinsumDense like the value projection, applied to the query).
    `expected`: each projection's weight shapes (weight_check.projection_shapes), checked."""
    names = ("query", "key", "value", "output") + (("gate",) if use_gate else ())
    step = 2 if use_bias else 1
    group = _group(ctx)
    if group is not None:
        # Keras 3 stores the gate as `_gate_dense` (the other projections without underscore).
        order = names
        flat = [w for n in names
                for w in _vars(ctx, group, f"{prefix}_{n}_dense" if f"{prefix}_{n}_dense" in group else f"{prefix}{n}_dense")]
    else:  # legacy HDF5: weight_names in the order query, key, (gate,) value, attention_output
        order = ("query", "key", "gate", "value", "output") if use_gate else names
        flat = ctx.weights()
    if expected is not None:
        flat = check_weights(ctx, flat, [shape for n in order for shape in expected[n]])
    elif len(flat) != len(order) * step:
        raise BadModelFile(f"{ctx.file}: layer {ctx.name!r} ({ctx.class_name}): the file holds {len(flat)} "
                           f"attention weights, its config implies {len(order) * step}")
    out = {}
    for i, name in enumerate(order):
        out[f"{name}_kernel"] = flat[i * step]
        if use_bias:
            out[f"{name}_bias"] = flat[i * step + 1]
    return {key: out[key] for key in (f"{n}_{w}" for n in names for w in ("kernel", "bias")) if key in out}


def _mha_shapes(cfg: dict, query: Value, value: Value, key: Value | None, key_dim: int, value_dim: int,
                use_bias: bool) -> dict[str, list[Shape]]:
    """The projections' weight shapes MultiHeadAttention.build() creates from the inputs."""
    heads = int(cfg["num_heads"])
    features = query.spec.shape[-1]
    out = cfg.get("output_shape")
    out_dims = (features,) if not out else ((int(out),) if isinstance(out, int) else tuple(int(d) for d in out))
    return {
        "query": projection_shapes((features,), (heads, key_dim), use_bias),
        "key": projection_shapes(((key or value).spec.shape[-1],), (heads, key_dim), use_bias),
        "value": projection_shapes((value.spec.shape[-1],), (heads, value_dim), use_bias),
        "output": projection_shapes((heads, value_dim), out_dims, use_bias),
        "gate": projection_shapes((features,), (heads, value_dim), use_bias),
    }


def _sub(ctx: LayerContext, suffix: str) -> LayerContext:
    """A context whose nodes are named `<layer>/<suffix>` (one torch submodule each)."""
    return dataclasses.replace(ctx, name=f"{ctx.name}/{suffix}")


def _mask_of(ctx: LayerContext, value: Value) -> Value | None:
    for v, m in zip(ctx.inputs, ctx.input_masks):
        if v is value:
            return m
    for key, values in ctx.tensor_kwargs.items():
        masks = ctx.kwarg_masks.get(key, [])
        for v, m in zip(values, masks):
            if v is value:
                return m
    return None


# -- MultiHeadAttention -------------------------------------------------------------------


def _call_tensors(ctx: LayerContext, names: tuple[str, ...]) -> dict[str, Value]:
    """Positional tensors in call-signature order, then tensor keyword arguments."""
    found = dict(zip(names, ctx.inputs))
    for key, values in ctx.tensor_kwargs.items():
        if key in names and values:
            found[key] = values[0]
    return found


def add_attention(
    ctx: LayerContext, *, query: Value, value: Value, key: Value | None, attention_mask: Value | None,
    query_mask: Value | None, value_mask: Value | None, weights: dict[str, np.ndarray], num_heads: int,
    key_dim: int, value_dim: int, dropout: float, attention_axes: Any, use_causal_mask: bool,
    return_scores: bool, trainable: bool | None = None,
) -> list[Value]:
    rank = query.rank
    if attention_axes is None:
        axes = tuple(range(1, rank - 1))
    else:
        axes_in = attention_axes if isinstance(attention_axes, (list, tuple)) else [attention_axes]
        axes = tuple(int(a) if int(a) >= 0 else rank + int(a) for a in axes_in)
    if rank != 3 and (attention_mask is not None or query_mask is not None or value_mask is not None):
        raise ctx.unsupported("MultiHeadAttention masks on inputs of rank > 3")
    if rank != 3 and use_causal_mask:
        raise ctx.unsupported("use_causal_mask on inputs of rank > 3")
    if rank == 3 and axes != (1,):
        raise ctx.unsupported(f"attention_axes={attention_axes} on (batch, steps, features) inputs")
    # Keras 3 runs dot_product_attention (fully masked rows: uniform) only for rank-3
    # inputs without dropout and without returned scores; else its Softmax layer (-1e9,
    # masked probabilities zeroed). Keras 2 always adds -1e9 to masked scores.
    keras3_sdpa = ctx.keras_major >= 3 and dropout == 0.0 and not return_scores and rank == 3
    attrs = {
        "num_heads": num_heads, "key_dim": key_dim, "value_dim": value_dim, "dropout": dropout,
        "attention_axes": axes, "use_causal_mask": use_causal_mask, "return_attention_scores": return_scores,
        "masked_value": K3_SDPA_MASKED_VALUE if keras3_sdpa else -1e9,
        "zero_masked_rows": ctx.keras_major >= 3 and not keras3_sdpa,
    }
    roles, inputs = ["query", "value"], [query, value]
    for role, v in (("key", key), ("attention_mask", attention_mask), ("query_mask", query_mask), ("value_mask", value_mask)):
        if v is not None:
            roles.append(role)
            inputs.append(v)
    attrs["roles"] = tuple(roles)
    params = {k: ctx.param(v, "keras", trainable) for k, v in weights.items()}
    out_shape = tuple(int(d) for d in weights["output_kernel"].shape[2:])
    specs = [TensorSpec(query.spec.shape[:-1] + out_shape)]
    if return_scores:
        others = tuple(query.spec.shape[a] for a in range(1, rank - 1) if a not in axes)
        t = tuple(query.spec.shape[a] for a in axes)
        s = tuple(value.spec.shape[a] for a in axes)
        specs.append(TensorSpec((query.spec.shape[0],) + others + (num_heads,) + t + s))
    return ctx.add("multi_head_attention", inputs, specs, attrs, params).outputs


@register_importer("MultiHeadAttention")
def import_multi_head_attention(ctx: LayerContext) -> list[Value]:
    cfg = ctx.config
    if cfg.get("sliding_window"):
        raise ctx.unsupported("sliding_window")
    t = _call_tensors(ctx, ("query", "value", "key", "query_mask", "value_mask", "key_mask", "attention_mask"))
    query, value = t["query"], t["value"]
    key = t.get("key")
    use_bias = cfg.get("use_bias", True)
    key_dim = int(cfg["key_dim"])
    value_dim = int(cfg.get("value_dim") or key_dim)
    expected = _mha_shapes(cfg, query, value, key, key_dim, value_dim, use_bias)
    weights = _mha_weights(ctx, "", use_bias, bool(cfg.get("use_gate", False)), expected)
    query_mask = t.get("query_mask") or _mask_of(ctx, query)
    value_mask = t.get("value_mask") or _mask_of(ctx, value)
    key_mask = t.get("key_mask") or (_mask_of(ctx, key) if key is not None else None)
    if key_mask is not None and key_mask is not value_mask:
        value_mask = key_mask if value_mask is None else combine_masks(ctx, [value_mask, key_mask], "and")
    kwargs = ctx.call.kwargs
    return_scores = bool(kwargs.get("return_attention_scores", False))
    outputs = add_attention(
        ctx, query=query, value=value, key=key, attention_mask=t.get("attention_mask"), query_mask=query_mask,
        value_mask=value_mask, weights=weights, num_heads=int(cfg["num_heads"]), key_dim=key_dim,
        value_dim=value_dim, dropout=float(cfg.get("dropout", 0.0)), attention_axes=cfg.get("attention_axes"),
        use_causal_mask=bool(kwargs.get("use_causal_mask", False)), return_scores=return_scores,
    )
    ctx.set_output_masks([query_mask] + [None] * (len(outputs) - 1))
    return outputs


@register_importer("GroupedQueryAttention", "GroupQueryAttention")
def import_grouped_query_attention(ctx: LayerContext) -> list[Value]:
    cfg = ctx.config
    heads, kv_heads = int(cfg["num_query_heads"]), int(cfg["num_key_value_heads"])
    head_dim = int(cfg["head_dim"])
    if cfg.get("sliding_window"):
        raise ctx.unsupported("sliding_window")
    t = _call_tensors(ctx, ("query", "value", "key", "query_mask", "value_mask", "key_mask", "attention_mask"))
    query, value = t["query"], t["value"]
    if query.rank != 3:
        raise ctx.unsupported("GroupedQueryAttention on inputs of rank > 3")
    use_bias = cfg.get("use_bias", True)
    group = _group(ctx)
    if group is None:
        raise ctx.unsupported("GroupedQueryAttention from a legacy HDF5 file")
    names = ("query", "key", "value", "output") + (("gate",) if cfg.get("use_gate") else ())
    arrays = [_vars(ctx, group, f"_{n}_dense" if f"_{n}_dense" in group else f"{n}_dense") for n in names]
    features = query.spec.shape[-1]
    kv_features = (t.get("key") or value).spec.shape[-1]
    expected = {
        "query": projection_shapes((features,), (heads, head_dim), use_bias),
        "key": projection_shapes((kv_features,), (kv_heads, head_dim), use_bias),
        "value": projection_shapes((value.spec.shape[-1],), (kv_heads, head_dim), use_bias),
        "output": projection_shapes((heads, head_dim), (features,), use_bias),
        "gate": projection_shapes((features,), (heads, head_dim), use_bias),
    }
    step = 2 if use_bias else 1
    flat = check_weights(ctx, [w for pair in arrays for w in pair], [shape for n in names for shape in expected[n]])
    weights: dict[str, np.ndarray] = {}
    repeat = heads // kv_heads
    for i, name in enumerate(names):
        kernel = flat[i * step]
        bias = flat[i * step + 1] if use_bias else None
        if name in ("key", "value"):
            # Each key/value head serves `repeat` query heads (keras repeats along the heads).
            kernel = np.repeat(kernel, repeat, axis=1)
            bias = None if bias is None else np.repeat(bias, repeat, axis=0)
        weights[f"{name}_kernel"] = kernel
        if bias is not None:
            weights[f"{name}_bias"] = bias
    query_mask = t.get("query_mask") or _mask_of(ctx, query)
    value_mask = t.get("value_mask") or _mask_of(ctx, value)
    kwargs = ctx.call.kwargs
    return_scores = bool(kwargs.get("return_attention_scores", False))
    dropout = float(cfg.get("dropout", 0.0))
    outputs = add_attention(
        ctx, query=query, value=value, key=t.get("key"), attention_mask=t.get("attention_mask"),
        query_mask=query_mask, value_mask=value_mask, weights=weights, num_heads=heads, key_dim=head_dim,
        value_dim=head_dim, dropout=dropout, attention_axes=None,
        use_causal_mask=bool(kwargs.get("use_causal_mask", False)), return_scores=return_scores,
    )
    ctx.set_output_masks([query_mask] + [None] * (len(outputs) - 1))
    return outputs


# -- Attention, AdditiveAttention ---------------------------------------------------------


@register_importer("Attention", "AdditiveAttention")
def import_dot_attention(ctx: LayerContext) -> list[Value]:
    cfg = ctx.config
    tensors = list(ctx.inputs)
    if len(tensors) not in (2, 3):
        raise ctx.unsupported(f"{ctx.class_name} with {len(tensors)} inputs")
    query, value = tensors[0], tensors[1]
    key = tensors[2] if len(tensors) == 3 else None
    explicit = ctx.tensor_kwargs.get("mask")
    if explicit and len(explicit) != 2:
        raise ctx.unsupported("a mask= argument that is not [query_mask, value_mask]")
    query_mask = explicit[0] if explicit else (ctx.input_masks[0] if ctx.input_masks else None)
    value_mask = explicit[1] if explicit else (ctx.input_masks[1] if len(ctx.input_masks) > 1 else None)
    weights = list(ctx.weights())
    params = {}
    if ctx.class_name == "AdditiveAttention":
        mode = "additive"
    else:
        mode = cfg.get("score_mode", "dot")
    if cfg.get("use_scale", ctx.class_name == "AdditiveAttention"):
        params["scale"] = ctx.param(weights.pop(0), "keras")
    if mode == "concat":
        params["concat_score_weight"] = ctx.param(weights.pop(0), "keras")
    kwargs = ctx.call.kwargs
    causal = bool(kwargs.get("use_causal_mask", False) or cfg.get("causal", False))
    return_scores = bool(kwargs.get("return_attention_scores", False))
    roles, inputs = ["query", "value"], [query, value]
    for role, v in (("key", key), ("query_mask", query_mask), ("value_mask", value_mask)):
        if v is not None:
            roles.append(role)
            inputs.append(v)
    attrs = {"score_mode": mode, "dropout": float(cfg.get("dropout", 0.0)), "use_causal_mask": causal,
             "return_attention_scores": return_scores, "roles": tuple(roles)}
    specs = [TensorSpec(query.spec.shape[:-1] + value.spec.shape[-1:])]
    if return_scores:
        specs.append(TensorSpec(query.spec.shape[:-1] + value.spec.shape[1:2]))
    outputs = ctx.add("dot_attention", inputs, specs, attrs, params).outputs
    ctx.set_output_masks([query_mask] + [None] * (len(outputs) - 1))
    return outputs


# -- EinsumDense and small layers -----------------------------------------------------------


def einsum_output_shape(equation: str, x_shape: tuple, kernel_shape: tuple) -> tuple:
    inputs, output = equation.replace(" ", "").split("->")
    x_spec, k_spec = inputs.split(",")
    sizes: dict[str, Any] = dict(zip(k_spec, kernel_shape))
    ellipsis: tuple = ()
    if "..." in x_spec:
        before, after = x_spec.split("...")
        n = len(x_shape) - len(before) - len(after)
        ellipsis = tuple(x_shape[len(before):len(before) + n])
        x_spec = before + after
        x_shape = tuple(x_shape[:len(before)]) + tuple(x_shape[len(before) + n:])
    sizes.update(zip(x_spec, x_shape))
    result: list = []
    for i, part in enumerate(output.split("...")):
        if i:
            result.extend(ellipsis)
        result.extend(sizes[c] for c in part)
    return tuple(result)


@register_importer("EinsumDense")
def import_einsum_dense(ctx: LayerContext) -> list[Value]:
    cfg = ctx.config
    x = ctx.inputs[0]
    if cfg.get("lora_rank"):
        raise ctx.unsupported("EinsumDense with LoRA")
    has_bias = bool(cfg.get("bias_axes"))
    weights = ctx.weights(2 if has_bias else 1)
    equation = str(cfg["equation"]).replace(" ", "")
    params = {"kernel": ctx.param(weights[0], "keras")}
    if has_bias:
        params["bias"] = ctx.param(weights[1], "keras")
    shape = einsum_output_shape(equation, x.spec.shape, weights[0].shape)
    out = ctx.add("einsum_dense", [x], [TensorSpec(shape)], {"equation": equation}, params).outputs[0]
    return [apply_activation(ctx, out, cfg.get("activation"))]


def _norm_axes(ctx: LayerContext, rank: int) -> list[int]:
    axis = ctx.config.get("axis", -1)
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    return sorted(int(a) % rank for a in axes)


@register_importer("RMSNormalization")
def import_rms_normalization(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    axes = _norm_axes(ctx, x.rank)
    if axes != list(range(x.rank - len(axes), x.rank)) or 0 in axes:
        raise ctx.unsupported(f"RMSNormalization over axes {axes} (only trailing axes)")
    (scale,) = ctx.weights(1)
    attrs = {"axes": tuple(axes), "eps": float(ctx.config.get("epsilon", 1e-6))}
    return ctx.add("rms_norm", [x], [x.spec], attrs, {"scale": ctx.param(scale, "keras")}).outputs


@register_importer("UnitNormalization")
def import_unit_normalization(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    axes = _norm_axes(ctx, x.rank)
    if 0 in axes:
        raise ctx.unsupported("UnitNormalization over the batch axis")
    # Keras 3: x / max(||x||, 1e-12); Keras 2 (tf.math.l2_normalize): x / max(||x||, 1e-6).
    eps = 1e-12 if ctx.keras_major >= 3 else 1e-6
    return ctx.add("unit_norm", [x], [x.spec], {"axes": tuple(axes), "eps": eps}).outputs


@register_importer("RepeatVector")
def import_repeat_vector(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    n = int(ctx.config["n"])
    return ctx.add("repeat_vector", [x], [TensorSpec((x.spec.shape[0], n, x.spec.shape[1]))], {"n": n}).outputs


# -- keras_hub layers ----------------------------------------------------------------------


def _hub_activation(spec: Any) -> Any:
    name = spec.get("config") if isinstance(spec, dict) else spec
    if isinstance(name, dict):
        name = name.get("name")
    if name in ("gelu_approximate", "keras_hub>gelu_approximate"):
        return "gelu_approximate"
    return spec


def _apply_hub_activation(ctx: LayerContext, x: Value, spec: Any) -> Value:
    if _hub_activation(spec) == "gelu_approximate":
        return ctx.add("activation", [x], [x.spec], {"fn": "gelu", "approximate": True}).outputs[0]
    return apply_activation(ctx, x, spec)


@register_importer("PositionEmbedding")
def import_position_embedding(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    if ctx.call.kwargs.get("start_index") or ctx.tensor_kwargs.get("start_index"):
        raise ctx.unsupported("PositionEmbedding with start_index")
    (table,) = ctx.weights(1)
    params = {"embeddings": ctx.param(table, "VD")}
    spec = TensorSpec(x.spec.shape[:2] + (int(table.shape[1]),))
    return ctx.add("position_embedding", [x], [spec], {}, params).outputs


@register_importer("ReversibleEmbedding")
def import_reversible_embedding(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    if ctx.call.kwargs.get("reverse"):
        raise ctx.unsupported("ReversibleEmbedding(reverse=True)")
    table = ctx.weights()[0]
    params = {"embeddings": ctx.param(table, "VD")}
    out = ctx.add("embedding", [x], [TensorSpec(x.spec.shape + (int(table.shape[1]),))],
                  {"num": int(table.shape[0]), "dim": int(table.shape[1])}, params).outputs
    if ctx.config.get("mask_zero"):
        ctx.set_output_masks([tokens_mask(ctx, x)])
    return out


@register_importer("TokenAndPositionEmbedding")
def import_token_and_position_embedding(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    group = _group(ctx)
    if group is None:
        raise ctx.unsupported("TokenAndPositionEmbedding from a legacy HDF5 file")
    token = _vars(ctx, group, "token_embedding")[0]
    position = _vars(ctx, group, "position_embedding")[0]
    dim = int(token.shape[1])
    spec = TensorSpec(x.spec.shape + (dim,))
    tokens = _sub(ctx, "token_embedding").add(
        "embedding", [x], [spec], {"num": int(token.shape[0]), "dim": dim}, {"embeddings": ctx.param(token, "VD")}
    ).outputs[0]
    positions = _sub(ctx, "position_embedding").add(
        "position_embedding", [tokens], [spec], {}, {"embeddings": ctx.param(position, "VD")}
    ).outputs[0]
    out = ctx.add("add", [tokens, positions], [spec]).outputs
    ctx.set_output_masks([tokens_mask(ctx, x) if ctx.config.get("mask_zero") else None])
    return out


def _dense(ctx: LayerContext, group: Any, path: str, x: Value, activation: Any = None) -> Value:
    kernel, bias = _vars(ctx, group, path)[:2]
    sub = _sub(ctx, path.lstrip("_"))
    units = int(kernel.shape[1])
    out = sub.add("dense", [x], [TensorSpec(x.spec.shape[:-1] + (units,))],
                  {"in_features": int(kernel.shape[0]), "units": units},
                  {"kernel": ctx.param(kernel, "IO"), "bias": ctx.param(bias, "O")}).outputs[0]
    return _apply_hub_activation(sub, out, activation) if activation is not None else out


def _layer_norm(ctx: LayerContext, group: Any, path: str, x: Value, eps: float) -> Value:
    gamma, beta = _vars(ctx, group, path)[:2]
    params = {"gamma": ctx.param(gamma, "C"), "beta": ctx.param(beta, "C")}
    attrs = {"normalized_shape": (int(gamma.shape[0]),), "eps": eps}
    return _sub(ctx, path.lstrip("_")).add("layer_norm", [x], [x.spec], attrs, params).outputs[0]


def _dropout(ctx: LayerContext, path: str, x: Value, rate: float) -> Value:
    if rate == 0.0:
        return x
    return _sub(ctx, path.lstrip("_")).add("dropout", [x], [x.spec], {"rate": rate}).outputs[0]


def _hub_attention(ctx: LayerContext, group: Any, path: str, query: Value, value: Value, cfg: dict,
                   padding_mask: Value | None, attention_mask: Value | None, causal: bool,
                   query_mask: Value | None = None) -> Value:
    heads = int(cfg["num_heads"])
    hidden = int(query.spec.shape[-1])
    key_dim = hidden // heads
    sub = _sub(ctx, path.lstrip("_"))
    weights = _mha_weights(ctx, f"{path}/", True)
    return add_attention(
        sub, query=query, value=value, key=None, attention_mask=attention_mask, query_mask=query_mask,
        value_mask=padding_mask, weights=weights, num_heads=heads, key_dim=key_dim, value_dim=key_dim,
        dropout=float(cfg.get("dropout", 0.0)), attention_axes=None, use_causal_mask=causal, return_scores=False,
    )[0]


def _residual(
    ctx: LayerContext, group: Any, block: str, x: Value, eps: float, first: bool, body: Callable[[Value], Value]
) -> Value:
    """keras_hub's sublayer wrapper: `body(x) + x` with its LayerNormalization before the
    body (`normalize_first`) or after the sum."""
    residual = x
    if first:
        x = _layer_norm(ctx, group, f"_{block}_layer_norm", x, eps)
    x = body(x)
    x = _sub(ctx, f"{block}_residual").add("add", [x, residual], [x.spec]).outputs[0]
    if not first:
        x = _layer_norm(ctx, group, f"_{block}_layer_norm", x, eps)
    return x


def _feedforward(ctx: LayerContext, group: Any, x: Value, cfg: dict, eps: float, rate: float, first: bool) -> Value:
    def body(h: Value) -> Value:
        h = _dense(ctx, group, "_feedforward_intermediate_dense", h, cfg.get("activation", "relu"))
        h = _dense(ctx, group, "_feedforward_output_dense", h)
        return _dropout(ctx, "_feedforward_dropout", h, rate)

    return _residual(ctx, group, "feedforward", x, eps, first, body)


@register_importer("TransformerEncoder")
def import_transformer_encoder(ctx: LayerContext) -> list[Value]:
    cfg = ctx.config
    group = _group(ctx)
    if group is None:
        raise ctx.unsupported("TransformerEncoder from a legacy HDF5 file")
    t = _call_tensors(ctx, ("inputs", "padding_mask", "attention_mask"))
    x = t["inputs"]
    if ctx.call.kwargs.get("return_attention_scores"):
        raise ctx.unsupported("TransformerEncoder(return_attention_scores=True)")
    # keras' MultiHeadAttention also reads the Keras mask of its query and value (the
    # input, or its LayerNormalization, which keeps the mask): query rows are masked too.
    implicit = _mask_of(ctx, x)
    padding = t.get("padding_mask") or implicit
    if implicit is not None and padding is not implicit:
        padding = combine_masks(ctx, [padding, implicit], "and")
    eps = float(cfg.get("layer_norm_epsilon", 1e-5))
    rate = float(cfg.get("dropout", 0.0))
    first = bool(cfg.get("normalize_first", False))
    ctx.set_output_masks([implicit])
    x = _residual(ctx, group, "self_attention", x, eps, first, lambda h: _dropout(
        ctx, "_self_attention_dropout",
        _hub_attention(ctx, group, "_self_attention_layer", h, h, cfg, padding, t.get("attention_mask"), False,
                       query_mask=implicit),
        rate))
    return [_feedforward(ctx, group, x, cfg, eps, rate, first)]


@register_importer("TransformerDecoder")
def import_transformer_decoder(ctx: LayerContext) -> list[Value]:
    cfg = ctx.config
    group = _group(ctx)
    if group is None:
        raise ctx.unsupported("TransformerDecoder from a legacy HDF5 file")
    t = _call_tensors(ctx, ("decoder_sequence", "encoder_sequence", "decoder_padding_mask",
                            "decoder_attention_mask", "encoder_padding_mask", "encoder_attention_mask"))
    x = t["decoder_sequence"]
    encoder = t.get("encoder_sequence")
    for name in ("self_attention_cache", "cross_attention_cache"):
        if name in ctx.tensor_kwargs:
            raise ctx.unsupported(f"TransformerDecoder with {name}")
    causal = bool(ctx.call.kwargs.get("use_causal_mask", True))
    # keras_hub's CachedMultiHeadAttention reads no Keras masks itself: only the merged mask.
    padding = t.get("decoder_padding_mask") or _mask_of(ctx, x)
    ctx.set_output_masks([_mask_of(ctx, x)])
    eps = float(cfg.get("layer_norm_epsilon", 1e-5))
    rate = float(cfg.get("dropout", 0.0))
    first = bool(cfg.get("normalize_first", False))
    x = _residual(ctx, group, "self_attention", x, eps, first, lambda h: _dropout(
        ctx, "_self_attention_dropout",
        _hub_attention(ctx, group, "_self_attention_layer", h, h, cfg, padding, t.get("decoder_attention_mask"), causal),
        rate))
    if encoder is not None:
        enc_padding = t.get("encoder_padding_mask") or _mask_of(ctx, encoder)
        x = _residual(ctx, group, "cross_attention", x, eps, first, lambda h: _dropout(
            ctx, "_cross_attention_dropout",
            _hub_attention(ctx, group, "_cross_attention_layer", h, encoder, cfg, enc_padding,
                           t.get("encoder_attention_mask"), False),
            rate))
    return [_feedforward(ctx, group, x, cfg, eps, rate, first)]


@register_importer("keras_hub.TakeToken")
def import_take_token(ctx: LayerContext) -> list[Value]:
    """x[:, index, :] in a keras_hub backbone (BERT's pooled [CLS] token)."""
    x = ctx.inputs[0]
    index = int(ctx.config["index"])
    return ctx.add("take_step", [x], [TensorSpec((x.spec.shape[0],) + x.spec.shape[2:])], {"index": index}).outputs


# -- keras_hub backbones: constructor config -> functional config ------------------------


def _tensor(layer: str) -> dict:
    return {"class_name": "__keras_tensor__", "config": {"keras_history": [layer, 0, 0]}}


def _entry(class_name: str, name: str, config: dict, args: list[str], kwargs: dict | None = None) -> dict:
    call_kwargs = {k: (_tensor(v) if isinstance(v, str) else v) for k, v in (kwargs or {}).items()}
    # A module, as real layer entries have: a module-less, name-only entry reads as an op entry.
    return {
        "module": "keras_hub", "class_name": class_name, "name": name, "config": {"name": name, **config},
        "inbound_nodes": [{"args": [_tensor(a) for a in args], "kwargs": call_kwargs}] if args else [],
    }


def _input(name: str) -> dict:
    return _entry("InputLayer", name, {"batch_shape": [None, None], "dtype": "int32"}, [])


def _expand_bert(cfg: dict) -> dict:
    c = cfg["config"]
    hidden, rate = int(c["hidden_dim"]), float(c.get("dropout", 0.1))
    layers = [_input("padding_mask"), _input("segment_ids"), _input("token_ids"),
              _entry("ReversibleEmbedding", "token_embedding", {}, ["token_ids"]),
              _entry("PositionEmbedding", "position_embedding", {}, ["token_embedding"]),
              # Its sizes, as a real Embedding entry has them (the file's weights are checked against them).
              _entry("Embedding", "segment_embedding", {"input_dim": int(c.get("num_segments", 2)), "output_dim": hidden},
                     ["segment_ids"]),
              _entry("Add", "embeddings_add", {}, ["token_embedding", "position_embedding", "segment_embedding"]),
              _entry("LayerNormalization", "embeddings_layer_norm", {"axis": -1, "epsilon": 1e-12}, ["embeddings_add"]),
              _entry("Dropout", "embeddings_dropout", {"rate": rate}, ["embeddings_layer_norm"])]
    previous = "embeddings_dropout"
    for i in range(int(c["num_layers"])):
        name = f"transformer_layer_{i}"
        layer_cfg = {"num_heads": c["num_heads"], "intermediate_dim": c["intermediate_dim"], "dropout": rate,
                     "activation": "gelu_approximate", "layer_norm_epsilon": 1e-12, "normalize_first": False}
        layers.append(_entry("TransformerEncoder", name, layer_cfg, [previous], {"padding_mask": "padding_mask"}))
        previous = name
    layers.append(_entry("keras_hub.TakeToken", "cls_token", {"index": 0}, [previous]))
    layers.append(_entry("Dense", "pooled_dense", {"units": hidden, "activation": "tanh"}, ["cls_token"]))
    body = {"name": c.get("name", "bert_backbone"), "layers": layers,
            # The backbone's own input and output dicts, in their order (a positional call of
            # the generated module in that order must not silently mix inputs up).
            "input_layers": {"token_ids": ["token_ids", 0, 0], "segment_ids": ["segment_ids", 0, 0],
                             "padding_mask": ["padding_mask", 0, 0]},
            "output_layers": {"sequence_output": [previous, 0, 0], "pooled_output": ["pooled_dense", 0, 0]}}
    return {"class_name": "Functional", "config": body, "keras_hub_backbone": cfg["class_name"]}


def _expand_gpt2(cfg: dict) -> dict:
    c = cfg["config"]
    rate = float(c.get("dropout", 0.1))
    layers = [_input("padding_mask"), _input("token_ids"),
              _entry("ReversibleEmbedding", "token_embedding", {}, ["token_ids"]),
              _entry("PositionEmbedding", "position_embedding", {}, ["token_embedding"]),
              _entry("Add", "embeddings_add", {}, ["token_embedding", "position_embedding"]),
              _entry("Dropout", "embeddings_dropout", {"rate": rate}, ["embeddings_add"])]
    previous = "embeddings_dropout"
    for i in range(int(c["num_layers"])):
        name = f"transformer_layer_{i}"
        layer_cfg = {"num_heads": c["num_heads"], "intermediate_dim": c["intermediate_dim"], "dropout": rate,
                     "activation": "gelu_approximate", "layer_norm_epsilon": 1e-5, "normalize_first": True}
        layers.append(_entry("TransformerDecoder", name, layer_cfg, [previous],
                             {"decoder_padding_mask": "padding_mask"}))
        previous = name
    layers.append(_entry("LayerNormalization", "layer_norm", {"axis": -1, "epsilon": 1e-5}, [previous]))
    body = {"name": c.get("name", "gpt2_backbone"), "layers": layers,
            "input_layers": {"token_ids": ["token_ids", 0, 0], "padding_mask": ["padding_mask", 0, 0]},
            "output_layers": [["layer_norm", 0, 0]]}
    return {"class_name": "Functional", "config": body, "keras_hub_backbone": cfg["class_name"]}


KERAS_HUB_BACKBONES = {"BertBackbone": _expand_bert, "GPT2Backbone": _expand_gpt2}


def expand_keras_hub_models(cfg: dict) -> dict:
    """Replace keras_hub backbones (top level or nested) by their functional graph."""
    if not isinstance(cfg, dict):
        return cfg
    registered = str(cfg.get("registered_name") or "")
    name = cfg.get("class_name")
    if name in KERAS_HUB_BACKBONES and registered.startswith(("keras_hub>", "keras_nlp>")):
        expanded = KERAS_HUB_BACKBONES[name](cfg)
        for key in ("name", "inbound_nodes"):
            if key in cfg:
                expanded[key] = cfg[key]
        # A nested backbone's weights are stored under its class's name (a task model's
        # `layers/bert_backbone`), not under the expansion's `functional`.
        expanded["saved_class_name"] = name
        return expanded
    inner = cfg.get("config")
    if isinstance(inner, dict) and isinstance(inner.get("layers"), list):
        inner["layers"] = [expand_keras_hub_models(layer) for layer in inner["layers"]]
    return cfg


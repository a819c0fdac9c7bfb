"""Core layers: InputLayer, Dense, Flatten, Reshape, Permute, Identity, Rescaling, Embedding,
dropout and noise layers, ActivityRegularization."""

from __future__ import annotations

import math

import numpy as np

from tf2torch.frontends.keras.context import LayerContext
from tf2torch.frontends.keras.data_format import accepts_channels_first
from tf2torch.frontends.keras.importers.activations import apply_activation
from tf2torch.frontends.keras.masking import tokens_mask
from tf2torch.frontends.keras.registry import register_importer
from tf2torch.ir import TensorSpec, Value


@register_importer("InputLayer")
def import_input_layer(ctx: LayerContext) -> list[Value]:
    return list(ctx.inputs)  # inputs are created by the model walker; this is a pass-through


@register_importer("Dense")
def import_dense(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    use_bias = ctx.config.get("use_bias", True)
    weights = ctx.weights(2 if use_bias else 1)
    kernel = weights[0]
    params = {"kernel": ctx.param(kernel, "IO")}
    if use_bias:
        params["bias"] = ctx.param(weights[1], "O")
    units = int(ctx.config["units"])
    out = ctx.add("dense", [x], [TensorSpec(x.spec.shape[:-1] + (units,))], {"in_features": int(kernel.shape[0]), "units": units}, params)
    return [apply_activation(ctx, out.outputs[0], ctx.config.get("activation"))]


@register_importer("Flatten")
@accepts_channels_first
def import_flatten(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    dims = x.spec.shape[1:]
    size = None if any(d is None for d in dims) else int(math.prod(dims))
    return ctx.add("flatten", [x], [TensorSpec((x.spec.shape[0], size), x.spec.dtype)]).outputs


@register_importer("Reshape")
def import_reshape(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    target = [int(d) for d in ctx.config["target_shape"]]
    known = [d for d in x.spec.shape[1:]]
    if -1 in target and all(d is not None for d in known):
        rest = math.prod(d for d in target if d != -1)
        target[target.index(-1)] = math.prod(known) // rest
    shape = (x.spec.shape[0],) + tuple(None if d == -1 else d for d in target)
    return ctx.add("reshape", [x], [TensorSpec(shape, x.spec.dtype)], {"target_shape": tuple(target)}).outputs


@register_importer("Permute")
def import_permute(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    dims = tuple(int(d) for d in ctx.config["dims"])  # 1-based, batch excluded
    shape = (x.spec.shape[0],) + tuple(x.spec.shape[d] for d in dims)
    return ctx.add("permute", [x], [TensorSpec(shape, x.spec.dtype)], {"dims": (0,) + dims}).outputs


@register_importer("Identity")
def import_identity(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    return ctx.add("identity", [x], [x.spec]).outputs


@register_importer("Rescaling")
def import_rescaling(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    # float64: the generated literals keep the config's values (1 / 255, not its float32 rounding).
    scale = np.asarray(ctx.config.get("scale", 1.0), dtype=np.float64)
    offset = np.asarray(ctx.config.get("offset", 0.0), dtype=np.float64)
    for name, arr in (("scale", scale), ("offset", offset)):
        if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] not in (1, x.spec.shape[-1])):
            raise ctx.unsupported(f"a Rescaling {name} of shape {arr.shape}")
    return ctx.add("rescale", [x], [TensorSpec(x.spec.shape, "float32")], {"scale": scale, "offset": offset}).outputs


@register_importer("Embedding")
def import_embedding(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    (table,) = ctx.weights(1)
    out_spec = TensorSpec(x.spec.shape + (int(table.shape[1]),))
    params = {"embeddings": ctx.param(table, "VD")}
    outputs = ctx.add("embedding", [x], [out_spec], {"num": int(table.shape[0]), "dim": int(table.shape[1])}, params).outputs
    if ctx.config.get("mask_zero"):
        ctx.set_output_masks([tokens_mask(ctx, x)])  # a Keras mask, not padding_idx (SEMANTICS §7)
    return outputs


@register_importer("Dropout")
def import_dropout(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    noise_shape = ctx.config.get("noise_shape")
    if noise_shape is not None:
        # Per-sample noise (stochastic depth in EfficientNet): keras.applications' pattern.
        if len(noise_shape) != x.rank or any(d != 1 for d in noise_shape[1:]):
            raise ctx.unsupported(f"Dropout with noise_shape={noise_shape} (only (None, 1, ..., 1))")
        return ctx.add("sample_dropout", [x], [x.spec], {"rate": float(ctx.config["rate"])}).outputs
    return ctx.add("dropout", [x], [x.spec], {"rate": float(ctx.config["rate"])}).outputs


@register_importer("SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D")
@accepts_channels_first
def import_spatial_dropout(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    return ctx.add("spatial_dropout", [x], [x.spec], {"rate": float(ctx.config["rate"])}).outputs


@register_importer("GaussianNoise")
def import_gaussian_noise(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    return ctx.add("gaussian_noise", [x], [x.spec], {"stddev": float(ctx.config["stddev"])}).outputs


@register_importer("GaussianDropout")
def import_gaussian_dropout(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    return ctx.add("gaussian_dropout", [x], [x.spec], {"rate": float(ctx.config["rate"])}).outputs


@register_importer("AlphaDropout")
def import_alpha_dropout(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    if ctx.config.get("noise_shape") is not None:
        raise ctx.unsupported("AlphaDropout with noise_shape")
    return ctx.add("alpha_dropout", [x], [x.spec], {"rate": float(ctx.config["rate"])}).outputs


@register_importer("ActivityRegularization")
def import_activity_regularization(ctx: LayerContext) -> list[Value]:
    """An identity; its L1/L2 penalty on the output is a loss term in training
    (training/compile_config.py collects it, training/activity.py hooks the module)."""
    x = ctx.inputs[0]
    attrs = {"l1": float(ctx.config.get("l1") or 0.0), "l2": float(ctx.config.get("l2") or 0.0)}
    return ctx.add("activity_regularization", [x], [x.spec], attrs).outputs

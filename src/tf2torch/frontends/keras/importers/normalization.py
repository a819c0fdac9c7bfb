"""BatchNormalization, LayerNormalization, GroupNormalization and SpectralNormalization."""

from __future__ import annotations

import numpy as np

from tf2torch.frontends.keras.context import LayerContext
from tf2torch.frontends.keras.data_format import import_as_channels_last
from tf2torch.frontends.keras.registry import register_importer
from tf2torch.ir import TensorSpec, Value


def _axes(ctx: LayerContext, rank: int) -> list[int]:
    axis = ctx.config.get("axis", -1)
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    return sorted(int(a) % rank for a in axes)


@register_importer("BatchNormalization")
def import_batch_norm(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    cfg = ctx.config
    if cfg.get("renorm"):
        raise ctx.unsupported("renorm=True (batch renormalization)")
    if x.rank >= 3 and _axes(ctx, x.rank) == [1]:
        return import_as_channels_last(ctx, import_batch_norm, {"axis": -1})  # channels-first features
    if _axes(ctx, x.rank) != [x.rank - 1]:
        raise ctx.unsupported(f"BatchNormalization over axis {cfg.get('axis')} (only the channel axis, -1 or 1)")
    center, scale = cfg.get("center", True), cfg.get("scale", True)
    weights = ctx.weights(2 + int(center) + int(scale))
    channels = int(x.spec.shape[-1])
    it = iter(weights)
    gamma = next(it) if scale else np.ones(channels, np.float32)
    beta = next(it) if center else np.zeros(channels, np.float32)
    mean, var = next(it), next(it)
    # Moving variance update: TF's fused kernel (Keras 2, 4D/5D input) uses the
    # Bessel-corrected batch variance like torch; Keras 3 and Keras 2's non-fused path
    # use the biased one.
    unbiased = ctx.keras_major == 2 and x.rank in (4, 5)
    eps = float(cfg.get("epsilon", 1e-3))
    if ctx.keras_major == 2 and unbiased:
        eps = max(eps, 1.001e-5)  # TF's fused batch norm raises smaller epsilons
    attrs = {
        "num_features": channels, "eps": eps, "momentum": float(cfg.get("momentum", 0.99)),
        "center": bool(center), "scale": bool(scale), "unbiased_running_var": unbiased,
        "frozen": not ctx.trainable,
    }
    params = {
        "gamma": ctx.param(gamma, "C", trainable=ctx.trainable and bool(scale)),
        "beta": ctx.param(beta, "C", trainable=ctx.trainable and bool(center)),
        "moving_mean": ctx.param(mean, "C", trainable=False),
        "moving_variance": ctx.param(var, "C", trainable=False),
    }
    return ctx.add("batch_norm", [x], [x.spec], attrs, params).outputs


@register_importer("LayerNormalization")
def import_layer_norm(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    cfg = ctx.config
    if cfg.get("rms_scaling"):
        raise ctx.unsupported("rms_scaling=True")
    axes = _axes(ctx, x.rank)
    if 0 in axes:
        raise ctx.unsupported("LayerNormalization over the batch axis")
    trailing = axes == list(range(x.rank - len(axes), x.rank))
    center, scale = cfg.get("center", True), cfg.get("scale", True)
    weights = ctx.weights(int(center) + int(scale))
    it = iter(weights)
    shape = tuple(int(x.spec.shape[a]) for a in axes)
    if not trailing:
        # Non-trailing axes: parameters broadcast against the whole (non-batch) input.
        shape = tuple(int(x.spec.shape[a]) if a in axes else 1 for a in range(1, x.rank))
    params = {}
    if scale:
        params["gamma"] = ctx.param(np.reshape(next(it), shape), "C")
    if center:
        params["beta"] = ctx.param(np.reshape(next(it), shape), "C")
    attrs = {"normalized_shape": shape, "eps": float(cfg.get("epsilon", 1e-3))}
    if not trailing:
        attrs["axes"] = tuple(axes)
    return ctx.add("layer_norm", [x], [TensorSpec(x.spec.shape)], attrs, params).outputs


@register_importer("GroupNormalization")
def import_group_norm(ctx: LayerContext) -> list[Value]:
    """Statistics per sample and group of consecutive channels, over the group's channels and
    every other axis: torch's GroupNorm on the channels-first tensor."""
    x = ctx.inputs[0]
    cfg = ctx.config
    if x.rank >= 3 and _axes(ctx, x.rank) == [1]:
        return import_as_channels_last(ctx, import_group_norm, {"axis": -1})  # channels-first features
    if _axes(ctx, x.rank) != [x.rank - 1]:
        raise ctx.unsupported(f"GroupNormalization over axis {cfg.get('axis')} (only the channel axis, -1 or 1)")
    channels = int(x.spec.shape[-1])
    groups = int(cfg.get("groups", 32))
    if groups == -1:
        groups = channels  # Keras: one group per channel (instance normalization)
    if groups <= 0 or channels % groups:
        raise ctx.unsupported(f"{groups} groups for {channels} channels")
    center, scale = cfg.get("center", True), cfg.get("scale", True)
    it = iter(ctx.weights(int(center) + int(scale)))
    gamma = next(it) if scale else np.ones(channels, np.float32)
    beta = next(it) if center else np.zeros(channels, np.float32)
    attrs = {"groups": groups, "num_channels": channels, "eps": float(cfg.get("epsilon", 1e-3)),
             "center": bool(center), "scale": bool(scale)}
    params = {
        "gamma": ctx.param(gamma, "C", trainable=ctx.trainable and bool(scale)),
        "beta": ctx.param(beta, "C", trainable=ctx.trainable and bool(center)),
    }
    return ctx.add("group_norm", [x], [x.spec], attrs, params).outputs


SPECTRAL_OPS = {"dense": "spectral_dense", "conv": "spectral_conv"}


@register_importer("SpectralNormalization")
def import_spectral_norm(ctx: LayerContext) -> list[Value]:
    """The wrapped Dense / Conv with its stored kernel (what Keras computes in inference),
    its node marked so that training first normalizes the kernel as Keras does
    (converters/spectral.py)."""
    from tf2torch.frontends.keras.archive import read_vars_group
    from tf2torch.frontends.keras.layer_calls import LayerCall, LayerEntry
    from tf2torch.frontends.keras.registry import LAYER_IMPORTERS

    inner = ctx.config["layer"]
    class_name = inner["class_name"]
    if class_name not in ("Dense", "Conv1D", "Conv2D", "Conv3D"):
        raise ctx.unsupported(f"SpectralNormalization around {class_name} (Dense and Conv1D/2D/3D are)")
    group = ctx.reader.group(ctx.entry.name) if ctx.reader is not None and hasattr(ctx.reader, "group") else None
    if group is None or "layer" not in group or "vars" not in group:
        raise ctx.unsupported("a SpectralNormalization stored without its layer's weights group (.keras archives have it)")
    layer_weights = read_vars_group(group["layer"]["vars"]) if "vars" in group["layer"] else []
    vector_u = read_vars_group(group["vars"])[-1]
    entry = LayerEntry(class_name, ctx.entry.name, dict(inner["config"], name=ctx.entry.name), [LayerCall([])], inner)
    inner_ctx = LayerContext(
        graph=ctx.graph, entry=entry, call=LayerCall([]), call_index=ctx.call_index, inputs=list(ctx.inputs),
        tensor_kwargs={}, keras_major=ctx.keras_major, name=ctx.name, file=ctx.file, _weights=layer_weights,
        scope=ctx.scope,
    )
    first = len(ctx.graph.nodes)
    outputs = LAYER_IMPORTERS[class_name](inner_ctx)
    (node,) = [n for n in ctx.graph.nodes[first:] if n.op in SPECTRAL_OPS]
    node.attrs["spectral"] = {"inner_op": node.op, "power_iterations": int(ctx.config.get("power_iterations", 1)),
                              "vector_u": np.asarray(vector_u, np.float32).reshape(-1)}
    node.op = SPECTRAL_OPS[node.op]
    return outputs

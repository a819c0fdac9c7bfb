"""Max/Average pooling 1D/2D/3D, global pooling and adaptive pooling."""

from __future__ import annotations

from tf2torch.frontends.keras.context import LayerContext, as_tuple, channels_last
from tf2torch.frontends.keras.data_format import accepts_channels_first
from tf2torch.frontends.keras.importers.recurrent import import_masked_global_average_pooling
from tf2torch.frontends.keras.importers.shapes import pool_output_length, same_padding
from tf2torch.frontends.keras.masking import call_mask
from tf2torch.frontends.keras.registry import register_importer
from tf2torch.ir import TensorSpec, Value


@register_importer(
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "MaxPool1D", "MaxPool2D", "MaxPool3D", "AvgPool1D", "AvgPool2D", "AvgPool3D",
)
@accepts_channels_first
def import_pooling(ctx: LayerContext) -> list[Value]:
    channels_last(ctx)
    x = ctx.inputs[0]
    rank = x.rank - 2
    cfg = ctx.config
    pool = as_tuple(cfg.get("pool_size", 2), rank)
    strides = as_tuple(cfg.get("strides") or pool, rank)
    padding = cfg.get("padding", "valid")
    sizes = x.spec.shape[1:-1]
    if padding == "same":
        if any(n is None for n in sizes):
            pads = "same_dynamic"  # resolved at run time from the input size
        else:
            pads = [same_padding(n, k, s) for n, k, s in zip(sizes, pool, strides)]
    else:
        pads = [(0, 0)] * rank
    out_sizes = tuple(pool_output_length(n, k, s, padding) for n, k, s in zip(sizes, pool, strides))
    kind = "max" if ctx.class_name.startswith("Max") else "avg"
    attrs = {"kind": kind, "rank": rank, "kernel_size": pool, "stride": strides, "pads": pads}
    spec = TensorSpec((x.spec.shape[0],) + out_sizes + (x.spec.shape[-1],))
    return ctx.add("pool", [x], [spec], attrs).outputs


@register_importer(
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalAvgPool3D", "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D",
)
@accepts_channels_first
def import_global_pooling(ctx: LayerContext) -> list[Value]:
    channels_last(ctx)
    x = ctx.inputs[0]
    if ctx.class_name in ("GlobalAveragePooling1D", "GlobalAvgPool1D") and call_mask(ctx) is not None:
        return import_masked_global_average_pooling(ctx)
    if "mask" in ctx.tensor_kwargs:
        raise ctx.unsupported("a mask on global pooling")
    keepdims = bool(ctx.config.get("keepdims", False))
    kind = "max" if "Max" in ctx.class_name else "avg"
    if keepdims:
        shape = (x.spec.shape[0],) + (1,) * (x.rank - 2) + (x.spec.shape[-1],)
    else:
        shape = (x.spec.shape[0], x.spec.shape[-1])
    return ctx.add("global_pool", [x], [TensorSpec(shape)], {"kind": kind, "keepdims": keepdims}).outputs


@register_importer(
    "AdaptiveAveragePooling1D", "AdaptiveAveragePooling2D", "AdaptiveAveragePooling3D",
    "AdaptiveMaxPooling1D", "AdaptiveMaxPooling2D", "AdaptiveMaxPooling3D",
)
@accepts_channels_first
def import_adaptive_pooling(ctx: LayerContext) -> list[Value]:
    """Keras' bins are torch's: bin i covers [floor(i * n / out), ceil((i + 1) * n / out))."""
    channels_last(ctx)
    x = ctx.inputs[0]
    rank = x.rank - 2
    if any(n is None for n in x.spec.shape[1:-1]):
        raise ctx.unsupported("an input of unknown spatial size (Keras needs it too)")
    size = as_tuple(ctx.config["output_size"], rank)
    kind = "max" if "Max" in ctx.class_name else "avg"
    spec = TensorSpec((x.spec.shape[0],) + size + (x.spec.shape[-1],))
    return ctx.add("adaptive_pool", [x], [spec], {"kind": kind, "output_size": size}).outputs

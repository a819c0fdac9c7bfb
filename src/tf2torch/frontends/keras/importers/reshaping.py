"""ZeroPadding1D/2D/3D, Cropping1D/2D/3D, UpSampling1D/2D/3D."""

from __future__ import annotations

from typing import Any

from tf2torch.frontends.keras.context import LayerContext, as_tuple, channels_last
from tf2torch.frontends.keras.data_format import accepts_channels_first
from tf2torch.frontends.keras.registry import register_importer
from tf2torch.ir import TensorSpec, Value


def _pairs(value: Any, rank: int) -> list[tuple[int, int]]:
    """Keras: int, (a, b) per dim, or ((top, bottom), (left, right))."""
    if isinstance(value, int):
        return [(value, value)] * rank
    value = list(value)
    if rank == 1 and len(value) == 2 and all(isinstance(v, int) for v in value):
        return [(int(value[0]), int(value[1]))]
    if all(isinstance(v, int) for v in value):
        return [(int(v), int(v)) for v in value]
    return [(int(a), int(b)) for a, b in value]


def _rank(ctx: LayerContext) -> int:
    return ctx.inputs[0].rank - 2


def _resized(x: Value, sizes: list[int | None]) -> TensorSpec:
    return TensorSpec((x.spec.shape[0],) + tuple(sizes) + (x.spec.shape[-1],), x.spec.dtype)


@register_importer("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D")
@accepts_channels_first
def import_zero_padding(ctx: LayerContext) -> list[Value]:
    channels_last(ctx)
    x = ctx.inputs[0]
    pads = _pairs(ctx.config.get("padding", 1), _rank(ctx))
    sizes = [None if n is None else n + a + b for n, (a, b) in zip(x.spec.shape[1:-1], pads)]
    return ctx.add("pad", [x], [_resized(x, sizes)], {"pads": pads}).outputs


@register_importer("Cropping1D", "Cropping2D", "Cropping3D")
@accepts_channels_first
def import_cropping(ctx: LayerContext) -> list[Value]:
    channels_last(ctx)
    x = ctx.inputs[0]
    crops = _pairs(ctx.config.get("cropping", 1), _rank(ctx))
    sizes = [None if n is None else n - a - b for n, (a, b) in zip(x.spec.shape[1:-1], crops)]
    return ctx.add("crop", [x], [_resized(x, sizes)], {"crops": crops}).outputs


@register_importer("UpSampling1D", "UpSampling2D", "UpSampling3D")
@accepts_channels_first
def import_upsampling(ctx: LayerContext) -> list[Value]:
    channels_last(ctx)
    x = ctx.inputs[0]
    rank = _rank(ctx)
    factors = as_tuple(ctx.config.get("size", 2), rank)
    mode = ctx.config.get("interpolation", "nearest")
    if mode not in ("nearest", "bilinear"):
        raise ctx.unsupported(f"interpolation={mode!r}")
    sizes = [None if n is None else n * f for n, f in zip(x.spec.shape[1:-1], factors)]
    return ctx.add("upsample", [x], [_resized(x, sizes)], {"factors": factors, "mode": mode}).outputs

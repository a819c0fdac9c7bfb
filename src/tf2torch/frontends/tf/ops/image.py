"""Image rearrangements: DepthToSpace, SpaceToDepth, ExtractImagePatches (NHWC ops, imported
as channels-first IR ops so that they sit between convolutions without permutes)."""

from __future__ import annotations

from tf2torch.frontends.tf.context import OpContext
from tf2torch.frontends.tf.ops.nn import _pads, _spatial
from tf2torch.frontends.tf.registry import register_tf_op
from tf2torch.frontends.tf.values import TFVal


def _nhwc(ctx: OpContext) -> None:
    if ctx.attr("data_format", "NHWC") != "NHWC":
        raise ctx.unsupported(f"data_format={ctx.attr('data_format')!r}")


@register_tf_op("DepthToSpace", "SpaceToDepth")
def import_depth_to_space(ctx: OpContext) -> list[TFVal]:
    _nhwc(ctx)
    x = ctx.value(0)
    if x.spec.shape[-1] is None:
        raise ctx.unsupported("an unknown number of channels")
    op = "tf_depth_to_space" if ctx.type == "DepthToSpace" else "tf_space_to_depth"
    return [ctx.add(op, [x], attrs={"block": int(ctx.attr("block_size"))}).outputs[0]]


@register_tf_op("ExtractImagePatches")
def import_extract_patches(ctx: OpContext) -> list[TFVal]:
    x = ctx.value(0)
    kernel = _spatial(ctx, ctx.attr("ksizes"), 2, "patch size")
    stride = _spatial(ctx, ctx.attr("strides"), 2, "stride")
    rate = _spatial(ctx, ctx.attr("rates"), 2, "rate")
    out = ctx.out_spec(0)
    if None in out.shape[1:] or x.spec.shape[-1] is None:
        raise ctx.unsupported("patches of an image of run-time size")
    pads = _pads(ctx, x.spec.shape[1:-1], kernel, stride, rate)
    attrs = {"kernel": kernel, "stride": stride, "dilation": rate, "pads": pads, "channels": int(x.spec.shape[-1]),
             "out_size": tuple(out.shape[1:3])}
    return [ctx.add("tf_extract_patches", [x], attrs=attrs).outputs[0]]

"""MaxPool / AveragePool (explicit or auto pads) and the global pools."""

from __future__ import annotations

from tf2torch.frontends.onnx.conv import auto_pads
from tf2torch.frontends.onnx.importer import OnnxContext, OnnxVal
from tf2torch.frontends.onnx.registry import register_onnx_op


@register_onnx_op("MaxPool", "AveragePool")
def import_pool(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    kernel = tuple(int(k) for k in ctx.attr("kernel_shape"))
    rank = len(kernel)
    stride = tuple(ctx.attr("strides") or [1] * rank)
    if int(ctx.attr("ceil_mode", 0)) or any(d != 1 for d in ctx.attr("dilations") or []):
        raise ctx.unsupported("ceil_mode=1 or dilated pooling")
    if len(ctx.node.output) > 1:
        raise ctx.unsupported("MaxPool's indices output")
    pads = auto_pads(ctx, x, kernel, stride, (1,) * rank)
    kind = "max" if ctx.type == "MaxPool" else "avg"
    if kind == "avg" and int(ctx.attr("count_include_pad", 0)) and pads != [(0, 0)] * rank:
        raise ctx.unsupported("count_include_pad=1 with padding")
    attrs = {"kind": kind, "rank": rank, "kernel_size": kernel, "stride": stride, "pads": pads}
    return [ctx.add("pool", [x], attrs).outputs[0]]


@register_onnx_op("GlobalAveragePool", "GlobalMaxPool")
def import_global_pool(ctx: OnnxContext) -> list[OnnxVal]:
    kind = "avg" if ctx.type == "GlobalAveragePool" else "max"
    return [ctx.add("global_pool", [ctx.value(0)], {"kind": kind, "keepdims": True}).outputs[0]]

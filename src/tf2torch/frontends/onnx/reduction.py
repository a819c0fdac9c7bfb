"""Softmax / LogSoftmax and the Reduce* ops."""

from __future__ import annotations

from tf2torch.frontends.onnx.importer import OnnxContext, OnnxVal, ShapeVec
from tf2torch.frontends.onnx.registry import register_onnx_op
from tf2torch.frontends.onnx.shape_ops import shape_product


@register_onnx_op("Softmax", "LogSoftmax")
def import_softmax(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    axis = int(ctx.attr("axis", -1))
    if ctx.importer.opset < 13 and axis % x.rank != x.rank - 1:
        raise ctx.unsupported("opset < 13 Softmax (flattening semantics) over a non-last axis")
    return [ctx.add("softmax", [x], {"axis": axis % x.rank, "log": ctx.type == "LogSoftmax"}).outputs[0]]


@register_onnx_op("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin")
def import_reduce(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    axes = ctx.attr("axes")
    if axes is None and len(ctx.inputs) > 1:
        axes = ctx.const(1)
    if (axes is None or len(axes) == 0) and int(ctx.attr("noop_with_empty_axes", 0)):
        return [x]
    axes = tuple(range(x.rank)) if axes is None or len(axes) == 0 else tuple(int(a) % x.rank for a in axes)
    fn = {"ReduceMean": "mean", "ReduceSum": "sum", "ReduceMax": "amax", "ReduceMin": "amin"}[ctx.type]
    keep = bool(ctx.attr("keepdims", 1))
    return [ctx.add("tf_reduce", [x], {"axes": axes, "keepdims": keep, "fn": fn}).outputs[0]]


@register_onnx_op("ReduceProd")
def import_reduce_prod(ctx: OnnxContext) -> list[OnnxVal]:
    """Only of a run-time shape (tf2onnx's batch-matmul reshapes multiply batch dims)."""
    shape = ctx.inputs[0]
    axes = ctx.attr("axes")
    if axes is None and len(ctx.inputs) > 1 and ctx.node.input[1]:
        axes = ctx.const(1)
    # a shape is 1-D: axes [0] (tf2onnx's Tensordot of a Dense on NHWC) is the whole of it too
    if not isinstance(shape, ShapeVec) or (axes is not None and [int(a) for a in axes] not in ([0], [-1])):
        raise ctx.unsupported("ReduceProd other than of a whole shape")
    return [ShapeVec([shape_product(shape.items)], scalar=not int(ctx.attr("keepdims", 1)))]

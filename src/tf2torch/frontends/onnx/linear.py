"""Gemm and MatMul: a constant right-hand matrix (plus a following bias Add) is an nn.Linear."""

from __future__ import annotations

import numpy as np

from tf2torch.frontends.onnx.importer import OnnxContext, OnnxVal
from tf2torch.frontends.onnx.operands import Operands
from tf2torch.frontends.onnx.registry import register_onnx_op
from tf2torch.ir import Value


@register_onnx_op("Gemm")
def import_gemm(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    weight = ctx.const(1)
    if int(ctx.attr("transA", 0)) or weight.ndim != 2:
        raise ctx.unsupported("Gemm with transA=1 or a non-matrix B")
    kernel = (weight.T if int(ctx.attr("transB", 0)) else weight) * np.float32(ctx.attr("alpha", 1.0))
    params = {"kernel": ctx.param(kernel, "IO")}
    bias = ctx.const(2)
    if bias is not None:
        units = kernel.shape[1]
        bias = bias.reshape(-1) if bias.size == units else bias  # (units,) or (1, units)
        if bias.size not in (1, units) or bias.ndim > 1:
            raise ctx.unsupported(f"a Gemm bias of shape {bias.shape} (per-row biases)")
        bias = np.array(np.broadcast_to(bias * np.float32(ctx.attr("beta", 1.0)), (units,)))
        params["bias"] = ctx.param(bias, "O")
    attrs = {"in_features": int(kernel.shape[0]), "units": int(kernel.shape[1])}
    return [ctx.add("dense", [x], attrs, params).outputs[0]]


@register_onnx_op("MatMul")
def import_matmul(ctx: OnnxContext) -> list[OnnxVal]:
    if isinstance(ctx.inputs[1], np.ndarray) and ctx.inputs[1].ndim == 2 and isinstance(ctx.inputs[0], Value):
        kernel = ctx.inputs[1]
        attrs = {"in_features": int(kernel.shape[0]), "units": int(kernel.shape[1])}
        params = {"kernel": ctx.param(kernel, "IO")}
        bias = _fusable_bias(ctx, int(kernel.shape[1]))
        if bias is not None:
            params["bias"] = ctx.param(bias, "O")
        return [ctx.add("dense", [ctx.value(0)], attrs, params).outputs[0]]
    ops = Operands(ctx)
    operands = [ops.operand(v) for v in ctx.inputs]
    return [ops.add("tf_matmul", {"operands": operands, "transpose_a": False, "transpose_b": False}).outputs[0]]


def _fusable_bias(ctx: OnnxContext, units: int) -> np.ndarray | None:
    """The bias of a `MatMul -> Add(bias)` pair (the Add is then skipped as an identity)."""
    consumers = ctx.importer.consumers.get(ctx.node.output[0], [])
    if len(consumers) != 1 or getattr(consumers[0], "op_type", None) != "Add":  # a graph output has none
        return None
    add = consumers[0]
    other = add.input[1] if add.input[0] == ctx.node.output[0] else add.input[0]
    bias = ctx.importer.initializers.get(other)
    if bias is None or bias.shape != (units,) or bias.dtype != np.float32:
        return None
    ctx.importer.absorbed.add(id(add))
    return bias

"""Keras 3 op entries in functional configs: arithmetic written on KerasTensors (`x + 3.0`)."""

from __future__ import annotations

from numbers import Number

from tf2torch.frontends.keras.context import LayerContext
from tf2torch.frontends.keras.importers.merge import _broadcast
from tf2torch.frontends.keras.importers.op_nodes import import_op_node
from tf2torch.frontends.keras.registry import register_importer
from tf2torch.ir import TensorSpec, Value

ARITHMETIC = {"ops.Add": "+", "ops.Subtract": "-", "ops.Multiply": "*", "ops.Divide": "/", "ops.TrueDivide": "/"}
TENSOR_OPS = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide"}


@register_importer(*ARITHMETIC)
def import_arithmetic(ctx: LayerContext) -> list[Value]:
    symbol = ARITHMETIC[ctx.class_name]
    operands = ctx.arg_values()
    if len(operands) != 2:
        raise ctx.unsupported(f"{ctx.class_name} with {len(operands)} operands")
    left, right = operands
    if isinstance(left, Value) and isinstance(right, Value):
        shape = _broadcast([left.spec.shape, right.spec.shape])
        return ctx.add(TENSOR_OPS[symbol], [left, right], [TensorSpec(shape)]).outputs
    if isinstance(left, Value) and isinstance(right, Number):
        tensor, constant, reverse = left, right, False
    elif isinstance(right, Value) and isinstance(left, Number):
        tensor, constant, reverse = right, left, True
    else:  # a constant array operand: the general op-call path makes it a constant tensor
        return import_op_node(ctx)
    attrs = {"symbol": symbol, "value": float(constant), "reverse": reverse}
    return ctx.add("scalar_arithmetic", [tensor], [tensor.spec], attrs).outputs

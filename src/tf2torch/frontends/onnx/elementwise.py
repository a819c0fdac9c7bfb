"""Binary arithmetic, activations, unary math and Clip; the written-out exact GELU folds to F.gelu."""

from __future__ import annotations

import numpy as np

from tf2torch.frontends.onnx.importer import OnnxContext, OnnxVal, ShapeVec
from tf2torch.frontends.onnx.operands import Operands, scalar
from tf2torch.frontends.onnx.registry import register_onnx_op
from tf2torch.frontends.onnx.shape_ops import shape_extreme
from tf2torch.ir import Value

BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow", "Max": "maximum", "Min": "minimum",
          "Less": "lt", "LessOrEqual": "le", "Greater": "gt", "GreaterOrEqual": "ge", "Equal": "eq",
          "And": "logical_and", "Or": "logical_or"}
# Comparisons and logic are exact in numpy: folded when every operand is a constant or a static
# size (tf2onnx's initial condition of a recurrent layer's Loop). Arithmetic on constants stays refused.
FOLDED_ON_CONSTANTS = {"Less": np.less, "LessOrEqual": np.less_equal, "Greater": np.greater,
                       "GreaterOrEqual": np.greater_equal, "Equal": np.equal, "And": np.logical_and,
                       "Or": np.logical_or}


@register_onnx_op(*BINARY)
def import_binary(ctx: OnnxContext) -> list[OnnxVal]:
    if id(ctx.node) in ctx.importer.absorbed:
        return [ctx.inputs[0] if isinstance(ctx.inputs[0], Value) else ctx.inputs[1]]
    if len(ctx.inputs) != 2:
        raise ctx.unsupported(f"{ctx.type} with {len(ctx.inputs)} inputs")
    static = [isinstance(v, np.ndarray) or (isinstance(v, ShapeVec) and all(isinstance(i, int) for i in v.items))
              for v in ctx.inputs]
    if ctx.type in FOLDED_ON_CONSTANTS and all(static):
        return [np.asarray(FOLDED_ON_CONSTANTS[ctx.type](ctx.const(0), ctx.const(1)))]
    if all(isinstance(v, np.ndarray) for v in ctx.inputs):
        raise ctx.unsupported("arithmetic on constants only")
    if ctx.type in ("Max", "Min") and all(isinstance(v, ShapeVec) for v in ctx.inputs):
        fn = "maximum" if ctx.type == "Max" else "minimum"
        a, b = ctx.inputs
        return [ShapeVec([shape_extreme(fn, i, j) for i, j in zip(a.items, b.items)], a.scalar and b.scalar)]
    if any(isinstance(v, ShapeVec) for v in ctx.inputs):
        raise ctx.unsupported("arithmetic on a run-time shape")
    if ctx.type == "Div" and any(isinstance(v, Value) and v.spec.dtype.startswith(("int", "uint")) for v in ctx.inputs):
        raise ctx.unsupported("integer Div (ONNX truncates toward zero)")
    if ctx.type == "Mul":
        x = _match_erf_gelu(*ctx.inputs)
        if x is not None:  # the written-out exact GELU becomes one F.gelu (its parts are dropped as dead code)
            return [ctx.add("activation", [x], {"fn": "gelu", "approximate": False}).outputs[0]]
    ops = Operands(ctx)
    operands = [ops.operand(v) for v in ctx.inputs]
    return [ops.add("tf_binary", {"fn": BINARY[ctx.type], "operands": operands, "exprs": []}).outputs[0]]


def _scalar_operand(value: OnnxVal, fn: str) -> tuple[Value, float] | None:
    """(x, c) if `value` is x <fn> c (or c <fn> x for add / mul) with a scalar c."""
    node = value.producer if isinstance(value, Value) else None
    if node is None or node.op != "tf_binary" or node.attrs["fn"] != fn or len(node.inputs) != 1:
        return None
    ops = node.attrs["operands"]
    if fn == "div" and ops[0][0] != "value":
        return None
    scalars = [op[1] for op in ops if op[0] == "scalar"]
    return (node.inputs[0], float(scalars[0])) if len(scalars) == 1 else None


def _erf_gate(value: OnnxVal) -> Value | None:
    """x if `value` is 1 + erf(x / sqrt(2)) (or erf(x * 1/sqrt(2))), or TF's erfc(-x / sqrt(2))
    read as 1 - erf(-x * 1/sqrt(2)) (the loader's form of tf2onnx's Erfc)."""
    one = _scalar_operand(value, "add")
    negated = one is None
    if negated:
        one = _one_minus(value)
    if one is None or one[1] != 1.0 or one[0].producer is None:
        return None
    erf = one[0].producer
    if erf.op != "tf_unary" or erf.attrs["fn"] != "erf":
        return None
    div, mul = _scalar_operand(erf.inputs[0], "div"), _scalar_operand(erf.inputs[0], "mul")
    x = None
    if div is not None and abs(div[1] - 2**0.5) < 1e-6:
        x = div[0]
    if mul is not None and abs(mul[1] - 0.5**0.5) < 1e-6:
        x = mul[0]
    if x is None or not negated:
        return x
    neg = x.producer
    return neg.inputs[0] if neg is not None and neg.op == "tf_unary" and neg.attrs["fn"] == "neg" else None


def _one_minus(value: OnnxVal) -> tuple[Value, float] | None:
    """(x, c) if `value` is c - x with a scalar c."""
    node = value.producer if isinstance(value, Value) else None
    if node is None or node.op != "tf_binary" or node.attrs["fn"] != "sub" or len(node.inputs) != 1:
        return None
    first, second = node.attrs["operands"]
    return (node.inputs[0], float(first[1])) if first[0] == "scalar" and second[0] == "value" else None


def _match_erf_gelu(a: OnnxVal, b: OnnxVal) -> Value | None:
    """x for 0.5 x (1 + erf(x / sqrt 2)) written as (x * 0.5) * gate or (x * gate) * 0.5."""
    for first, second in ((a, b), (b, a)):
        half = _scalar_operand(first, "mul")
        if half is not None and half[1] == 0.5 and _erf_gate(second) is half[0]:
            return half[0]
        if isinstance(second, np.ndarray) and second.size == 1 and float(second.reshape(())) == 0.5:
            node = first.producer if isinstance(first, Value) else None
            if node is not None and node.op == "tf_binary" and node.attrs["fn"] == "mul" and len(node.inputs) == 2:
                x, y = node.inputs
                if _erf_gate(y) is x or _erf_gate(x) is y:
                    return x if _erf_gate(y) is x else y
    return None


ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Softplus": "softplus", "Softsign": "softsign",
               "Selu": "selu", "Mish": "mish", "HardSwish": "hard_silu"}
UNARY = {"Erf": "erf", "Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Abs": "abs", "Neg": "neg", "Reciprocal": "reciprocal",
         "Floor": "floor", "Ceil": "ceil", "Sin": "sin", "Cos": "cos", "Tan": "tan", "Sign": "sign", "Round": "round",
         "Not": "logical_not"}


@register_onnx_op(*ACTIVATIONS)
def import_activation(ctx: OnnxContext) -> list[OnnxVal]:
    return [ctx.add("activation", [ctx.value(0)], {"fn": ACTIVATIONS[ctx.type]}).outputs[0]]


@register_onnx_op(*UNARY)
def import_unary(ctx: OnnxContext) -> list[OnnxVal]:
    return [ctx.add("tf_unary", [ctx.value(0)], {"fn": UNARY[ctx.type]}).outputs[0]]


@register_onnx_op("LeakyRelu")
def import_leaky_relu(ctx: OnnxContext) -> list[OnnxVal]:
    slope = float(str(np.float32(ctx.attr("alpha", 0.01))))
    return [ctx.add("activation", [ctx.value(0)], {"fn": "leaky_relu", "negative_slope": slope}).outputs[0]]


@register_onnx_op("Elu")
def import_elu(ctx: OnnxContext) -> list[OnnxVal]:
    alpha = float(str(np.float32(ctx.attr("alpha", 1.0))))
    return [ctx.add("activation", [ctx.value(0)], {"fn": "elu", "alpha": alpha}).outputs[0]]


@register_onnx_op("Gelu")
def import_gelu(ctx: OnnxContext) -> list[OnnxVal]:
    approximate = ctx.attr("approximate", "none") == "tanh"
    return [ctx.add("activation", [ctx.value(0)], {"fn": "gelu", "approximate": approximate}).outputs[0]]


@register_onnx_op("Clip")
def import_clip(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    low, high = ctx.const(1), ctx.const(2)
    if ctx.attr("min") is not None or ctx.attr("max") is not None:  # opset < 11
        low, high = ctx.attr("min"), ctx.attr("max")
    low = None if low is None else scalar(np.asarray(low, np.float32).reshape(()))
    high = None if high is None else scalar(np.asarray(high, np.float32).reshape(()))
    if low == 0.0 and high == 6.0:
        return [ctx.add("activation", [x], {"fn": "relu6"}).outputs[0]]
    if low is None and high is None:
        return [x]
    ops = Operands(ctx)
    if low is None or high is None:  # one bound: torch.clamp(x, min=...) / (x, max=...)
        fn, bound = ("minimum", high) if low is None else ("maximum", low)
        return [ops.add("tf_binary", {"fn": fn, "operands": [ops.operand(x), ("scalar", bound)], "exprs": []}).outputs[0]]
    operands = [ops.operand(x), ("scalar", low), ("scalar", high)]
    return [ops.add("tf_nary", {"fn": "clamp", "operands": operands}).outputs[0]]


@register_onnx_op("Where")
def import_where(ctx: OnnxContext) -> list[OnnxVal]:
    if not isinstance(ctx.inputs[0], Value):
        raise ctx.unsupported("Where on a constant condition")
    ops = Operands(ctx)
    operands = [ops.operand(v) for v in ctx.inputs]
    return [ops.add("tf_nary", {"fn": "where", "operands": operands}).outputs[0]]

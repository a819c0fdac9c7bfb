"""add, subtract, multiply, average, maximum, minimum, concat, rescale, identity."""

from __future__ import annotations

import numpy as np

from tf2torch.codegen.literals import literal
from tf2torch.codegen.program import ModuleBuilder
from tf2torch.converters.registry import register_converter
from tf2torch.ir import Node

INFIX = {"add": " + ", "subtract": " - ", "multiply": " * ", "divide": " / "}


@register_converter("add", "subtract", "multiply", "divide")
def convert_infix(node: Node, b: ModuleBuilder) -> None:
    if node.op == "add" and len(node.inputs) == 2:
        out = node.outputs[0]
        for target, other in (node.inputs, node.inputs[::-1]):
            # `x += y` writes into x's storage: x must be a fresh tensor used only here,
            # already of the result's shape and dtype (float addition is commutative).
            if b.var(target) == b.var(out) and b.overwritable(target) and target.spec == out.spec:
                b.emit(out, b.var(other), operator="+=")
                return
    b.emit(node.outputs[0], INFIX[node.op].join(b.var(v) for v in node.inputs))


@register_converter("scalar_arithmetic")
def convert_scalar_arithmetic(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    x, value = b.var(node.inputs[0]), literal(a["value"])
    expr = f"{value} {a['symbol']} {x}" if a["reverse"] else f"{x} {a['symbol']} {value}"
    b.emit(node.outputs[0], expr)


@register_converter("average")
def convert_average(node: Node, b: ModuleBuilder) -> None:
    total = " + ".join(b.var(v) for v in node.inputs)
    b.emit(node.outputs[0], f"({total}) / {len(node.inputs)}")


@register_converter("maximum", "minimum")
def convert_extremum(node: Node, b: ModuleBuilder) -> None:
    fn = "torch.maximum" if node.op == "maximum" else "torch.minimum"
    names = [b.var(v) for v in node.inputs]
    expr = names[0]
    for name in names[1:]:
        expr = f"{fn}({expr}, {name})"
    b.emit(node.outputs[0], expr)


@register_converter("concat")
def convert_concat(node: Node, b: ModuleBuilder) -> None:
    names = ", ".join(b.var(v) for v in node.inputs)
    b.emit(node.outputs[0], f"torch.cat([{names}], dim={node.attrs['axis']})")


def _constant(values: np.ndarray, node: Node) -> str:
    if values.ndim == 0 or values.size == 1:
        return literal(float(values.reshape(-1)[0]))
    x = node.inputs[0]
    shape = [1] * x.rank
    shape[x.torch_axis(-1)] = -1
    return f"torch.tensor({literal([float(v) for v in values])}).view({', '.join(map(str, shape))})"


@register_converter("rescale")
def convert_rescale(node: Node, b: ModuleBuilder) -> None:
    x = b.var(node.inputs[0])
    if node.inputs[0].spec.dtype != "float32":
        x = f"{x}.float()"
    scale, offset = node.attrs["scale"], node.attrs["offset"]
    expr = x
    if not (scale.size == 1 and float(scale.reshape(-1)[0]) == 1.0):
        expr = f"{expr} * {_constant(scale, node)}"
    if not (offset.size == 1 and float(offset.reshape(-1)[0]) == 0.0):
        expr = f"{expr} + {_constant(offset, node)}"
    b.emit(node.outputs[0], expr)


@register_converter("identity")
def convert_identity(node: Node, b: ModuleBuilder) -> None:
    b.alias(node.outputs[0], node.inputs[0])

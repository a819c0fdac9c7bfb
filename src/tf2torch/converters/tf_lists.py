"""TensorList ops (frontends/tf/ops/lists.py) as Python lists and tensor indexing."""

from __future__ import annotations

from tf2torch.codegen.program import ModuleBuilder
from tf2torch.converters.registry import register_converter
from tf2torch.ir import Node


@register_converter("tf_list_reserve")
def convert_tf_list_reserve(node: Node, b: ModuleBuilder) -> None:
    count = node.attrs["count"]
    b.emit(node.outputs[0], f"[None] * {count if count is not None else f'int({b.var(node.inputs[0])})'}")


def _index(node: Node, b: ModuleBuilder, position: int) -> str:
    constant = node.attrs["index"]
    return str(constant) if constant is not None else b.var(node.inputs[position])


@register_converter("tf_list_get")
def convert_tf_list_get(node: Node, b: ModuleBuilder) -> None:
    b.emit(node.outputs[0], f"{b.var(node.inputs[0])}[{_index(node, b, 1)}]")


@register_converter("tf_list_set")
def convert_tf_list_set(node: Node, b: ModuleBuilder) -> None:
    # A new list, not an in-place write: TF's lists are values (a loop body returns the new one).
    items, item, index = b.var(node.inputs[0]), b.var(node.inputs[1]), _index(node, b, 2)
    b.emit(node.outputs[0], f"{items}[:{index}] + [{item}] + {items}[{index} + 1:]")


@register_converter("tf_list_stack")
def convert_tf_list_stack(node: Node, b: ModuleBuilder) -> None:
    b.emit(node.outputs[0], f"torch.stack(list({b.var(node.inputs[0])}))")


@register_converter("tf_list_length")
def convert_tf_list_length(node: Node, b: ModuleBuilder) -> None:
    b.emit(node.outputs[0], f"torch.tensor(len({b.var(node.inputs[0])}))")

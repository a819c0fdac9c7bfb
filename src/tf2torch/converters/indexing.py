"""getitem (x[...] with constant slices, indices and new axes), depth_to_space, space_to_depth."""

from __future__ import annotations

from tf2torch.codegen.program import ModuleBuilder
from tf2torch.converters.registry import register_converter
from tf2torch.ir import Node


def _index_text(item: tuple | str) -> str:
    if item == "new":
        return "None"
    if item[0] == "index":
        return str(item[1])
    start, stop, step = item[1:]
    text = f"{'' if start is None else start}:{'' if stop is None else stop}"
    return text if step in (None, 1) else f"{text}:{step}"


@register_converter("getitem")
def convert_getitem(node: Node, b: ModuleBuilder) -> None:
    x = node.inputs[0]
    items = list(node.attrs["items"])
    if x.perm is not None:  # the layout pass kept a permuted input: index it in torch order
        items = [items[axis] for axis in x.perm]
    texts = [_index_text(item) for item in items]
    while texts and texts[-1] == ":":
        texts.pop()
    if not texts:
        b.alias(node.outputs[0], x)
        return
    b.emit(node.outputs[0], f"{b.var(x)}[{', '.join(texts)}]")


@register_converter("depth_to_space")
def convert_depth_to_space(node: Node, b: ModuleBuilder) -> None:
    r = node.attrs["block_size"]
    x = b.var(node.inputs[0])
    b.emit(node.outputs[0], f"{x}.unflatten(1, ({r}, {r}, -1)).permute(0, 3, 4, 1, 5, 2).flatten(4, 5).flatten(2, 3)",
           comment="TensorFlow's depth_to_space channel order (not F.pixel_shuffle's)")


@register_converter("space_to_depth")
def convert_space_to_depth(node: Node, b: ModuleBuilder) -> None:
    r = node.attrs["block_size"]
    x = b.var(node.inputs[0])
    b.emit(node.outputs[0], f"{x}.unflatten(3, (-1, {r})).unflatten(2, (-1, {r})).permute(0, 3, 5, 1, 2, 4).flatten(1, 3)",
           comment="TensorFlow's space_to_depth channel order (not F.pixel_unshuffle's)")

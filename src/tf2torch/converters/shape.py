"""flatten, reshape, permute, transpose (layout boundaries), layout_view, pad, crop, upsample."""

from __future__ import annotations

from tf2torch.codegen.literals import literal
from tf2torch.codegen.program import ModuleBuilder
from tf2torch.converters.conv import torch_pad_list
from tf2torch.converters.registry import register_converter
from tf2torch.ir import Node


@register_converter("flatten")
def convert_flatten(node: Node, b: ModuleBuilder) -> None:
    x = node.inputs[0]
    if x.rank <= 2:
        b.alias(node.outputs[0], x)
        return
    b.emit(node.outputs[0], f"torch.flatten({b.var(x)}, 1)")


@register_converter("reshape")
def convert_reshape(node: Node, b: ModuleBuilder) -> None:
    x = b.var(node.inputs[0])
    target = node.attrs["target_shape"]
    batch = f"{x}.shape[0]" if -1 in target else "-1"
    dims = ", ".join(str(d) for d in (batch, *target))
    b.emit(node.outputs[0], f"{x}.reshape({dims})")


@register_converter("permute")
def convert_permute(node: Node, b: ModuleBuilder) -> None:
    dims = ", ".join(str(d) for d in node.attrs["dims"])
    b.emit(node.outputs[0], f"{b.var(node.inputs[0])}.permute({dims})")


@register_converter("transpose")
def convert_transpose(node: Node, b: ModuleBuilder) -> None:
    dims = ", ".join(str(d) for d in node.attrs["dims"])
    target = "channels-first" if node.outputs[0].perm else "Keras (channels-last)"
    b.emit(node.outputs[0], f"{b.var(node.inputs[0])}.permute({dims})",
           comment=f"Layout boundary: the next layer needs the {target} layout.")


@register_converter("pad")
def convert_pad(node: Node, b: ModuleBuilder) -> None:
    F = b.use_functional()
    b.emit(node.outputs[0], f"{F}.pad({b.var(node.inputs[0])}, {torch_pad_list(node.attrs['pads'])})")


@register_converter("crop")
def convert_crop(node: Node, b: ModuleBuilder) -> None:
    slices = ", ".join(f"{a}:{-c if c else ''}" for a, c in node.attrs["crops"])
    b.emit(node.outputs[0], f"{b.var(node.inputs[0])}[:, :, {slices}]")


@register_converter("upsample")
def convert_upsample(node: Node, b: ModuleBuilder) -> None:
    F = b.use_functional()
    factors = node.attrs["factors"]
    scale = literal(float(factors[0])) if len(set(factors)) == 1 else literal(tuple(float(f) for f in factors))
    x = b.var(node.inputs[0])
    if node.attrs["mode"] == "nearest":
        b.emit(node.outputs[0], f'{F}.interpolate({x}, scale_factor={scale}, mode="nearest")')
    else:
        mode = {3: "linear", 4: "bilinear", 5: "trilinear"}[node.inputs[0].rank]
        b.emit(node.outputs[0], f'{F}.interpolate({x}, scale_factor={scale}, mode="{mode}", align_corners=False)')


@register_converter("layout_view")
def convert_layout_view(node: Node, b: ModuleBuilder) -> None:
    # The layout pass made the torch tensor the same on both sides (no data moves).
    b.alias(node.outputs[0], node.inputs[0])

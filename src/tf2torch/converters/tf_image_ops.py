"""Converters for the TF frontend's image rearrangements (channels-first in the generated
code) and segment reductions."""

from __future__ import annotations

from tf2torch.codegen.literals import compact, literal
from tf2torch.codegen.program import ModuleBuilder
from tf2torch.converters.conv import torch_pad_list
from tf2torch.converters.registry import register_converter
from tf2torch.converters.tf_ops import TORCH_DTYPES, _paren, _variable, operand, sym_text
from tf2torch.ir import Node, Value


def _spatial(x: Value, axis: int, b: ModuleBuilder) -> str:
    """Size of torch dim `axis` of channels-first `x`: a number when known, else x.shape[axis]."""
    size = x.torch_shape[axis]
    return str(size) if size is not None else f"{b.var(x)}.shape[{axis}]"


@register_converter("tf_depth_to_space")
def convert_tf_depth_to_space(node: Node, b: ModuleBuilder) -> None:
    # TensorFlow orders the depth as (block row, block column, channel): channel is fastest.
    x, r = node.inputs[0], node.attrs["block"]
    channels = x.spec.shape[-1] // (r * r)
    h, w = _spatial(x, 2, b), _spatial(x, 3, b)
    blocks = b.temp(f"{node.source.name}_blocks", f"{b.var(x)}.reshape(-1, {r}, {r}, {channels}, {h}, {w})")
    out_h = int(h) * r if h.isdigit() else f"{h} * {r}"
    out_w = int(w) * r if w.isdigit() else f"{w} * {r}"
    b.emit(node.outputs[0], f"{blocks}.permute(0, 3, 4, 1, 5, 2).reshape(-1, {channels}, {out_h}, {out_w})")


@register_converter("tf_space_to_depth")
def convert_tf_space_to_depth(node: Node, b: ModuleBuilder) -> None:
    x, r = node.inputs[0], node.attrs["block"]
    channels = x.spec.shape[-1]
    h, w = _spatial(x, 2, b), _spatial(x, 3, b)
    out_h = int(h) // r if h.isdigit() else f"{h} // {r}"
    out_w = int(w) // r if w.isdigit() else f"{w} // {r}"
    blocks = b.temp(f"{node.source.name}_blocks", f"{b.var(x)}.reshape(-1, {channels}, {out_h}, {r}, {out_w}, {r})")
    b.emit(node.outputs[0], f"{blocks}.permute(0, 3, 5, 1, 2, 4).reshape(-1, {r * r * channels}, {out_h}, {out_w})")


@register_converter("tf_extract_patches")
def convert_tf_extract_patches(node: Node, b: ModuleBuilder) -> None:
    """F.unfold lists a patch as (channel, row, column); TensorFlow as (row, column, channel)."""
    F = b.use_functional()
    a = node.attrs
    x = b.var(node.inputs[0])
    if any(p != (0, 0) for p in a["pads"]):
        x = b.temp(f"{node.source.name}_padded", f"{F}.pad({x}, {torch_pad_list(a['pads'])})")
    kwargs = f"kernel_size={literal(compact(a['kernel']))}"
    if a["dilation"] != (1, 1):
        kwargs += f", dilation={literal(compact(a['dilation']))}"
    if a["stride"] != (1, 1):
        kwargs += f", stride={literal(compact(a['stride']))}"
    patches = b.temp(f"{node.source.name}_columns", f"{F}.unfold({x}, {kwargs})")
    taps = a["kernel"][0] * a["kernel"][1]
    oh, ow = a["out_size"]
    b.emit(node.outputs[0], f"{patches}.reshape(-1, {a['channels']}, {taps}, {oh}, {ow}).transpose(1, 2)"
                            f".reshape(-1, {taps * a['channels']}, {oh}, {ow})")


@register_converter("tf_segment")
def convert_tf_segment(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    data_value = node.inputs[0]
    data, ids = b.var(data_value), operand(node, a["ids"], b, broadcast=False)
    ids = f"{ids}.long()" if a["ids"][0] == "value" else _paren(ids)
    k = a["id_rank"]
    if k != 1:  # ids shaped like data's k leading axes: flatten both
        data = b.temp(f"{node.source.name}_data", f"{data}.flatten(0, {k - 1})" if k > 1 else f"{data}[None]")
        ids = f"{ids}.reshape(-1)"
    count = a["count"]
    count_text = f"int({ids}[-1]) + 1" if count == "last_id" else sym_text(node, count, b)
    rest = f"*{data}.shape[1:]"
    dtype = TORCH_DTYPES[a["dtype"]]
    fill = f"({count_text}, {rest})"
    device = f"device={b.var(data_value)}.device"
    if a["fn"] == "sum":
        out = b.temp(f"{node.source.name}_sums", f"torch.zeros({fill}, dtype={dtype}, {device})")
        b.emit(node.outputs[0], f"{out}.index_add({0}, {ids}, {data})")
        return
    out = b.temp(f"{node.source.name}_init", f"torch.full({fill}, {literal(a['empty'])}, dtype={dtype}, {device})")
    include = "" if a["include_self"] else ", include_self=False"
    spread = ", ".join([":"] + ["None"] * (data_value.rank - k))  # ids broadcast over the feature axes
    index = f"{_paren(ids)}[{spread}].expand_as({data})" if data_value.rank - k else ids
    b.emit(node.outputs[0], f'{out}.scatter_reduce(0, {index}, {data}, "{a["fn"]}"{include})')


@register_converter("tf_resize_weights")
def convert_tf_resize_weights(node: Node, b: ModuleBuilder) -> None:
    x = node.inputs[0]
    rows, cols = (_variable(node, key, b, None, None) for key in ("rows", "cols"))
    source = b.var(x) if x.spec.dtype == "float32" else f"{b.var(x)}.float()"
    comment = f"TensorFlow's {node.attrs['kind']} as its per-axis interpolation weights (exact)."
    b.emit(node.outputs[0], f"{rows} @ {source} @ {cols}", comment=comment)

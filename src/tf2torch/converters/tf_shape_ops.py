"""Converters for the TF frontend's ops that take sizes, possibly known only at run time
(reshape, slice, tile, fill, range, broadcast_to, gather), and for shape values used as
tensors. Run-time sizes render as `x.shape[i]` arithmetic, so `torch.export` keeps them
symbolic."""

from __future__ import annotations

from tf2torch.codegen.literals import literal
from tf2torch.codegen.program import ModuleBuilder, Statement
from tf2torch.converters.registry import register_converter
from tf2torch.converters.tf_ops import TORCH_DTYPES, _paren, operand, sym_text
from tf2torch.ir import Node


def _sizes(node: Node, syms: tuple, b: ModuleBuilder) -> list[str]:
    return [sym_text(node, s, b) for s in syms]


def _source(node: Node, b: ModuleBuilder) -> str:
    """The tensor the op works on: a run-time value, or a variable / constant."""
    return _paren(operand(node, node.attrs["source"], b, broadcast=False))


def _shape_tuple(dims: list[str]) -> str:
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _device(node: Node, b: ModuleBuilder) -> str:
    """`, device=x.device` for a new tensor sized after a run-time input, so it lands beside it."""
    if not node.inputs:
        return ""
    return f", device={b.var(node.inputs[0])}.device"


@register_converter("tf_reshape")
def convert_tf_reshape(node: Node, b: ModuleBuilder) -> None:
    x = b.var(node.inputs[0])
    b.emit(node.outputs[0], f"{x}.reshape({', '.join(_sizes(node, node.attrs['shape'], b)) or '()'})")


def _index_entry(node: Node, entry: str | tuple, b: ModuleBuilder) -> str:
    if isinstance(entry, str):
        return entry
    if entry[0] == "at":
        return sym_text(node, entry[1], b)
    _, begin, end, stride = entry
    text = f"{'' if begin is None else sym_text(node, begin, b)}:{'' if end is None else sym_text(node, end, b)}"
    return text + (f":{stride}" if stride != 1 else "")


@register_converter("tf_slice")
def convert_tf_slice(node: Node, b: ModuleBuilder) -> None:
    index = ", ".join(_index_entry(node, e, b) for e in node.attrs["index"])
    b.emit(node.outputs[0], f"{_source(node, b)}[{index}]")


@register_converter("tf_tile")
def convert_tf_tile(node: Node, b: ModuleBuilder) -> None:
    b.emit(node.outputs[0], f"{_source(node, b)}.repeat({', '.join(_sizes(node, node.attrs['multiples'], b))})")


@register_converter("tf_broadcast_to")
def convert_tf_broadcast_to(node: Node, b: ModuleBuilder) -> None:
    b.emit(node.outputs[0], f"{_source(node, b)}.expand({', '.join(_sizes(node, node.attrs['shape'], b))})")


@register_converter("tf_fill")
def convert_tf_fill(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    shape = _shape_tuple(_sizes(node, a["shape"], b))
    if a["value"][0] == "scalar":
        fill = literal(a["value"][1])
        b.emit(node.outputs[0], f"torch.full({shape}, {fill}, dtype={TORCH_DTYPES[a['dtype']]}{_device(node, b)})")
    else:  # a run-time scalar
        b.emit(node.outputs[0], f"{_paren(operand(node, a['value'], b))}.expand({shape})")


@register_converter("tf_range")
def convert_tf_range(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    args = [sym_text(node, a["limit"], b)]
    if a["start"] != 0 or a["delta"] != 1:
        args.insert(0, sym_text(node, a["start"], b))
    if a["delta"] != 1:
        args.append(sym_text(node, a["delta"], b))
    dtype = TORCH_DTYPES[a["dtype"]]
    b.emit(node.outputs[0], f"torch.arange({', '.join(args)}, dtype={dtype}{_device(node, b)})")


RANDOM_CALLS = {"normal": "torch.randn", "uniform": "torch.rand"}


@register_converter("tf_random")
def convert_tf_random(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    shape = _shape_tuple(_sizes(node, a["shape"], b))
    options = f"dtype={TORCH_DTYPES[a['dtype']]}{_device(node, b)}"
    if a["distribution"] == "truncated_normal":  # TensorFlow redraws beyond two standard deviations
        b.emit(node.outputs[0], f"nn.init.trunc_normal_(torch.empty({shape}, {options}), a=-2.0, b=2.0)")
    else:
        b.emit(node.outputs[0], f"{RANDOM_CALLS[a['distribution']]}({shape}, {options})")


@register_converter("tf_shape_tensor")
def convert_tf_shape_tensor(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    items = _sizes(node, a["items"], b)
    data = items[0] if a["scalar"] else f"[{', '.join(items)}]"
    b.emit(node.outputs[0], f"torch.tensor({data}, dtype={TORCH_DTYPES[a['dtype']]}{_device(node, b)})")


def _index(node: Node, op: tuple, b: ModuleBuilder) -> str:
    text = operand(node, op, b, broadcast=False)
    return f"{text}.long()" if op[0] == "value" else text


@register_converter("tf_gather")
def convert_tf_gather(node: Node, b: ModuleBuilder) -> None:
    params_op, index_op = node.attrs["operands"]
    params = _paren(operand(node, params_op, b, broadcast=False))
    batch_dims = node.attrs.get("batch_dims", 0)
    if not batch_dims:
        prefix = ":, " * node.attrs["axis"]
        b.emit(node.outputs[0], f"{params}[{prefix}{_index(node, index_op, b)}]")
        return
    # gather(params, ids, batch_dims=k): the k leading axes pair up -> index them with aranges
    # shaped to broadcast against ids.
    rank = node.attrs["index_rank"]
    device = f", device={params}.device"
    aranges = []
    for k in range(batch_dims):
        spread = ", ".join(["None"] * k + [":"] + ["None"] * (rank - k - 1))
        aranges.append(f"torch.arange({params}.shape[{k}]{device})[{spread}]")
    b.emit(node.outputs[0], f"{params}[{', '.join(aranges)}, {_index(node, index_op, b)}]")


@register_converter("tf_gather_nd")
def convert_tf_gather_nd(node: Node, b: ModuleBuilder) -> None:
    params_op, index_op = node.attrs["operands"]
    params = operand(node, params_op, b, broadcast=False)
    b.emit(node.outputs[0], f"{_paren(params)}[tuple({_index(node, index_op, b)}.unbind(-1))]")


@register_converter("tf_flip")
def convert_tf_flip(node: Node, b: ModuleBuilder) -> None:
    dims = node.attrs["dims"]
    b.emit(node.outputs[0], f"{b.var(node.inputs[0])}.flip({', '.join(map(str, dims))})")


@register_converter("tf_roll")
def convert_tf_roll(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    shifts, dims = (a["shifts"][0], a["dims"][0]) if len(a["dims"]) == 1 else (a["shifts"], a["dims"])
    b.emit(node.outputs[0], f"torch.roll({b.var(node.inputs[0])}, shifts={shifts}, dims={dims})")


@register_converter("tf_band_part")
def convert_tf_band_part(node: Node, b: ModuleBuilder) -> None:
    """A run-time bound (a tuple) is non-negative (checked on import); a negative constant keeps all."""
    expr = b.var(node.inputs[0])
    upper, lower = node.attrs["upper"], node.attrs["lower"]
    if isinstance(upper, tuple) or upper >= 0:
        expr = f"torch.tril({expr}, {sym_text(node, upper, b)})"
    if isinstance(lower, tuple):
        expr = f"torch.triu({expr}, -{_paren(sym_text(node, lower, b))})"
    elif lower >= 0:
        expr = f"torch.triu({expr}, {-lower})"
    b.emit(node.outputs[0], expr)


@register_converter("tf_diagonal")
def convert_tf_diagonal(node: Node, b: ModuleBuilder) -> None:
    offset = node.attrs["offset"]
    extra = f"offset={offset}, " if offset else ""
    b.emit(node.outputs[0], f"torch.diagonal({b.var(node.inputs[0])}, {extra}dim1=-2, dim2=-1)")


@register_converter("tf_scatter_nd")
def convert_tf_scatter_nd(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    if "zeros" in a:
        dtype = TORCH_DTYPES[a["dtype"]]
        target = f"torch.zeros({_shape_tuple(_sizes(node, a['zeros'], b))}, dtype={dtype}{_device(node, b)})"
    else:
        target = _source(node, b)
    updates = operand(node, a["updates"], b, broadcast=False)
    index = f"tuple({_index(node, a['indices'], b)}.unbind(-1))"
    accumulate = ", accumulate=True" if a["accumulate"] else ""
    b.emit(node.outputs[0], f"torch.index_put({target}, {index}, {updates}{accumulate})")


@register_converter("tf_update_slice")
def convert_tf_update_slice(node: Node, b: ModuleBuilder) -> None:
    """A copy of the tensor with the block assigned: two statements, as a person writes it."""
    out = node.outputs[0]
    b.emit(out, f"{_source(node, b)}.clone()")
    index = ", ".join(_index_entry(node, e, b) for e in node.attrs["index"])
    b.statements.append(Statement([f"{b.var(out)}[{index}]"], operand(node, node.attrs["update"], b, broadcast=False)))

"""pool (max / average, 1D-3D), global_pool and adaptive_pool."""

from __future__ import annotations

from tf2torch.codegen.literals import compact
from tf2torch.codegen.program import ModuleBuilder
from tf2torch.converters.conv import torch_pad_list
from tf2torch.converters.registry import register_converter
from tf2torch.ir import Node

POOL_PAD_HELPER = '''
def pad_same_pool(x: torch.Tensor, kernel_size: tuple[int, ...], stride: tuple[int, ...], value: float = 0.0) -> torch.Tensor:
    """TensorFlow 'same' pooling padding for the input's size: the odd cell goes at the end."""
    pads: list[int] = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel_size), reversed(stride)):
        total = max((-(-size // s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value)
'''


@register_converter("pool")
def convert_pool(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    F = b.use_functional()
    x = b.var(node.inputs[0])
    rank, kind = a["rank"], a["kind"]
    k, s = compact(a["kernel_size"]), compact(a["stride"])
    pads = a["pads"]
    if pads == "same_dynamic":
        _convert_dynamic_same_pool(node, b, x, F)
        return
    symmetric = all(l == r for l, r in pads) and all(l <= kk // 2 for (l, _), kk in zip(pads, a["kernel_size"]))
    fn = f"{F}.{kind}_pool{rank}d"
    args = f"{k}" if k == s else f"{k}, {s}"
    if not any(l or r for l, r in pads):
        b.emit(node.outputs[0], f"{fn}({x}, {args})")
    elif symmetric:
        pad = compact(tuple(l for l, _ in pads))
        extra = "" if kind == "max" else ", count_include_pad=False"
        if k == s:
            args = f"{k}, {s}"
        b.emit(node.outputs[0], f"{fn}({x}, {args}, padding={pad}{extra})",
               comment=None if kind == "max" else "TF leaves padded cells out of the average.")
    elif kind == "max":
        padded = b.temp(f"{x}_padded", f'{F}.pad({x}, {torch_pad_list(pads)}, value=float("-inf"))',
                        comment="TF 'same' pooling pads asymmetrically (extra cell at the end).")
        b.emit(node.outputs[0], f"{fn}({padded}, {args})")
    else:
        pad_list = torch_pad_list(pads)
        total = b.temp(f"{x}_sum", f"{fn}({F}.pad({x}, {pad_list}), {args})",
                       comment="TF 'same' average pooling: asymmetric padding, padded cells not counted.")
        count = b.temp(f"{x}_count", f"{fn}({F}.pad(torch.ones_like({x}[:1, :1]), {pad_list}), {args})")
        b.emit(node.outputs[0], f"{total} / {count}")


def _convert_dynamic_same_pool(node: Node, b: ModuleBuilder, x: str, F: str) -> None:
    """'same' pooling on an input whose spatial size is known only at run time."""
    a = node.attrs
    b.helper("pad_same_pool", POOL_PAD_HELPER)
    fn = f"{F}.{a['kind']}_pool{a['rank']}d"
    k, s = compact(a["kernel_size"]), compact(a["stride"])
    args = f"{k}" if k == s else f"{k}, {s}"
    ks, st = tuple(a["kernel_size"]), tuple(a["stride"])
    if a["kind"] == "max":
        padded = b.temp(f"{x}_padded", f'pad_same_pool({x}, {ks}, {st}, float("-inf"))',
                        comment="TF 'same' pooling: padding computed from the run-time input size.")
        b.emit(node.outputs[0], f"{fn}({padded}, {args})")
        return
    total = b.temp(f"{x}_sum", f"{fn}(pad_same_pool({x}, {ks}, {st}), {args})",
                   comment="TF 'same' average pooling: run-time padding, padded cells not counted.")
    count = b.temp(f"{x}_count", f"{fn}(pad_same_pool(torch.ones_like({x}[:1, :1]), {ks}, {st}), {args})")
    b.emit(node.outputs[0], f"{total} / {count}")


@register_converter("global_pool")
def convert_global_pool(node: Node, b: ModuleBuilder) -> None:
    x = node.inputs[0]
    dims = tuple(range(2, x.rank))
    fn = "mean" if node.attrs["kind"] == "avg" else "amax"
    dim = dims[0] if len(dims) == 1 else dims
    keep = ", keepdim=True" if node.attrs["keepdims"] else ""
    b.emit(node.outputs[0], f"{b.var(x)}.{fn}(dim={dim}{keep})")


@register_converter("adaptive_pool")
def convert_adaptive_pool(node: Node, b: ModuleBuilder) -> None:
    F = b.use_functional()
    size = node.attrs["output_size"]
    fn = f"adaptive_{node.attrs['kind']}_pool{len(size)}d"
    b.emit(node.outputs[0], f"{F}.{fn}({b.var(node.inputs[0])}, {compact(size)})")

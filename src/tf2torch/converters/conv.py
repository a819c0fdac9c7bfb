"""conv (also depthwise and separable parts), conv_transpose and locally_connected."""

from __future__ import annotations

from tf2torch.codegen.literals import call, compact
from tf2torch.codegen.program import ModuleBuilder
from tf2torch.converters.params import frozen_names, state_array
from tf2torch.converters.registry import register_converter
from tf2torch.ir import Node

# Keras kernel (*k, in, out) -> torch (out, in, *k); Keras transpose kernel (*k, out, in) ->
# torch ConvTranspose (in, out, *k): the same axis permutation in both cases.
KERNEL_TO_TORCH = {1: (2, 1, 0), 2: (3, 2, 0, 1), 3: (4, 3, 0, 1, 2)}

SAME_PAD_HELPER = '''
def pad_same(x: torch.Tensor, kernel_size: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...]) -> torch.Tensor:
    """TensorFlow 'same' padding for the input's size: the odd cell goes at the end."""
    pads: list[int] = []
    for size, k, s, d in zip(reversed(x.shape[2:]), reversed(kernel_size), reversed(stride), reversed(dilation)):
        total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)
'''

CROPPED_CONV_HELPER = '''
class CroppedConv{n}d(nn.Conv{n}d):
    """TensorFlow's asymmetric 'same' padding (the extra cell at the end) without an F.pad
    copy of the input: padded one stride more on both sides, the convolution computes one
    extra window at the start of the dimension, which `crop` (start, stop) drops."""

    def __init__(self, *args, crop: tuple[tuple[int, int | None], ...], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.crop = crop

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        y = super()._conv_forward(x, weight, bias)
        return y[(slice(None), slice(None), *(slice(start, stop) for start, stop in self.crop))]
'''


SAME_CONV_HELPER = '''
class SameConv{n}d(nn.Conv{n}d):
    """A convolution with TensorFlow's 'same' padding for the input's size, any stride. When it is
    asymmetric, one stride more at the start and the first output dropped: no F.pad copy."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        padding, crop = [], []
        for i, (k, s, d) in enumerate(zip(self.kernel_size, self.stride, self.dilation)):
            size = x.shape[2 + i]
            out = (size + s - 1) // s
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)  # negative when the kernel is shorter than a stride
            odd = total % 2
            padding.append(total // 2 + odd * s)
            crop.append(slice(odd, out + odd))
        y = F.conv{n}d(x, weight, bias, self.stride, padding, self.dilation, self.groups)
        return y[(slice(None), slice(None), *crop)]
'''


def tf_same_pads(sizes: tuple, kernel_size: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...]) -> list:
    """TensorFlow's (left, right) 'same' padding per spatial dimension of these sizes."""
    pads = []
    for n, k, s, d in zip(sizes, kernel_size, stride, dilation):
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        pads.append((total // 2, total - total // 2))
    return pads


def is_same_conv(pads: list, in_sizes: tuple, kernel_size: tuple[int, ...], stride: tuple[int, ...],
                 dilation: tuple[int, ...]) -> bool:
    """Are `pads` TF's 'same' padding for `in_sizes`, for a kernel spanning at least a stride
    in every dimension (what SameConv computes)?"""
    return (None not in in_sizes and all((k - 1) * d + 1 >= s for k, s, d in zip(kernel_size, stride, dilation))
            and [tuple(p) for p in pads] == tf_same_pads(in_sizes, kernel_size, stride, dilation))


def torch_pad_list(pads: list[tuple[int, int]]) -> tuple[int, ...]:
    """[(top, bottom), (left, right)] -> F.pad's (left, right, top, bottom)."""
    flat: list[int] = []
    for left, right in reversed(pads):
        flat += [left, right]
    return tuple(flat)


def symmetric_padding_with_crop(
    pads: list[tuple[int, int]], stride: tuple[int, ...], window: tuple[int, ...],
    in_sizes: tuple, out_sizes: tuple,
) -> tuple[tuple[int, ...], tuple[tuple[int, int | None], ...]] | None:
    """TF's (left, right) padding per spatial dimension as torch's symmetric conv padding
    plus a crop (start, stop) of the output, or None.

    With `left + s` zeros at the start instead of `left`, torch's window j starts where TF's
    window j - 1 does (windows are `s` apart): dropping the first output gives TF's windows
    exactly, and `left + s >= right` zeros cover TF's at the end. Exact (zeros either way);
    one extra output row/column is computed, no copy of the input is made. Needs static sizes
    to know how many outputs torch makes at the end. `window` is the dilated kernel size."""
    padding, crop = [], []
    for (left, right), s, k, n, m in zip(pads, stride, window, in_sizes, out_sizes):
        if left == right:
            padding.append(left)
            crop.append((0, None))
            continue
        if not left < right <= left + s or n is None or m is None:
            return None
        made = (n + 2 * (left + s) - k) // s + 1
        padding.append(left + s)
        crop.append((1, None if made == m + 1 else m + 1))
    return tuple(padding), tuple(crop)


MASKED_CONV_HELPER = """
class MaskedConv{rank}d(nn.Conv{rank}d):
    \"\"\"A convolution whose kernel is multiplied by a fixed mask on every call (the Keras layer
    masked its kernel in call()): masked weights stay zero in training too.\"\"\"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("mask", torch.ones_like(self.weight))

    def forward(self, x):
        return {F}.conv{rank}d(x, self.weight * self.mask, self.bias, self.stride, self.padding, self.dilation, self.groups)
"""


@register_converter("conv")
def convert_conv(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    rank = a["rank"]
    x = b.var(node.inputs[0])
    kwargs: dict = {}
    pads = a["pads"]
    comment = None
    cls = f"nn.Conv{rank}d"
    masked = "kernel_mask" in node.params
    if pads == "same_dynamic":
        F = b.use_functional()
        b.helper("pad_same", SAME_PAD_HELPER)
        x = b.temp(f"{x}_padded", f"pad_same({x}, {a['kernel_size']}, {a['stride']}, {a['dilation']})",
                   comment="TF 'same' padding depends on the input size here: computed at run time.")

    elif all(left == right for left, right in pads):
        if any(left for left, _ in pads):
            kwargs["padding"] = compact(tuple(left for left, _ in pads))
    elif not masked and rank in (1, 2, 3) and is_same_conv(
            pads, node.inputs[0].torch_shape[2:], a["kernel_size"], a["stride"], a["dilation"]):
        cls = b.helper(f"SameConv{rank}d", SAME_CONV_HELPER.format(n=rank))
        b.use_functional()
    elif not masked and (cropped := symmetric_padding_with_crop(
        pads, a["stride"], tuple((k - 1) * d + 1 for k, d in zip(a["kernel_size"], a["dilation"])),
        node.inputs[0].torch_shape[2:], node.outputs[0].torch_shape[2:],
    )):
        kwargs["padding"] = compact(cropped[0])
        kwargs["crop"] = cropped[1]
        cls = b.helper(f"CroppedConv{rank}d", CROPPED_CONV_HELPER.format(n=rank))
        comment = "TF 'same' padding is asymmetric here (the extra cell at the end): see CroppedConv."
    else:
        F = b.use_functional()
        x = b.temp(f"{x}_padded", f"{F}.pad({x}, {torch_pad_list(pads)})",
                   comment="TF 'same' padding is asymmetric here: the extra cell goes at the end.")
    if any(s != 1 for s in a["stride"]):
        kwargs = {"stride": compact(a["stride"]), **kwargs}
    if any(d != 1 for d in a["dilation"]):
        kwargs["dilation"] = compact(a["dilation"])
    if a["groups"] != 1:
        kwargs["groups"] = a["groups"]
    if "bias" not in node.params:
        kwargs["bias"] = False
    state = {"weight": state_array(node.params["kernel"].array.transpose(KERNEL_TO_TORCH[rank]))}
    if masked:
        cls = b.helper(f"MaskedConv{rank}d", MASKED_CONV_HELPER.format(rank=rank, F=b.use_functional()))
        state["mask"] = state_array(node.params["kernel_mask"].array.transpose(KERNEL_TO_TORCH[rank]))
    ctor = call(cls, a["in_channels"], a["out_channels"], kernel_size=compact(a["kernel_size"]), **kwargs)
    if "bias" in node.params:
        state["bias"] = state_array(node.params["bias"].array)
    frozen = frozen_names(node, {"kernel": "weight", "bias": "bias"})
    mod = b.submodule(node, ctor, state, suffix=a.get("module_suffix", ""), frozen=frozen)
    b.emit(node.outputs[0], f"{mod}({x})", comment=comment)


@register_converter("conv_transpose")
def convert_conv_transpose(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    rank = a["rank"]
    kwargs: dict = {}
    if any(s != 1 for s in a["stride"]):
        kwargs["stride"] = compact(a["stride"])
    if any(a["padding"]):
        kwargs["padding"] = compact(a["padding"])
    if any(a["output_padding"]):
        kwargs["output_padding"] = compact(a["output_padding"])
    if "bias" not in node.params:
        kwargs["bias"] = False
    if any(d != 1 for d in a["dilation"]):
        kwargs["dilation"] = compact(a["dilation"])
    ctor = call(f"nn.ConvTranspose{rank}d", a["in_channels"], a["out_channels"], kernel_size=compact(a["kernel_size"]), **kwargs)
    state = {"weight": state_array(node.params["kernel"].array.transpose(KERNEL_TO_TORCH[rank]))}
    if "bias" in node.params:
        state["bias"] = state_array(node.params["bias"].array)
    mod = b.submodule(node, ctor, state, frozen=frozen_names(node, {"kernel": "weight", "bias": "bias"}))
    expr = f"{mod}({b.var(node.inputs[0])})"
    crops = a["crops"]
    if any(left or right for left, right in crops):
        y = b.temp(f"{node.source.name}_full", expr)
        slices = ", ".join(f"{left}:{-right if right else ''}" for left, right in crops)
        b.emit(node.outputs[0], f"{y}[:, :, {slices}]",
               comment="TF crops the transposed conv asymmetrically (more at the end).")
    else:
        b.emit(node.outputs[0], expr)


LOCALLY_CONNECTED_HELPER = '''
class LocallyConnected{n}d(nn.Module):
    """Keras LocallyConnected{n}D: a 'valid' convolution with its own weights at every output
    position. weight: (*output positions, in_channels, *kernel_size, filters)."""

    def __init__(
        self, in_channels: int, filters: int, kernel_size: tuple[int, ...], stride: tuple[int, ...],
        out_size: tuple[int, ...], bias: bool = True,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.weight = nn.Parameter(torch.empty(*out_size, in_channels, *kernel_size, filters))
        self.bias = nn.Parameter(torch.empty(filters, *out_size)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for dim, (k, s) in enumerate(zip(self.kernel_size, self.stride), start=2):
            x = x.unfold(dim, k, s)  # patches: (N, C, *positions, *kernel)
        x = torch.einsum("{einsum}", x, self.weight)
        if self.bias is not None:
            x = x + self.bias
        return x
'''

# Patch (N, C, *positions, *kernel) x weight (*positions, C, *kernel, F) -> (N, F, *positions).
LOCALLY_CONNECTED_EINSUM = {1: "nclk,lckf->nfl", 2: "nchwij,hwcijf->nfhw"}


@register_converter("locally_connected")
def convert_locally_connected(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    n = len(a["kernel_size"])
    cls = b.helper(f"LocallyConnected{n}d", LOCALLY_CONNECTED_HELPER.format(n=n, einsum=LOCALLY_CONNECTED_EINSUM[n]))
    kwargs = {} if "bias" in node.params else {"bias": False}
    ctor = call(cls, a["in_channels"], a["filters"], tuple(a["kernel_size"]), tuple(a["stride"]), tuple(a["out_size"]),
                **kwargs)
    state = {"weight": state_array(node.params["kernel"].array)}
    if "bias" in node.params:
        state["bias"] = state_array(node.params["bias"].array)
    mod = b.submodule(node, ctor, state, frozen=frozen_names(node, {"kernel": "weight", "bias": "bias"}))
    b.emit(node.outputs[0], f"{mod}({b.var(node.inputs[0])})")

"""fake_quant, and kernels rounded to a quantized file's grid (TFLite --keep-quantization).

Activations: `x = fake_quantize(x, scale, zero_point)` where the file stores the tensor as
integers. Weights: the layer's `weight` is parametrized (torch.nn.utils.parametrize) so that
forward sees it rounded to the file's per-channel grid while the float tensor stays the
trainable parameter; both roundings pass gradients straight through.

Integer kernels: a node with attrs["integer_kernel"] (conv, depthwise conv, dense, add, subtract,
multiply, mean, sigmoid, tanh of an int8 file) computes its forward value as LiteRT's default XNNPACK
kernel does: exact integer sums (in float64: int8 products and their sums stay far below 2**53),
the kernel's own requantization (float32 multiplier, round half to even; fixed-point for add),
clamped to the output's integer range. Gradients flow as through the float op (every rounding
straight-through), so the model still trains.
"""

from __future__ import annotations

import numpy as np

from tf2torch.codegen.program import ModuleBuilder
from tf2torch.converters.registry import register_converter
from tf2torch.converters.tf_ops import operand
from tf2torch.errors import ConversionError
from tf2torch.ir import Graph, Node

INT8 = (-128, 127)

FAKE_QUANTIZE_HELPER = '''
def fake_quantize(x: torch.Tensor, scale: float, zero_point: int, qmin: int = -128, qmax: int = 127) -> torch.Tensor:
    """`x` rounded to the quantized file's integer grid, as real values (straight-through gradient)."""
    return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, qmin, qmax)
'''

QUANTIZED_WEIGHT_HELPER = '''
class FakeQuantizeChannels(nn.Module):
    """Rounds a weight to the quantized file's grid, one scale per channel along `axis`."""

    def __init__(self, channels: int, axis: int = 0, qmin: int = -128, qmax: int = 127) -> None:
        super().__init__()
        self.axis, self.qmin, self.qmax = axis, qmin, qmax
        self.register_buffer("scale", torch.ones(channels))
        self.register_buffer("zero_point", torch.zeros(channels, dtype=torch.int32))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return torch.fake_quantize_per_channel_affine(
            weight, self.scale, self.zero_point, self.axis, self.qmin, self.qmax
        )


def quantized_weight(layer: nn.Module, axis: int = 0) -> nn.Module:
    """`layer.weight` rounded to the file's grid in every forward; the float weight
    (`layer.parametrizations.weight.original`) stays the trainable parameter."""
    channels = layer.weight.shape[axis]
    parametrize.register_parametrization(layer, "weight", FakeQuantizeChannels(channels, axis))
    return layer
'''

TO_INTEGERS_HELPER = '''
def straight_through(x: torch.Tensor, rounding=torch.round) -> torch.Tensor:
    """`rounding(x)` in forward, the identity's gradient in backward (straight-through estimator)."""
    rounded = rounding(x)
    return x + (rounded - x).detach() if x.requires_grad else rounded


def to_integers(x: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """The integers q - zero_point that `x` (on the file's grid) stands for, exact in float64."""
    return straight_through(x / scale).double()
'''

REQUANTIZE_HELPER = '''
def requantize(acc: torch.Tensor, multiplier: torch.Tensor, scale: float, zero_point: int,
               qmin: int = -128, qmax: int = 127) -> torch.Tensor:
    """XNNPACK's int8 output stage: the integer accumulator (as float32) times the float32
    multiplier, rounded half to even, clamped to the output's integer range; returned as the
    real value it stands for."""
    q = straight_through(acc.float() * multiplier)
    return q.clamp(qmin - zero_point, qmax - zero_point) * scale
'''

INTEGER_HELPERS = {
    "integer_layer": '''
def integer_layer(layer: nn.Module, x: torch.Tensor, x_scale: float, scale: float, zero_point: int,
                  qmin: int = -128, qmax: int = 127) -> torch.Tensor:
    """`layer(x)` (a quantized_weight conv or linear) as TFLite's int8 kernel computes it: exact
    sums of the input's and weight's integers plus the int32 bias, requantized per channel by
    x_scale * weight_scale / scale."""
    weight_scale = layer.parametrizations.weight[0].scale
    acc_scale = torch.tensor(x_scale, dtype=torch.float32) * weight_scale
    weight = to_integers(layer.weight, weight_scale.view(-1, *[1] * (layer.weight.dim() - 1)))
    bias = None if layer.bias is None else to_integers(layer.bias.double(), acc_scale.double())
    if isinstance(layer, nn.Linear):
        acc = F.linear(to_integers(x, x_scale), weight, bias)
        return requantize(acc, acc_scale / scale, scale, zero_point, qmin, qmax)
    x = to_integers(x, x_scale)
    # Integer sums are exact in float32 while every partial sum stays below 2**24 (|x| <= 255):
    # true of depthwise kernels, whose float64 convolution torch runs one channel at a time.
    bound = 255 * weight.abs().flatten(1).sum(1) + (0 if bias is None else bias.abs())
    if layer.groups > 1 and bound.max() < 2**24:
        x, weight, bias = x.float(), weight.float(), None if bias is None else bias.float()
    acc = layer._conv_forward(x, weight, bias)
    return requantize(acc, (acc_scale / scale).view(-1, 1, 1), scale, zero_point, qmin, qmax)
''',
    "integer_add": '''
def integer_add(a: torch.Tensor, b: torch.Tensor, a_scale: float, b_scale: float, scale: float, zero_point: int,
                qmin: int = -128, qmax: int = 127) -> torch.Tensor:
    """a + b as XNNPACK's int8 add computes it (a negative b_scale subtracts): each input's
    integers times a fixed-point multiplier (its scale / scale in float32, 21 bits), summed,
    shifted right with rounding half up."""
    ratios = [(torch.tensor(s, dtype=torch.float32) / scale).item() for s in (a_scale, b_scale)]
    shift = 21 - math.frexp(max(abs(r) for r in ratios))[1]
    a_multiplier, b_multiplier = (round(r * 2**shift) for r in ratios)
    acc = to_integers(a, abs(a_scale)) * a_multiplier + to_integers(b, abs(b_scale)) * b_multiplier
    q = straight_through((acc + 2 ** (shift - 1)) / 2**shift, torch.floor).float()
    return q.clamp(qmin - zero_point, qmax - zero_point) * scale
''',
    "integer_mul": '''
def integer_mul(a: torch.Tensor, b: torch.Tensor, a_scale: float, b_scale: float, scale: float, zero_point: int,
                qmin: int = -128, qmax: int = 127) -> torch.Tensor:
    """a * b as XNNPACK's int8 multiply computes it: the product of the integers, requantized by
    a_scale * b_scale / scale."""
    multiplier = torch.tensor(a_scale, dtype=torch.float32) * b_scale / scale
    return requantize(to_integers(a, a_scale) * to_integers(b, b_scale), multiplier, scale, zero_point, qmin, qmax)
''',
    "integer_mean": '''
def integer_mean(x: torch.Tensor, dim: tuple[int, ...], keepdim: bool, x_scale: float, scale: float,
                 zero_point: int, qmin: int = -128, qmax: int = 127) -> torch.Tensor:
    """x.mean(dim) as XNNPACK's int8 mean computes it: the integer sum, requantized by
    x_scale / scale / count."""
    acc = to_integers(x, x_scale).sum(dim=dim, keepdim=keepdim)
    multiplier = torch.tensor(x_scale, dtype=torch.float32) / scale / math.prod(x.shape[d] for d in dim)
    return requantize(acc, multiplier, scale, zero_point, qmin, qmax)
''',
    "lookup_table": '''
def lookup_table(x: torch.Tensor, fn: str, scale: float, zero_point: int, qmin: int = -128, qmax: int = 127) -> torch.Tensor:
    """torch.<fn>(x) ("sigmoid" or "tanh") as XNNPACK's int8 lookup table computes it: fn of
    each input value (through float64, to float32), then fn * (1 / scale) + zero_point rounded
    half to even. The gradient is the float fn's."""
    y = getattr(torch, fn)(x)
    exact = getattr(torch, fn)(x.double()).float()
    q = torch.round(exact * (1 / torch.tensor(scale, dtype=torch.float32)) + zero_point).clamp(qmin, qmax)
    return y + ((q - zero_point) * scale - y).detach()
''',
}
# The emulated kernel (attrs["integer_kernel"]["kind"]) -> the helper that computes it.
INTEGER_KERNEL_HELPERS = {"conv": "integer_layer", "dense": "integer_layer", "add": "integer_add",
                          "sub": "integer_add", "mul": "integer_mul", "global_pool": "integer_mean",
                          "sigmoid": "lookup_table", "tanh": "lookup_table"}

# IR op -> the dimension of torch's weight that indexes output channels.
WEIGHT_CHANNEL_AXIS = {"conv": 0, "depthwise_conv": 0, "dense": 0, "conv_transpose": 1}


@register_converter("fake_quant")
def convert_fake_quant(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    fn = b.helper("fake_quantize", FAKE_QUANTIZE_HELPER)
    grid = "" if (a["qmin"], a["qmax"]) == INT8 else f", {a['qmin']}, {a['qmax']}"
    b.emit(node.outputs[0], f"{fn}({b.var(node.inputs[0])}, {a['scale']!r}, {a['zero_point']}{grid})")


def apply_weight_grids(graph: Graph, b: ModuleBuilder) -> None:
    """Parametrize the weight of every layer whose node carries attrs["weight_grid"]."""
    quantized = {node.source.name: node for node in graph.nodes if "weight_grid" in node.attrs}
    if not quantized:
        return
    for layer, sub in b.layer_submodules():
        node = quantized.pop(layer, None)
        if node is None:
            continue
        grid = node.attrs["weight_grid"]
        axis = WEIGHT_CHANNEL_AXIS.get(node.op)
        if axis is None or "weight" not in sub.state or grid["param"] != "kernel":
            raise ConversionError(f"layer {layer!r} ({node.op}): its quantized {grid['param']} cannot be kept "
                                  "quantized (no rounded-weight support for this op)")
        weight = sub.state.pop("weight")
        channels = weight.shape[axis]
        scale = np.broadcast_to(np.asarray(grid["scale"], np.float32), (channels,))
        zero_point = np.broadcast_to(np.asarray(grid["zero_point"]).astype(np.int32), (channels,))
        if (grid["qmin"], grid["qmax"]) != INT8:
            raise ConversionError(f"layer {layer!r}: {grid['qmin']}..{grid['qmax']} weights (int8 only)")
        b.helper("quantized_weight", QUANTIZED_WEIGHT_HELPER)
        b.imports.add("from torch.nn.utils import parametrize")
        sub.ctor = f"quantized_weight({sub.ctor})" if axis == 0 else f"quantized_weight({sub.ctor}, axis={axis})"
        sub.state["parametrizations.weight.original"] = weight
        sub.state["parametrizations.weight.0.scale"] = np.array(scale)
        sub.state["parametrizations.weight.0.zero_point"] = np.array(zero_point)
    if quantized:
        raise ConversionError(f"quantized kernels of {sorted(quantized)} have no module to round them in "
                              "(a tf2torch bug)")


def apply_integer_kernels(graph: Graph, b: ModuleBuilder) -> None:
    """Rewrite the statement of every node with attrs["integer_kernel"] into the helper that
    computes it as the file's int8 kernel does (see the module docstring)."""
    by_value = {id(st.values[0]): st for st in b.statements if len(st.values) == 1}
    for node in graph.nodes:
        kernel = node.attrs.get("integer_kernel")
        if kernel is None:
            continue
        st = by_value.get(id(node.outputs[0]))
        if st is None:
            raise ConversionError(f"layer {node.source.name!r}: no statement computes its int8 kernel (a tf2torch bug)")
        name = INTEGER_KERNEL_HELPERS[kernel["kind"]]
        if name != "lookup_table":
            b.helper("to_integers", TO_INTEGERS_HELPER)
        if name in ("integer_layer", "integer_mul", "integer_mean"):
            b.helper("requantize", REQUANTIZE_HELPER)
        b.helper(name, INTEGER_HELPERS[name])
        if name in ("integer_add", "integer_mean"):
            b.imports.add("import math")
        if name == "integer_layer":
            b.use_functional()
        st.expr, st.operator = f"{name}({', '.join(_kernel_arguments(node, b, st.expr))})", "="


def _kernel_arguments(node: Node, b: ModuleBuilder, expr: str) -> list[str]:
    k = node.attrs["integer_kernel"]
    scales = list(k["input_scales"])
    if k["kind"] == "sub":
        scales[1] = -scales[1]
    grid = [repr(k["scale"]), str(k["zero_point"])]
    if (k["qmin"], k["qmax"]) != INT8:
        grid += [str(k["qmin"]), str(k["qmax"])]
    if node.op == "tf_binary":  # run-time values or constant parameters, in the file's order
        inputs = [operand(node, op, b) for op in node.attrs["operands"]]
        return [*inputs, *map(repr, scales), *grid]
    inputs = [b.var(v) for v in node.inputs]
    if node.op in ("conv", "dense"):
        layer = expr.split("(", 1)[0]
        if not layer.startswith("self."):
            raise ConversionError(f"layer {node.source.name!r}: {expr!r} is not a layer call (a tf2torch bug)")
        return [layer, *inputs, repr(scales[0]), *grid]
    if node.op == "global_pool":
        dims = tuple(range(2, node.inputs[0].rank))
        return [*inputs, str(dims), str(bool(node.attrs["keepdims"])), repr(scales[0]), *grid]
    return [inputs[0], repr(k["kind"]), *grid]  # a lookup table

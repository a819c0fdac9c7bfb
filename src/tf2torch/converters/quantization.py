"""fake_quant, and kernels rounded to a quantized file's grid (TFLite --keep-quantization).

Activations: `x = fake_quantize(x, scale, zero_point)` where the file stores the tensor as
integers. Weights: the layer's `weight` is parametrized (torch.nn.utils.parametrize) so that
forward sees it rounded to the file's per-channel grid while the float tensor stays the
trainable parameter; both roundings pass gradients straight through.
"""

from __future__ import annotations

import numpy as np

from tf2torch.codegen.program import ModuleBuilder
from tf2torch.converters.registry import register_converter
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

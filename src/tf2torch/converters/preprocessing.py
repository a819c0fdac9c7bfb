"""Converters for preprocessing and keras.applications ops: normalize (Keras Normalization),
layer_scale (ConvNeXt), sample_dropout (Dropout with per-sample noise, EfficientNet)."""

from __future__ import annotations

import numpy as np

from tf2torch.codegen.literals import call
from tf2torch.codegen.program import ModuleBuilder
from tf2torch.converters.params import state_array
from tf2torch.converters.registry import register_converter
from tf2torch.ir import Node

NORMALIZATION_HELPER = '''
class Normalization(nn.Module):
    """Keras Normalization with fixed statistics: (x - mean) / max(sqrt(variance), epsilon);
    `invert` maps back: mean + x * max(sqrt(variance), epsilon)."""

    def __init__(self, shape: tuple[int, ...], invert: bool = False, epsilon: float = 1e-7) -> None:
        super().__init__()
        self.invert = invert
        self.epsilon = epsilon
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("variance", torch.ones(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        std = self.variance.sqrt().clamp_min(self.epsilon)
        if self.invert:
            return self.mean + x * std
        return (x - self.mean) / std
'''


def _torch_layout(array: np.ndarray, node: Node) -> np.ndarray:
    """A source-layout broadcast constant, permuted like the tensor it meets, with leading
    size-1 dims dropped (broadcasting puts them back)."""
    perm = node.inputs[0].perm
    if perm is not None:
        array = np.transpose(array, perm)
    while array.ndim and array.shape[0] == 1:
        array = array[0]
    return array


@register_converter("normalize")
def convert_normalize(node: Node, b: ModuleBuilder) -> None:
    cls = b.helper("Normalization", NORMALIZATION_HELPER)
    mean = _torch_layout(node.params["mean"].array, node)
    variance = _torch_layout(node.params["variance"].array, node)
    state = {"mean": state_array(mean), "variance": state_array(variance)}
    kwargs = {"invert": True} if node.attrs["invert"] else {}
    if node.attrs["epsilon"] != 1e-7:
        kwargs["epsilon"] = node.attrs["epsilon"]
    mod = b.submodule(node, call(cls, tuple(mean.shape), **kwargs), state)
    x = b.var(node.inputs[0])
    if node.inputs[0].spec.dtype != "float32":
        x = f"{x}.float()"
    b.emit(node.outputs[0], f"{mod}({x})")


LAYER_SCALE_HELPER = '''
class LayerScale(nn.Module):
    """keras.applications' LayerScale (ConvNeXt): scales each channel by a learned gamma."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma
'''


@register_converter("layer_scale")
def convert_layer_scale(node: Node, b: ModuleBuilder) -> None:
    x = node.inputs[0]
    cls = b.helper("LayerScale", LAYER_SCALE_HELPER)
    # gamma broadcasts along the channel axis wherever the layout put it (C,) or (C, 1, 1).
    shape = [1] * (x.rank - 1 - x.torch_axis(-1) + 1)
    shape[0] = node.attrs["channels"]
    gamma = node.params["gamma"]
    frozen = () if gamma.trainable else ("*",)
    mod = b.submodule(node, call(cls, tuple(shape)), {"gamma": state_array(gamma.array.reshape(shape))}, frozen=frozen)
    b.emit(node.outputs[0], f"{mod}({b.var(x)})")


SAMPLE_DROPOUT_HELPER = '''
class SampleDropout(nn.Module):
    """Keras Dropout with noise_shape=(None, 1, ..., 1) (stochastic depth): in training, each
    sample is zeroed with probability p, the others scaled by 1 / (1 - p); identity in eval."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        keep = torch.rand(shape, dtype=x.dtype, device=x.device) >= self.p
        return x * keep / (1.0 - self.p)
'''


@register_converter("sample_dropout")
def convert_sample_dropout(node: Node, b: ModuleBuilder) -> None:
    cls = b.helper("SampleDropout", SAMPLE_DROPOUT_HELPER)
    mod = b.submodule(node, call(cls, node.attrs["rate"]), {})
    b.emit(node.outputs[0], f"{mod}({b.var(node.inputs[0])})")

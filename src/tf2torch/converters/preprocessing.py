"""Converters for preprocessing and keras.applications ops: normalize (Keras Normalization),
resize (Resizing, CenterCrop), auto_contrast,
layer_scale (ConvNeXt), sample_dropout (Dropout with per-sample noise, EfficientNet)."""

from __future__ import annotations

import numpy as np

from tf2torch.codegen.literals import call
from tf2torch.codegen.program import ModuleBuilder
from tf2torch.converters.params import state_array
from tf2torch.converters.registry import register_converter
from tf2torch.converters.resize_weights import resize_matrix
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


MATRIX_RESIZE_HELPER = '''
class MatrixResize(nn.Module):
    """TensorFlow's image resize for a fixed input size, as `rows @ image @ cols.T`: the
    interpolation weights of TF's kernel, precomputed (F.interpolate weighs differently)."""

    def __init__(self, in_size: tuple[int, int], out_size: tuple[int, int]) -> None:
        super().__init__()
        self.register_buffer("rows", torch.zeros(out_size[0], in_size[0]))
        self.register_buffer("cols", torch.zeros(out_size[1], in_size[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rows @ x @ self.cols.T
'''

NEAREST_RESIZE_HELPER = '''
class NearestResize(nn.Module):
    """TensorFlow's nearest-neighbour resize for a fixed input size: the source row of each
    output row and the source column of each output column, as TF picks them."""

    def __init__(self, out_size: tuple[int, int]) -> None:
        super().__init__()
        self.register_buffer("rows", torch.zeros(out_size[0], dtype=torch.long))
        self.register_buffer("cols", torch.zeros(out_size[1], dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(2, self.rows).index_select(3, self.cols)
'''


@register_converter("resize")
def convert_resize(node: Node, b: ModuleBuilder) -> None:
    """Keras Resizing / CenterCrop: an optional crop or constant pad, then tf.image.resize.
    Bilinear without antialiasing is F.interpolate (the same half-pixel formula); every
    other method uses TF's own weights (converters/resize_weights.py)."""
    a = node.attrs
    x = b.var(node.inputs[0])
    if a["crop"] is not None:
        top, left, height, width = a["crop"]
        x = b.temp("cropped", f"{x}[:, :, {top}:{top + height}, {left}:{left + width}]",
                   comment="centered window with the target's aspect ratio")
    elif a["pad"] is not None:
        rows, cols, fill = a["pad"]
        F = b.use_functional()
        fill_arg = f", value={fill!r}" if fill else ""
        x = b.temp("padded", f"{F}.pad({x}, ({cols}, {cols}, {rows}, {rows}){fill_arg})",
                   comment="padded to the target's aspect ratio")
    size, in_size = tuple(a["size"]), tuple(a["in_size"])
    if a["method"] == "bilinear" and not a["antialias"]:
        F = b.use_functional()
        b.emit(node.outputs[0], f'{F}.interpolate({x}, size={size}, mode="bilinear")')
        return
    if a["method"] == "nearest":
        cls = b.helper("NearestResize", NEAREST_RESIZE_HELPER)
        state = {"rows": resize_matrix("nearest", False, in_size[0], size[0]).argmax(1),
                 "cols": resize_matrix("nearest", False, in_size[1], size[1]).argmax(1)}
        mod = b.submodule(node, call(cls, size), state)
    else:
        cls = b.helper("MatrixResize", MATRIX_RESIZE_HELPER)
        state = {"rows": resize_matrix(a["method"], a["antialias"], in_size[0], size[0]),
                 "cols": resize_matrix(a["method"], a["antialias"], in_size[1], size[1])}
        antialias = ", antialiased" if a["antialias"] else ""
        comment = f"tf.image.resize(method={a['method']!r}{antialias}) as interpolation matrices"
        mod = b.submodule(node, call(cls, in_size, size), state, comment=comment)
    b.emit(node.outputs[0], f"{mod}({x})")


AUTO_CONTRAST_HELPER = '''
class AutoContrast(nn.Module):
    """Keras AutoContrast: each channel of each image stretched linearly so that its minimum
    and maximum span the value range (computed on Keras' 0-255 scale); a constant channel
    (0 / 0) keeps its input values."""

    def __init__(self, value_range: tuple[float, float] = (0.0, 255.0)) -> None:
        super().__init__()
        self.low, self.high = value_range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rescale = (self.low, self.high) != (0.0, 255.0)
        y = (x - self.low) / (self.high - self.low) * 255.0 if rescale else x
        low = y.amin(dim=(2, 3), keepdim=True)
        scale = 255.0 / (y.amax(dim=(2, 3), keepdim=True) - low)
        y = (y * scale + -low * scale).clamp(0.0, 255.0)
        if rescale:
            y = y / 255.0 * (self.high - self.low) + self.low
        return torch.where(y.isnan(), x, y)
'''


@register_converter("auto_contrast")
def convert_auto_contrast(node: Node, b: ModuleBuilder) -> None:
    value_range = tuple(node.attrs["value_range"])
    cls = b.helper("AutoContrast", AUTO_CONTRAST_HELPER)
    ctor = call(cls, value_range) if value_range != (0.0, 255.0) else call(cls)
    mod = b.submodule(node, ctor, {})
    b.emit(node.outputs[0], f"{mod}({b.var(node.inputs[0])})")

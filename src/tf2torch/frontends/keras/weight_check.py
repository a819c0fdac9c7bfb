"""Every layer's weights are checked against its config before its importer sees them.

For all layers: the data type (complex, string and object weights are refused; float16,
bfloat16 and float64 are converted to float32 with a warning; integer weights are refused
where a float parameter is made, in LayerContext.param) and NaN/Inf (a warning).

Per layer class, an expected-shapes rule (registered here, explicitly, like importers):
the shapes Keras' `build()` creates from the config and the input shape, in variable order.
A mismatch in count or shape is an error naming the layer and both shapes. A rule returns
None when it cannot tell (e.g. a quantized layer), and None dimensions match anything.

Layers whose .keras variables sit in sub-objects (recurrent cells, attention projections)
have no flat weights to check before their importer runs: the importer gathers them and
calls `check_weights` with the shapes the functions at the end of this module compute.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from tf2torch.errors import BadModelFile

if TYPE_CHECKING:
    from tf2torch.frontends.keras.context import LayerContext

Shape = tuple[int | None, ...]
ShapeRule = Callable[[dict, tuple], "list[Shape] | None"]

WEIGHT_SHAPES: dict[str, ShapeRule] = {}

CONVERTED_FLOATS = {"float16", "bfloat16", "float64"}


def register_weight_shapes(*class_names: str) -> Callable[[ShapeRule], ShapeRule]:
    def decorate(fn: ShapeRule) -> ShapeRule:
        for class_name in class_names:
            if class_name in WEIGHT_SHAPES:
                raise ValueError(f"Keras layer {class_name!r} has two weight-shape rules")
            WEIGHT_SHAPES[class_name] = fn
        return fn

    return decorate


def check_layer_weights(ctx: LayerContext) -> None:
    """Validate (and where needed convert) `ctx`'s weights in place."""
    label = _label(ctx)
    ctx._weights = [_checked_dtype(w, i, label) for i, w in enumerate(ctx._weights)]
    rule = WEIGHT_SHAPES.get(ctx.class_name)
    if rule is None or not ctx.inputs or _quantized(ctx.config):
        return
    try:
        expected = rule(ctx.config, tuple(ctx.inputs[0].spec.shape))
    except KeyError as exc:
        # A key Keras' constructor requires (importers may read e.g. filters off the kernel,
        # so without this check a config Keras cannot load would convert).
        raise BadModelFile(f"{label}: the config has no {exc.args[0]!r}, which the layer requires") from None
    except (TypeError, ValueError):
        return  # a value config_check.py does not know: the importer judges it
    if expected is not None:
        _check_shapes(ctx._weights, expected, label)


def check_weights(ctx: LayerContext, weights: list[np.ndarray], expected: list[Shape], part: str = "") -> list[np.ndarray]:
    """`weights` gathered by an importer (e.g. from sub-objects), checked like a layer's own
    against `expected`; `part` names where they belong ("backward layer"). Returns them with
    other float widths converted to float32."""
    label = _label(ctx) + (f", {part}" if part else "")
    checked = [_checked_dtype(w, i, label) for i, w in enumerate(weights)]
    if not _quantized(ctx.config):
        _check_shapes(checked, expected, label)
    return checked


def _label(ctx: LayerContext) -> str:
    return f"{ctx.file}: layer {ctx.name!r} ({ctx.class_name})"


def _check_shapes(weights: list[np.ndarray], expected: list[Shape], label: str) -> None:
    for i, weight in enumerate(weights):
        if weight.dtype.kind != "f":
            raise BadModelFile(f"{label}: weight #{i} is stored as {weight.dtype}; the layer's weights are floats")
    actual = [tuple(w.shape) for w in weights]
    if len(actual) != len(expected):
        raise BadModelFile(
            f"{label}: the file holds {len(actual)} weights {_shapes(actual)}, its config implies "
            f"{len(expected)} {_shapes(expected)}"
        )
    for i, (have, want) in enumerate(zip(actual, expected)):
        if len(have) != len(want) or any(w is not None and h != w for h, w in zip(have, want)):
            raise BadModelFile(
                f"{label}: weight #{i} has shape {_shape(have)}, its config implies {_shape(want)}"
            )


def _checked_dtype(weight: Any, index: int, label: str) -> np.ndarray:
    array = np.asarray(weight)
    kind = array.dtype.kind
    if kind not in "biuf" and array.dtype.name != "bfloat16":
        raise BadModelFile(f"{label}: weight #{index} has data type {array.dtype}, not a number type")
    if array.dtype.name in CONVERTED_FLOATS:
        warnings.warn(f"{label}: weight #{index} is stored as {array.dtype.name}; converted to float32",
                      stacklevel=2)
        array = array.astype(np.float32)
    if kind == "f" and array.size and not np.isfinite(array).all():
        warnings.warn(f"{label}: weight #{index} {_shape(array.shape)} contains NaN or infinite values",
                      stacklevel=2)
    return array


def _quantized(config: dict) -> bool:
    policy = config.get("dtype")
    name = policy.get("config", {}).get("name", "") if isinstance(policy, dict) else str(policy or "")
    return any(q in str(name) for q in ("int8", "int4", "float8"))


def _shape(shape: Shape) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _shapes(shapes: list[Shape]) -> str:
    return "[" + ", ".join(_shape(s) for s in shapes) + "]"


def _tuple(value: Any, rank: int) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value) if len(value) == rank else tuple(int(value[0]) for _ in range(rank))
    return tuple(int(value) for _ in range(rank))


def _rank(class_name_rank: str) -> int:
    return int(next(ch for ch in class_name_rank if ch.isdigit()))


def _channels(config: dict, input_shape: tuple) -> int | None:
    first = (config.get("data_format") or "channels_last") == "channels_first"
    return input_shape[1] if first else input_shape[-1]


def _bias(config: dict, size: int | None) -> list[Shape]:
    return [(size,)] if config.get("use_bias", True) else []


@register_weight_shapes("Dense")
def dense_shapes(config: dict, input_shape: tuple) -> list[Shape]:
    units = int(config["units"])
    return [(input_shape[-1], units)] + _bias(config, units)


def _conv_rule(rank: int, transpose: bool) -> ShapeRule:
    def shapes(config: dict, input_shape: tuple) -> list[Shape]:
        filters = int(config["filters"])
        kernel = _tuple(config["kernel_size"], rank)
        channels = _channels(config, input_shape)
        groups = int(config.get("groups", 1) or 1)
        in_per_group = None if channels is None else channels // groups
        last = (filters, channels) if transpose else (in_per_group, filters)
        return [kernel + last] + _bias(config, filters)

    return shapes


for _r in (1, 2, 3):
    register_weight_shapes(f"Conv{_r}D")(_conv_rule(_r, transpose=False))
    register_weight_shapes(f"Conv{_r}DTranspose")(_conv_rule(_r, transpose=True))


def _depthwise_rule(rank: int) -> ShapeRule:
    def shapes(config: dict, input_shape: tuple) -> list[Shape]:
        kernel = _tuple(config["kernel_size"], rank)
        channels = _channels(config, input_shape)
        multiplier = int(config.get("depth_multiplier", 1))
        out = None if channels is None else channels * multiplier
        return [kernel + (channels, multiplier)] + _bias(config, out)

    return shapes


def _separable_rule(rank: int) -> ShapeRule:
    def shapes(config: dict, input_shape: tuple) -> list[Shape]:
        kernel = _tuple(config["kernel_size"], rank)
        channels = _channels(config, input_shape)
        multiplier = int(config.get("depth_multiplier", 1))
        filters = int(config["filters"])
        mid = None if channels is None else channels * multiplier
        return [kernel + (channels, multiplier), (1,) * rank + (mid, filters)] + _bias(config, filters)

    return shapes


for _r in (1, 2):
    register_weight_shapes(f"DepthwiseConv{_r}D")(_depthwise_rule(_r))
    register_weight_shapes(f"SeparableConv{_r}D")(_separable_rule(_r))


@register_weight_shapes("BatchNormalization")
def batch_norm_shapes(config: dict, input_shape: tuple) -> list[Shape] | None:
    if config.get("renorm"):
        return None  # extra renorm variables; the importer reports renorm as unsupported
    axes = config.get("axis", -1)
    axes = axes if isinstance(axes, (list, tuple)) else [axes]
    rank = len(input_shape)
    if not all(isinstance(a, int) and -rank <= a < rank for a in axes):
        return None  # the importer reports an axis it cannot use
    shape = tuple(input_shape[a] for a in axes)
    count = int(bool(config.get("scale", True))) + int(bool(config.get("center", True))) + 2
    return [shape] * count


@register_weight_shapes("Embedding")
def embedding_shapes(config: dict, input_shape: tuple) -> list[Shape]:
    return [(int(config["input_dim"]), int(config["output_dim"]))]


@register_weight_shapes("LayerNormalization")
def layer_norm_shapes(config: dict, input_shape: tuple) -> list[Shape] | None:
    if config.get("rms_scaling"):
        return None  # Keras 3's RMS variant: the importer checks its single scale
    axes = config.get("axis", -1)
    axes = axes if isinstance(axes, (list, tuple)) else [axes]
    rank = len(input_shape)
    if not axes or not all(isinstance(a, int) and -rank <= a < rank for a in axes):
        return None
    shape = tuple(input_shape[a] for a in axes)  # in the config's order, as Keras builds it
    return [shape] * (int(bool(config.get("scale", True))) + int(bool(config.get("center", True))))


# -- rules called by importers that gather their weights -----------------------------------

RECURRENT_GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}


def recurrent_cell_shapes(kind: str, units: int, input_size: int | None, use_bias: bool, reset_after: bool) -> list[Shape]:
    """kernel, recurrent_kernel, bias of a SimpleRNN/LSTM/GRU cell. A reset_after GRU keeps
    separate input and recurrent biases: a (2, 3 * units) bias."""
    width = RECURRENT_GATES[kind] * units
    shapes: list[Shape] = [(input_size, width), (units, width)]
    if use_bias:
        shapes.append((2, width) if kind == "gru" and reset_after else (width,))
    return shapes


def conv_lstm_shapes(kernel_size: tuple[int, ...], channels: int | None, filters: int, use_bias: bool) -> list[Shape]:
    """kernel, recurrent_kernel, bias of ConvLSTM1D/2D/3D (channels last)."""
    width = 4 * filters
    return [kernel_size + (channels, width), kernel_size + (filters, width)] + ([(width,)] if use_bias else [])


def projection_shapes(kernel_in: tuple[int | None, ...], out_dims: tuple[int | None, ...], use_bias: bool) -> list[Shape]:
    """An attention projection (EinsumDense): kernel kernel_in + out_dims, bias out_dims;
    e.g. MultiHeadAttention's query (features, num_heads, key_dim) and (num_heads, key_dim)."""
    return [kernel_in + out_dims] + ([out_dims] if use_bias else [])


@register_weight_shapes("Attention")
def dot_attention_shapes(config: dict, input_shape: tuple) -> list[Shape]:
    # Scalars: the learned scale (use_scale) and the concat score weight (score_mode="concat").
    return [()] * (int(bool(config.get("use_scale", False))) + int(config.get("score_mode", "dot") == "concat"))


@register_weight_shapes("AdditiveAttention")
def additive_attention_shapes(config: dict, input_shape: tuple) -> list[Shape]:
    return [(input_shape[-1],)] if config.get("use_scale", True) else []

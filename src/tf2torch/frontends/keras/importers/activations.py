"""Activation names and activation layers (ReLU, LeakyReLU, PReLU, ELU, Softmax...)."""

from __future__ import annotations

from typing import Any

from tf2torch.frontends.keras.context import LayerContext
from tf2torch.frontends.keras.masking import call_mask, softmax_mask_attrs
from tf2torch.frontends.keras.registry import register_importer
from tf2torch.ir import TensorSpec, Value

# Keras activation name -> (IR activation fn, its fixed attributes). Function defaults here
# are those of keras.activations.* (e.g. leaky_relu 0.2), not of the layers.
ACTIVATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "relu": ("relu", {}),
    "relu6": ("relu6", {}),
    "sigmoid": ("sigmoid", {}),
    "tanh": ("tanh", {}),
    "softplus": ("softplus", {}),
    "softsign": ("softsign", {}),
    "selu": ("selu", {}),
    "elu": ("elu", {"alpha": 1.0}),
    "celu": ("celu", {"alpha": 1.0}),
    "exponential": ("exp", {}),
    "swish": ("silu", {}),
    "silu": ("silu", {}),
    "gelu": ("gelu", {"approximate": False}),
    "hard_silu": ("hard_silu", {}),
    "hard_swish": ("hard_silu", {}),
    "mish": ("mish", {}),
    "leaky_relu": ("leaky_relu", {"negative_slope": 0.2}),
    "hard_tanh": ("hard_tanh", {}),
    "hard_shrink": ("hard_shrink", {"threshold": 0.5}),
    "soft_shrink": ("soft_shrink", {"threshold": 0.5}),
    "tanh_shrink": ("tanh_shrink", {}),
    "log_sigmoid": ("log_sigmoid", {}),
    "sparse_plus": ("sparse_plus", {}),
    "sparse_sigmoid": ("sparse_sigmoid", {}),
    "squareplus": ("squareplus", {"b": 4.0}),
}
AXIS_ACTIVATIONS = {"softmax", "log_softmax", "glu", "sparsemax"}


def activation_name(spec: Any) -> str:
    """Keras stores an activation as a name, or (Keras 3) as a serialized function dict."""
    if spec is None:
        return "linear"
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict):
        config = spec.get("config")
        if isinstance(config, str):
            return config
        if isinstance(config, dict) and "name" in config:
            return str(config["name"])
        return str(spec.get("class_name", "?"))
    return str(spec)


def apply_activation(ctx: LayerContext, value: Value, spec: Any) -> Value:
    name = activation_name(spec)
    if name == "linear":
        return value
    if name == "hard_sigmoid":
        # Keras 2: clip(0.2x + 0.5); Keras 3: relu6(x + 3) / 6 (= torch hardsigmoid).
        fn = "hard_sigmoid_k2" if ctx.keras_major == 2 else "hard_sigmoid"
        return ctx.add("activation", [value], [value.spec], {"fn": fn}).outputs[0]
    if name in ("softmax", "log_softmax"):
        return ctx.add("softmax", [value], [value.spec], {"axis": -1, "log": name == "log_softmax"}).outputs[0]
    if name == "sparsemax":
        attrs = {"axis": -1, "log": False, "sparse": True}
        return ctx.add("softmax", [value], [value.spec], attrs).outputs[0]
    if name in ACTIVATIONS:
        fn, attrs = ACTIVATIONS[name]
        return ctx.add("activation", [value], [value.spec], {"fn": fn, **attrs}).outputs[0]
    if name == "glu":
        shape = value.spec.shape[:-1] + (None if value.spec.shape[-1] is None else value.spec.shape[-1] // 2,)
        return ctx.add("activation", [value], [TensorSpec(shape)], {"fn": "glu"}).outputs[0]
    raise ctx.unsupported(f"activation {name!r}")


@register_importer("Activation")
def import_activation(ctx: LayerContext) -> list[Value]:
    return [apply_activation(ctx, ctx.inputs[0], ctx.config.get("activation"))]


@register_importer("ReLU")
def import_relu(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    max_value = ctx.config.get("max_value")
    slope = float(ctx.config.get("negative_slope") or 0.0)
    threshold = float(ctx.config.get("threshold") or 0.0)
    attrs = {"fn": "relu"}
    if max_value is not None or slope or threshold:
        attrs = {"fn": "relu_general", "max_value": None if max_value is None else float(max_value),
                 "negative_slope": slope, "threshold": threshold}
        if max_value is not None and float(max_value) == 6.0 and not slope and not threshold:
            attrs = {"fn": "relu6"}
    return ctx.add("activation", [x], [x.spec], attrs).outputs


@register_importer("LeakyReLU")
def import_leaky_relu(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    slope = ctx.config.get("negative_slope", ctx.config.get("alpha", 0.3))
    return ctx.add("activation", [x], [x.spec], {"fn": "leaky_relu", "negative_slope": float(slope)}).outputs


@register_importer("ELU")
def import_elu(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    return ctx.add("activation", [x], [x.spec], {"fn": "elu", "alpha": float(ctx.config.get("alpha", 1.0))}).outputs


@register_importer("ThresholdedReLU")
def import_thresholded_relu(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    theta = float(ctx.config.get("theta", 1.0))
    return ctx.add("activation", [x], [x.spec], {"fn": "threshold", "threshold": theta}).outputs


@register_importer("Softmax")
def import_softmax(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    axis = ctx.config.get("axis", -1)
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            raise ctx.unsupported("softmax over several axes")
        axis = axis[0]
    mask = call_mask(ctx)
    if mask is not None:
        return ctx.add("masked_softmax", [x, mask], [x.spec], {"axis": int(axis), **softmax_mask_attrs(ctx)}).outputs
    return ctx.add("softmax", [x], [x.spec], {"axis": int(axis), "log": False}).outputs


@register_importer("PReLU")
def import_prelu(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    (alpha,) = ctx.weights(1)
    # alpha has shape input_shape[1:] with 1 on shared axes; broadcast against the input.
    return ctx.add("prelu", [x], [x.spec], params={"alpha": ctx.param(alpha, "per_element")}).outputs

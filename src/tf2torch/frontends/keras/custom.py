"""User-registered converters for custom Keras layers.

    @tf2torch.register_layer("SinLayer")
    def convert_sin(config: dict, weights: list[np.ndarray]) -> tf2torch.CustomLayer:
        return tf2torch.CustomLayer(SinModule)

The generated model.py imports `SinModule` from its module path and builds it with `kwargs`.
The module receives and returns tensors in the Keras (channels-last) layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tf2torch.errors import ConversionError, UnsupportedFeature
from tf2torch.frontends.keras.archive import WeightReader
from tf2torch.frontends.keras.context import LayerContext
from tf2torch.frontends.keras.user_code import bare_class_name, current_session
from tf2torch.ir import Param, TensorSpec, Value


@dataclass
class CustomLayer:
    """What a user converter returns: a torch module class, its kwargs, its state_dict."""

    module_class: type
    kwargs: dict[str, Any] = field(default_factory=dict)
    state_dict: dict[str, np.ndarray] = field(default_factory=dict)


UserConverter = Callable[[dict, list[np.ndarray]], CustomLayer]
USER_LAYERS: dict[str, UserConverter] = {}


def register_layer(class_name: str, *, replace: bool = False) -> Callable[[UserConverter], UserConverter]:
    """Register `fn(config, weights) -> CustomLayer` for the Keras layer class `class_name`."""

    def decorate(fn: UserConverter) -> UserConverter:
        if class_name in USER_LAYERS and not replace:
            raise ValueError(f"a converter for layer class {class_name!r} is already registered; pass replace=True")
        USER_LAYERS[class_name] = fn
        return fn

    return decorate


def unregister_layer(class_name: str) -> None:
    USER_LAYERS.pop(class_name, None)


def user_layer_weights(ctx: LayerContext, reader: WeightReader, layer_name: str) -> list[np.ndarray]:
    """The layer's weights with its sub-layers', in `layer.get_weights()` order."""
    weights, certain = reader.read_with_sub_layers(layer_name)
    if certain:
        return weights
    session = current_session()
    if session.opted_in:
        # The archive does not record the creation order of sub-layers: ask Keras.
        layer = session.live_layer(ctx.file, ctx.keras_major, ctx.name)
        return [np.asarray(w) for w in layer.get_weights()]
    raise UnsupportedFeature(
        f"{ctx.file}: layer {ctx.name!r} ({ctx.class_name}) keeps its variables in several sub-layers, "
        "whose order (that of layer.get_weights()) the .keras archive does not record. Pass the code "
        "defining the class (--custom-code my_layers.py, or convert(..., custom_objects={...})) so "
        "that Keras can tell it."
    )


def import_user_layer(ctx: LayerContext) -> list[Value]:
    import torch

    custom = USER_LAYERS[bare_class_name(ctx.class_name)](ctx.config, ctx.weights())
    cls = custom.module_class
    if not isinstance(cls, type) or cls.__module__ in ("__main__", "builtins"):
        raise ConversionError(
            f"{ctx.file}: the converter for {ctx.class_name!r} returned {cls!r}, whose class cannot be "
            "imported by the generated model.py; define it in an importable module."
        )
    module = cls(**custom.kwargs)
    if custom.state_dict:
        module.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in custom.state_dict.items()}, strict=True)
    # Shapes downstream need this layer's output shape: run the module once on zeros.
    probes = [torch.zeros([2 if d is None else d for d in v.spec.shape], dtype=getattr(torch, v.spec.dtype)) for v in ctx.inputs]
    with torch.no_grad():
        result = module(*probes)
    results = list(result) if isinstance(result, (tuple, list)) else [result]
    specs = []
    for tensor in results:
        shape = tuple(None if (i == 0 and ctx.inputs[0].spec.shape[0] is None) else int(d) for i, d in enumerate(tensor.shape))
        specs.append(TensorSpec(shape, str(tensor.dtype).removeprefix("torch.")))
    params = {k: Param(np.asarray(v), "torch", True) for k, v in custom.state_dict.items()}
    node = ctx.add("custom", ctx.inputs, specs, {"module_class": cls, "kwargs": dict(custom.kwargs)}, params)
    return node.outputs

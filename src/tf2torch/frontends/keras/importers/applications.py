"""Importers for the layers that keras.applications defines itself.

- LayerScale (ConvNeXt, keras.src.applications.convnext): `x * gamma`, gamma of shape (C,).
- CustomScaleLayer (InceptionResNetV2): `inputs[0] + inputs[1] * scale`.
"""

from __future__ import annotations

from tf2torch.frontends.keras.context import LayerContext
from tf2torch.frontends.keras.registry import register_importer
from tf2torch.ir import TensorSpec, Value


@register_importer("LayerScale")
def import_layer_scale(ctx: LayerContext) -> list[Value]:
    x = ctx.inputs[0]
    (gamma,) = ctx.weights(1)
    channels = x.spec.shape[-1]
    if gamma.shape != (channels,):
        raise ctx.unsupported(f"a LayerScale gamma of shape {gamma.shape} for input {x.spec.shape}")
    params = {"gamma": ctx.param(gamma, "C")}
    return ctx.add("layer_scale", [x], [TensorSpec(x.spec.shape)], {"channels": int(channels)}, params).outputs


@register_importer("CustomScaleLayer")
def import_custom_scale_layer(ctx: LayerContext) -> list[Value]:
    if len(ctx.inputs) != 2:
        raise ctx.unsupported(f"a CustomScaleLayer with {len(ctx.inputs)} inputs (expected 2)")
    shortcut, residual = ctx.inputs
    scale = float(ctx.config["scale"])
    scaled = ctx.add("scalar_arithmetic", [residual], [residual.spec], {"value": scale, "symbol": "*", "reverse": False})
    return ctx.add("add", [shortcut, scaled.outputs[0]], [TensorSpec(shortcut.spec.shape)]).outputs

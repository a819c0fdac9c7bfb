"""Errors raised by tf2torch. Each one carries a message a user can act on."""

from __future__ import annotations

from dataclasses import dataclass


class ConversionError(Exception):
    """Base class: a conversion could not be done. The CLI maps it to exit status 2."""


class BadModelFile(ConversionError):
    """The source file is missing, unreadable, or not a model we understand."""


class UnsupportedFeature(ConversionError):
    """A layer is supported but one of its options is not."""


class InvalidGraph(ConversionError):
    """The model graph is inconsistent (e.g. a layer refers to an unknown input)."""


class VerificationUnavailable(ConversionError):
    """Verification needs Keras/TensorFlow (or the original model) and it is not available."""


@dataclass(frozen=True)
class UnsupportedLayer:
    name: str
    class_name: str
    reason: str = "no converter registered"


class UnsupportedLayers(ConversionError):
    """One or more layers have no converter. Lists all of them, not only the first."""

    def __init__(self, source: str, layers: list[UnsupportedLayer]) -> None:
        self.source = source
        self.layers = layers
        lines = [f"{source}: {len(layers)} layer(s) cannot be converted:"]
        for layer in layers:
            lines.append(f"  - {layer.name} ({layer.class_name}): {layer.reason}")
        if any(layer.reason == UnsupportedLayer.reason for layer in layers):
            lines.append(
                "Register a converter for a custom layer with @tf2torch.register_layer(\"ClassName\"), "
                "a function (config, weights) -> tf2torch.CustomLayer(YourModule, kwargs, state_dict); "
                "see the README section 'Custom layers'."
            )
        super().__init__("\n".join(lines))

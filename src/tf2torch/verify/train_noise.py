"""Training-mode verification with the noise switched off on both sides.

Dropout masks and Gaussian noise come from each framework's own random generator, so in
train() no output after such a layer can match Keras value for value, and a correct
conversion would be reported FAILED. Setting their rates to zero on both copies (the
verification's own: the user's model and module are never touched) leaves everything else
that differs in training — BatchNorm batch statistics, recurrent cell loops, masks — to be
compared exactly.
"""

from __future__ import annotations

from typing import Any

from torch import nn

# Keras classes whose training noise is one attribute (subclasses match by their bases' names).
_KERAS_NOISE_RATES = {
    "Dropout": "rate", "SpatialDropout1D": "rate", "SpatialDropout2D": "rate", "SpatialDropout3D": "rate",
    "GaussianDropout": "rate", "AlphaDropout": "rate", "GaussianNoise": "stddev",
}
# Generated helper modules' rate attributes (converters/regularization.py, preprocessing.py,
# recurrent.py, recurrent_dropout.py, attention.py) and nn.RNNBase's between-layer dropout.
_TORCH_NOISE_RATES = ("p", "rate", "stddev", "dropout", "input_dropout", "recurrent_dropout")


def silence_keras_noise(model: Any) -> list[str]:
    """Zero the rates of every dropout / noise layer and RNN cell in `model` (a verification
    clone); the names of the layers changed."""
    silenced = []
    for layer in _all_layers(model):
        bases = {cls.__name__ for cls in type(layer).__mro__}
        attrs = [attr for name, attr in _KERAS_NOISE_RATES.items() if name in bases]
        if hasattr(layer, "recurrent_dropout"):  # RNN cells (the layer reads its cell's rates)
            attrs = ["dropout", "recurrent_dropout"]
        changed = False
        for attr in attrs:
            value = layer.__dict__.get(attr)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                setattr(layer, attr, 0.0)
                changed = True
        name = getattr(layer, "path", None) or layer.name  # Keras 3's path tells apart sub-layers
        if changed and name not in silenced:
            silenced.append(name)
    return silenced


def silence_torch_noise(module: nn.Module) -> None:
    """Zero the dropout / noise rates of every submodule of `module` (a verification copy)."""
    for sub in module.modules():
        for attr in _TORCH_NOISE_RATES:
            value = sub.__dict__.get(attr)
            if isinstance(value, float) and value > 0 and _is_noise(sub, attr):
                setattr(sub, attr, 0.0)


def _is_noise(module: nn.Module, attr: str) -> bool:
    if attr == "p":
        return isinstance(module, nn.modules.dropout._DropoutNd) or type(module).__name__ == "SampleDropout"
    if attr in ("rate", "stddev"):
        return type(module).__name__ in ("GaussianDropout", "GaussianNoise")
    return True


def _all_layers(model: Any) -> list[Any]:
    """Every layer inside `model`, nested models and sub-layers included (Keras 3 and tf.keras)."""
    flatten = getattr(model, "_flatten_layers", None)
    if flatten is not None:
        return list(flatten(include_self=False, recursive=True))
    return list(getattr(model, "layers", []))

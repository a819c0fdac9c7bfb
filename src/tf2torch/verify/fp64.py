"""The source Keras model rebuilt with float64 variables and computation, same weights.

Used by `--fp64`: when the cumulative error crosses the bound, both sides run once more in
float64; an error that vanishes there was fp32 rounding, one that stays is a bug.
"""

from __future__ import annotations

from typing import Any

from tf2torch.errors import VerificationUnavailable


def keras_float64(model: Any) -> Any:
    """A clone of `model` whose every layer computes in float64 (weights cast)."""
    keras = _keras_of(model)

    def clone_layer(layer: Any) -> Any:
        config = layer.get_config()
        config["dtype"] = "float64"
        return type(layer).from_config(config)

    try:
        clone = keras.models.clone_model(model, clone_function=clone_layer)
        clone.set_weights(model.get_weights())
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise VerificationUnavailable(f"--fp64: {model.name} cannot be rebuilt in float64 ({exc})") from exc
    for layer in clone.layers:
        if type(layer).__name__ == "Normalization" and hasattr(layer, "finalize_state"):
            layer.finalize_state()  # its mean / variance are derived from the adapted weights
    return clone


def _keras_of(model: Any) -> Any:
    if type(model).__module__.startswith("tf_keras"):
        import tf_keras

        return tf_keras
    import keras

    return keras

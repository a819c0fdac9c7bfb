"""Why a layer class cannot be converted, told apart for built-in and custom layers."""

from __future__ import annotations

# Module prefixes of the layer classes Keras itself ships (Keras 3 and tf.keras 2 configs).
BUILTIN_MODULES = ("keras.layers", "keras.src.layers", "tf_keras.layers", "tf_keras.src.layers", "keras.src.legacy")

LAMBDA_REASON = (
    "a Lambda layer holds Python bytecode, which tf2torch does not run by default. If you trust the "
    "file, convert with --allow-lambda (API: allow_lambda=True): it runs code from the file to trace the "
    "function (needs TensorFlow), and the result is verified against Keras"
)


def is_builtin_layer(raw: dict) -> bool:
    """True if the config entry names a layer class that Keras ships (not a user's class)."""
    module = str(raw.get("module") or "")
    registered = raw.get("registered_name")
    if registered and ">" in str(registered):
        return False  # registered with register_keras_serializable(package=...): a custom class
    return module.startswith(BUILTIN_MODULES)


def builtin_reason(class_name: str) -> str:
    return (
        "a built-in Keras layer, not supported yet, because tf2torch has no converter for it; "
        f"register one with @tf2torch.register_layer(\"{class_name}\") meanwhile (README 'Custom layers')"
    )

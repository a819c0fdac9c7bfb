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


def custom_reason(class_name: str, opted_in: bool) -> str:
    code = ("whose code was not given: pass the module defining it" if opted_in else
            "to trace it, pass the module defining it")
    return (
        f"a custom layer {code} with --custom-code my_layers.py (API: custom_objects={{...}}; runs its code), "
        f"or register a converter with @tf2torch.register_layer(\"{class_name}\") (README 'Custom layers')"
    )


def unsupported_reason(raw: dict, class_name: str, opted_in: bool = False) -> str:
    """Why a layer cannot convert, told apart for Lambda, built-in Keras, library and custom
    classes (`opted_in`: the user gave code, which did not define this class)."""
    from tf2torch.frontends.keras.builtin_layers import builtin_refusal
    from tf2torch.frontends.keras.layer_calls import is_user_class

    user = is_user_class(raw)
    if class_name == "Lambda" and not user:
        return LAMBDA_REASON
    refusal = None if user else builtin_refusal(class_name, raw.get("module"))
    if refusal is not None:
        return refusal
    if is_builtin_layer(raw) or (not user and class_name.startswith("ops.")):
        return builtin_reason(class_name)
    if not user and raw.get("module"):
        return "a library class tf2torch has no converter for yet"
    return custom_reason(class_name, opted_in)

"""Keras `Lambda` layers, by explicit opt-in only: convert(allow_lambda=True), --allow-lambda.

A Lambda's function is Python code stored in the file (bytecode, or a function to import).
With the opt-in it is deserialized as Keras' load_model(safe_mode=False) does, traced like a
custom layer (frontends/tf/keras_layers.py) and, before convert() returns, the converted
model is compared with the Keras model (verify_lambdas). Without it, a Lambda is refused with
a message naming the opt-in (frontends/keras/unsupported.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tf2torch.codegen.naming import class_name as make_class_name
from tf2torch.errors import ConversionError, UnsupportedLayer, UnsupportedLayers
from tf2torch.frontends.keras.context import LayerContext
from tf2torch.frontends.keras.registry import register_importer
from tf2torch.frontends.keras.unsupported import LAMBDA_REASON
from tf2torch.ir import Value

if TYPE_CHECKING:
    from tf2torch.api import ConversionResult

_ALLOWED: list[dict] = []  # custom_objects of the conversions that opted in


@contextmanager
def allowing_lambda(custom_objects: dict | None) -> Iterator[None]:
    _ALLOWED.append(dict(custom_objects or {}))
    try:
        yield
    finally:
        _ALLOWED.pop()


def lambda_allowed() -> bool:
    return bool(_ALLOWED)


@register_importer("Lambda")
def import_lambda(ctx: LayerContext) -> list[Value]:
    if not lambda_allowed():  # find_unsupported refuses it first; this guards direct use
        raise UnsupportedLayers(ctx.file, [UnsupportedLayer(ctx.name, "Lambda", LAMBDA_REASON)])
    try:
        import tensorflow  # noqa: F401
    except ImportError as exc:
        raise ConversionError(
            f"{ctx.file}: layer {ctx.name!r} (Lambda): tracing its function needs TensorFlow and Keras: "
            "pip install 'tf2torch[tf]'"
        ) from exc
    from tf2torch.frontends.keras.user_code import current_session
    from tf2torch.frontends.tf.keras_layers import trace_layer

    session = current_session()
    if session.keras_model is None:  # the live model passed to convert(), or Keras' unsafe load of the file
        session.keras_model = _load_unsafe(ctx.file, ctx.keras_major, _ALLOWED[-1])
    layer = session.live_layer(ctx.file, ctx.keras_major, ctx.name)
    # The generated module class is named after the layer: `distance` -> `DistanceLambda`.
    return trace_layer(ctx, layer, make_class_name(ctx.name.split("/")[-1]) + "Lambda")


def deserialize_lambda(config: dict, keras_major: int, custom_objects: dict, file: str) -> Any:
    """The Lambda layer, its function loaded as Keras' load_model(safe_mode=False) loads it."""
    try:
        if keras_major == 2:
            import tf_keras
            from tf_keras.src.saving.serialization_lib import SafeModeScope

            with SafeModeScope(False):
                return tf_keras.layers.Lambda.from_config(dict(config), custom_objects=custom_objects)
        import keras

        return keras.layers.Lambda.from_config(dict(config), custom_objects=custom_objects, safe_mode=False)
    except (ImportError, AttributeError, TypeError, ValueError, NameError) as exc:
        raise ConversionError(
            f"{file}: Lambda layer {config.get('name')!r}: its function could not be loaded "
            f"({type(exc).__name__}: {exc}). If it names functions of your own, pass them with "
            "custom_objects={...}."
        ) from exc


def verify_lambdas(result: ConversionResult, custom_objects: dict | None) -> None:
    """Compare the converted model with Keras (the Lambda functions loaded from the file)
    before it is returned: traced code is trusted only once it matches."""
    if not any(node.source.kind == "Lambda" for node in result.graph.nodes):
        return
    keras_model = result._keras_model
    if keras_model is None:
        keras_model = _load_unsafe(result._file_path or result.source_path, result.keras_major, custom_objects)
    report = result.verify(keras_model=keras_model)
    if not report.ok:
        raise ConversionError(
            f"{result.source_path}: the traced Lambda layer(s) do not reproduce Keras' output, so nothing is "
            f"written:\n{report.table()}"
        )


def _load_unsafe(path: str, keras_major: int, custom_objects: dict | None) -> Any:
    try:
        return _keras_load_unsafe(path, keras_major, custom_objects)
    except (ImportError, AttributeError, TypeError, ValueError, NameError) as exc:
        missing = _missing_function(exc)
        what = f"its function {missing!r} is saved by name only" if missing else (
            f"Keras cannot rebuild the model ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"
        )
        raise ConversionError(
            f"{path}: Lambda layer: {what}. Pass the code defining it: --custom-code my_functions.py "
            "(API: custom_objects={...})."
        ) from exc


def _missing_function(exc: BaseException | None) -> str | None:
    """The function name in Keras' "Could not locate function 'name'", anywhere in the chain."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        found = re.search(r"Could not locate function '([^']+)'", str(exc))
        if found:
            return found.group(1)
        exc = exc.__cause__ or exc.__context__
    return None


def _keras_load_unsafe(path: str, keras_major: int, custom_objects: dict | None) -> Any:
    if keras_major == 2:
        import tf_keras
        from tf_keras.src.saving.serialization_lib import SafeModeScope

        with SafeModeScope(False):
            return tf_keras.models.load_model(path, compile=False, custom_objects=custom_objects)
    import keras

    return keras.saving.load_model(path, compile=False, custom_objects=custom_objects, safe_mode=False)

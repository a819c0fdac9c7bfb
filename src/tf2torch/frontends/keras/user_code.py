"""The user's Keras code during one conversion: which custom classes may run, and the source
model as Keras itself loads it.

Running a custom layer's Python code (to trace it) needs an explicit opt-in: `convert(...,
custom_objects=...)`, `trace_custom_layers=True` or the CLI's `--custom-code` (DESIGN
principle 8). The layers are then taken from the model Keras loads from the file (or from the
live model passed to `convert`), so they carry exactly the file's weights, those of their
sub-layers included, and the same model is the reference the result is verified against.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tf2torch.errors import ConversionError


@dataclass
class UserCodeSession:
    custom_objects: dict[str, Any]
    opted_in: bool
    keras_model: Any = None  # the live source model, or Keras' own load of the file
    traced_layers: list[str] = field(default_factory=list)  # names of layers whose code ran

    def keras_class(self, class_name: str, raw: dict | None = None) -> type | None:
        """The importable class of a custom layer, if running its code is allowed: user code
        with the opt-in; keras_hub's own classes (library code) whenever keras_hub imports."""
        if self.opted_in:
            return find_keras_class(class_name, self.custom_objects)
        if raw is not None and is_keras_hub_class(raw):
            try:
                import keras_hub  # noqa: F401  (registers its classes with Keras)
            except ImportError:
                return None
            return find_keras_class(str(raw.get("registered_name") or class_name), {}) or _class_in_module(raw)
        return None

    def reference_model(self, path: str, keras_major: int) -> Any:
        """The source model loaded by Keras (user code runs: callers check the opt-in)."""
        if self.keras_model is None:
            from tf2torch.verify.runner import load_keras_model

            self.keras_model = load_keras_model(path, keras_major, self.custom_objects or None)
        return self.keras_model

    def live_layer(self, path: str, keras_major: int, name: str) -> Any:
        """The layer `name` ("outer/inner" inside nested models) of the reference model."""
        obj = self.reference_model(path, keras_major)
        for part in name.split("/"):
            try:
                obj = obj.get_layer(part)
            except (ValueError, AttributeError) as exc:
                raise ConversionError(f"{path}: the model Keras loads has no layer {name!r}") from exc
        return obj


_SESSIONS: list[UserCodeSession] = []


@contextmanager
def user_code_session(custom_objects: dict | None, opted_in: bool, keras_model: Any = None) -> Iterator[UserCodeSession]:
    session = UserCodeSession(dict(custom_objects or {}), opted_in, keras_model)
    _SESSIONS.append(session)
    try:
        yield session
    finally:
        _SESSIONS.remove(session)


def current_session() -> UserCodeSession:
    """The session of the running conversion (a no-opt-in one outside `convert`)."""
    return _SESSIONS[-1] if _SESSIONS else UserCodeSession({}, False)


def is_keras_hub_class(raw: dict) -> bool:
    registered = str(raw.get("registered_name") or "")
    module = str(raw.get("module") or "")
    return registered.startswith(("keras_hub>", "keras_nlp>")) or module.split(".", 1)[0] in ("keras_hub", "keras_nlp")


def bare_class_name(class_name: str) -> str:
    """'my_pkg>TransformerEncoder' (a registered name) -> 'TransformerEncoder'."""
    return class_name.rsplit(">", 1)[-1]


def find_keras_class(class_name: str, custom_objects: dict[str, Any]) -> type | None:
    """A class from `custom_objects` or from Keras' registry of serializable classes."""
    for key in (class_name, bare_class_name(class_name)):
        if key in custom_objects:
            return custom_objects[key]
    for module in ("keras", "tf_keras"):
        try:
            registry = __import__(module).saving.get_custom_objects()
        except (ImportError, AttributeError):
            continue
        if class_name in registry:
            return registry[class_name]
        for key, cls in registry.items():
            if bare_class_name(key) == bare_class_name(class_name):
                return cls
    return None


def _class_in_module(raw: dict) -> type | None:
    """A keras_hub class by the module its config records (internal layers are not registered)."""
    import importlib

    module = str(raw.get("module") or "")
    if not module.startswith(("keras_hub.", "keras_nlp.")):
        return None
    try:
        return getattr(importlib.import_module(module), bare_class_name(str(raw.get("class_name"))), None)
    except ImportError:
        return None


class UnsavableLayers(Exception):
    """Keras cannot serialize a layer of the model (its get_config() fails)."""


def has_functional_graph(model: Any) -> bool:
    """A Functional model or subclass (keras_hub backbones and tasks), not a subclassed one."""
    return getattr(model, "_inputs_struct", None) is not None and getattr(model, "_outputs_struct", None) is not None


def save_functional_copy(model: Any, directory: str, stem: str) -> tuple[str, Any]:
    """A plain keras.Model over the same layers (its config lists them, where a Functional
    subclass's lists only constructor arguments), saved as `directory/stem.keras`."""
    import os

    import keras

    path = os.path.join(directory, stem + ".keras")
    try:
        # A backbone nested in a task model is a Functional subclass too: its layers are
        # called on the copy's graph directly, so they are walked rather than traced.
        copy = _inlined_copy(model)
        copy.save(path)
    except Exception:  # noqa: BLE001 -- Keras refuses the inlined graph (two layers of one name ...): keep the nesting
        copy = None
    if copy is not None:
        return path, copy
    copy = keras.Model(model._inputs_struct, model._outputs_struct, name=model.name)
    try:
        copy.save(path)
    except Exception as exc:  # Keras cannot serialize one of the layers
        raise UnsavableLayers(str(exc)) from exc
    return path, copy


def _inlined_copy(model: Any) -> Any:
    """A plain keras.Model computing `model` from new inputs (same names, shapes, dtypes), with
    every nested Functional subclass replaced by its own layers."""
    import keras

    def new_input(tensor: Any) -> Any:  # named after its InputLayer, as the model's inputs are
        return keras.Input(batch_shape=tensor.shape, dtype=tensor.dtype, name=tensor._keras_history[0].name)

    inputs = keras.tree.map_structure(new_input, model._inputs_struct)
    return keras.Model(inputs, _run_inlined(model, inputs), name=model.name)


def _run_inlined(model: Any, inputs: Any) -> Any:
    import keras

    def operation(op: Any) -> Any:
        if has_functional_graph(op) and type(op) not in (keras.Model, keras.Sequential) and not _is_plain_functional(op):
            return lambda *args, **kwargs: _run_inlined(op, args[0] if len(args) == 1 else list(args))
        return op

    return model._run_through_graph(inputs, operation_fn=operation)


def _is_plain_functional(model: Any) -> bool:
    return type(model).__name__ in ("Functional", "Sequential")

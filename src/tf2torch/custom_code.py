"""`--custom-code`: import the user's modules that define custom Keras classes.

Passing them is the explicit opt-in to run that code (tracing custom layers, Keras loading the
model to verify it). A module contributes the classes it registers with Keras
(`keras.saving.register_keras_serializable`), the Keras layers/models it defines, its public
functions (a `Lambda` saves a named function by its name only) and the entries of a
module-level `custom_objects` dict.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

from tf2torch.errors import BadModelFile

_REGISTRIES = ("keras", "tf_keras")


def load_custom_code(sources: list[str]) -> dict[str, Any]:
    """Import every `.py` path or importable module name; return their custom objects."""
    custom_objects: dict[str, Any] = {}
    for source in sources:
        before = _registered()
        module = _import(source)
        objects = module.__dict__.get("custom_objects", {})
        if not isinstance(objects, dict):
            raise BadModelFile(f"{source}: `custom_objects` must be a dict of name -> class, got {type(objects).__name__}")
        custom_objects.update(_defined_functions(module))
        custom_objects.update(_defined_keras_classes(module))
        custom_objects.update({key: obj for key, obj in _registered().items() if before.get(key) is not obj})
        custom_objects.update(objects)
    return custom_objects


def _import(source: str) -> Any:
    path = Path(source)
    try:
        if source.endswith(".py") or path.is_file():
            if not path.is_file():
                raise BadModelFile(f"{source}: no such file (--custom-code takes a .py file or an importable module)")
            name = path.stem
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise BadModelFile(f"{source}: not a Python file")
            module = importlib.util.module_from_spec(spec)
            # Registered under its name, so that its classes can be found again by module
            # (Keras' deserialization, a generated model.py importing a user module class).
            sys.modules[name] = module
            spec.loader.exec_module(module)
            return module
        return importlib.import_module(source)
    except BadModelFile:
        raise
    except ModuleNotFoundError as exc:
        raise BadModelFile(
            f"{source}: cannot import it ({exc}); --custom-code takes a .py file or an importable module name"
        ) from exc
    except Exception as exc:  # the user's module failed while running: say where, no traceback
        where = _user_frame(exc)
        raise BadModelFile(f"{source}: importing it failed{where}: {type(exc).__name__}: {exc}") from exc


def _user_frame(exc: BaseException) -> str:
    frames = [f for f in _traceback_frames(exc) if "importlib" not in f[0]]
    if not frames:
        return ""
    filename, line = frames[-1]
    return f" ({filename}, line {line})"


def _traceback_frames(exc: BaseException) -> list[tuple[str, int]]:
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno))
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) and exc.filename:
        frames.append((exc.filename, exc.lineno or 0))
    return frames


def _registered() -> dict[str, Any]:
    """Keras' (and tf_keras') registries of serializable classes, if those are imported."""
    found: dict[str, Any] = {}
    for name in _REGISTRIES:
        keras = sys.modules.get(name)
        if keras is None:
            continue
        try:
            found.update(keras.saving.get_custom_objects())
        except AttributeError:
            continue
    return found


def _defined_functions(module: Any) -> dict[str, Any]:
    """The module's own public functions, by name (what a saved `Lambda` refers to)."""
    return {
        name: obj
        for name, obj in vars(module).items()
        if inspect.isfunction(obj) and obj.__module__ == module.__name__ and not name.startswith("_")
    }


def _defined_keras_classes(module: Any) -> dict[str, Any]:
    """Keras layers, models and other serializables defined in the module itself."""
    bases = []
    for name in _REGISTRIES:
        keras = sys.modules.get(name)
        if keras is not None:
            bases += [c for c in (getattr(keras.layers, "Layer", None), getattr(keras, "Model", None)) if c is not None]
            for extra in ("regularizers.Regularizer", "constraints.Constraint", "initializers.Initializer"):
                owner, attr = extra.split(".")
                cls = getattr(getattr(keras, owner, None), attr, None)
                if cls is not None:
                    bases.append(cls)
    return {
        name: obj
        for name, obj in vars(module).items()
        if inspect.isclass(obj) and obj.__module__ == module.__name__ and bases and issubclass(obj, tuple(bases))
    }

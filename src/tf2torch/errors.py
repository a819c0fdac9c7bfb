"""Errors raised by tf2torch. Each one carries a message a user can act on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class ConversionError(Exception):
    """Base class: a conversion could not be done. The CLI maps it to exit status 2."""


class BadModelFile(ConversionError):
    """The source file is missing, unreadable, or not a model we understand."""


class OutputNotWritable(ConversionError, OSError):
    """The output directory cannot be created or written (also an OSError, as it was)."""


class UnsupportedFeature(ConversionError):
    """A layer is supported but one of its options is not."""


class InvalidGraph(BadModelFile):
    """The model graph is inconsistent (e.g. a layer refers to an unknown input, a cycle)."""


class VerificationUnavailable(ConversionError):
    """Verification needs Keras/TensorFlow (or the original model) and it is not available."""


def describe_exception(exc: BaseException) -> str:
    """A low-level exception raised while reading a model, in the user's terms (one line)."""
    if isinstance(exc, KeyError):
        return f"a required entry is missing ({exc.args[0]!r})" if exc.args else "a required entry is missing"
    if isinstance(exc, RecursionError):
        return "the data is nested too deeply"
    if isinstance(exc, MemoryError):
        return "it asks for more memory than is available (a declared size is too large)"
    if isinstance(exc, OSError):  # h5py reports damaged data as OSError
        return f"its data cannot be read ({str(exc).split('(')[0].strip() or type(exc).__name__})"
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"invalid value ({type(exc).__name__}: {text})" if text else f"invalid value ({type(exc).__name__})"


@contextmanager
def model_file_boundary(path: str) -> Iterator[None]:
    """Reading and converting a model file: whatever fails below is a BadModelFile naming
    the file (a ConversionError already says what is wrong and passes through)."""
    try:
        yield
    except ConversionError:
        raise
    except Exception as exc:
        raise BadModelFile(f"{path}: the model cannot be read: {describe_exception(exc)}") from exc


def one_line(message: str) -> str:
    """Messages that are not lists (UnsupportedLayers) are printed on one line."""
    return " ".join(message.split())


class SelfCheckFailed(ConversionError):
    """A conversion that ran user code (a traced layer) does not match Keras: refused."""


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
        lines.append(
            "Any layer can be given a converter with @tf2torch.register_layer(\"ClassName\"), a function "
            "(config, weights) -> tf2torch.CustomLayer(YourModule, kwargs, state_dict); a custom layer can "
            "instead be traced with TensorFlow by passing the module defining it (CLI: --custom-code "
            "my_layers.py; API: custom_objects={...}). See the README section 'Custom layers'."
        )
        super().__init__("\n".join(lines))


def unsupported_ops_message(source: str, ops: dict[str, list[str]], kind: str, example: str = "") -> str:
    """Every op type of a graph format without an importer, with its count and one example
    (`example` prefixes the example's name, e.g. "output ")."""
    lines = [f"{source}: {len(ops)} {kind} type(s) cannot be converted:"]
    for op_type, names in sorted(ops.items()):
        more = f" and {len(names) - 1} more" if len(names) > 1 else ""
        lines.append(f"  - {op_type} (x{len(names)}, e.g. {example}{names[0]!r}{more})")
    lines.append(f"Run `tf2torch inspect` on the model for the full {kind.split()[-1]} table.")
    return "\n".join(lines)

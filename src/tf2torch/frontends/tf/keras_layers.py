"""Fallback for custom Keras layers without a converter: trace the layer's call() with
tf.function and convert the graph through the TF frontend into a generated nn.Module class.

This runs the layer's Python code, so it happens only when the user opts in, with
`convert(..., custom_objects={...})` or `trace_custom_layers=True` (DESIGN principle 8).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from tf2torch.errors import ConversionError

_ACTIVE: list[dict] = []  # custom_objects of the conversions that opted in


@contextmanager
def tracing_custom_layers(custom_objects: dict | None) -> Iterator[None]:
    _ACTIVE.append(dict(custom_objects or {}))
    try:
        yield
    finally:
        _ACTIVE.pop()


def traceable_class(class_name: str) -> type | None:
    """The importable class of a custom layer, if tracing is on and the class is known."""
    if not _ACTIVE:
        return None
    objects = _ACTIVE[-1]
    if class_name in objects:
        return objects[class_name]
    for module in ("keras", "tf_keras"):
        try:
            registry = __import__(module).saving.get_custom_objects()
        except (ImportError, AttributeError):
            continue
        for key, cls in registry.items():
            if key == class_name or key.endswith(">" + class_name):
                return cls
    return None


@dataclass
class _VariableView:
    """A Keras variable seen as the tf.Variable the traced graph captures, with its Keras path."""

    path: str
    handle: Any
    trainable: bool
    value: Any
    name: str = ""

    def numpy(self) -> np.ndarray:
        return np.asarray(self.value.numpy())


def import_traced_layer(ctx: Any) -> list:
    """Keras importer for a custom layer: trace, convert, wrap as one `tf_subgraph` node."""
    import tensorflow as tf

    from tf2torch.frontends.tf.loader import import_concrete_function
    from tf2torch.frontends.tf.subgraph import finish_subgraph

    cls = traceable_class(ctx.class_name)
    if cls is None:
        raise ConversionError(f"{ctx.file}: the class of layer {ctx.name!r} ({ctx.class_name}) is not importable")
    config = {k: v for k, v in ctx.config.items()}
    layer = cls.from_config(config)
    probes = [tf.zeros([1 if d is None else d for d in v.spec.shape], dtype=v.spec.dtype) for v in ctx.inputs]
    layer(*probes)  # builds the layer's variables
    weights = ctx.weights()
    if weights:
        layer.set_weights(weights)
    specs = [tf.TensorSpec(v.spec.shape, v.spec.dtype) for v in ctx.inputs]
    fn = tf.function(lambda *xs: layer(*xs)).get_concrete_function(*specs)
    views = []
    for w in layer.weights:
        var = getattr(w, "value", w) if not isinstance(w, tf.Variable) else w
        path = getattr(w, "path", None) or w.name
        # named inside the generated class: `self.gate`, not `self.<layer>_gate`
        views.append(_VariableView(path.split("/")[-1], var.handle, bool(w.trainable), var))
    imported = import_concrete_function(fn, ctx.file, ctx.name, variables=views)
    graph = imported.graph
    names = ["inputs"] if len(graph.inputs) == 1 else [f"inputs_{i}" for i in range(len(graph.inputs))]
    graph.input_names = names
    for value, name in zip(graph.inputs, names):
        value.name = name
    finish_subgraph(graph)
    specs_out = [v.spec for v in graph.outputs]
    node = ctx.add("tf_subgraph", ctx.inputs, specs_out, {"graph": graph, "class_name": cls.__name__})
    return node.outputs

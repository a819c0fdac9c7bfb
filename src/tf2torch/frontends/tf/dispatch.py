"""Which frontend a source goes to, and conversion through the TF frontend.

- a directory -> SavedModel (a tf_keras SavedModel with Keras metadata can be forced
  through the Keras frontend with frontend="keras"),
- a .pb file -> frozen GraphDef,
- a tf.function / ConcreteFunction -> its graph.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from tf2torch.errors import BadModelFile

FRONTENDS = ("auto", "tf", "keras")


def is_tf_source(source: Any) -> bool:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        return path.is_dir() or path.suffix == ".pb"
    return hasattr(source, "function_def") or (
        hasattr(source, "get_concrete_function") and not hasattr(source, "get_config")
    )


def has_keras_metadata(path: str | os.PathLike) -> bool:
    return (Path(path) / "keras_metadata.pb").is_file()


def saved_model_to_keras_file(path: str, custom_objects: dict | None = None) -> tuple[tempfile.TemporaryDirectory, Any]:
    """frontend="keras" on a tf_keras SavedModel: load it with tf_keras, save as .h5."""
    if not has_keras_metadata(path):
        raise BadModelFile(f"{path}: this SavedModel carries no Keras metadata; use the TF frontend (frontend='tf')")
    import tf_keras

    model = tf_keras.models.load_model(path, compile=False, custom_objects=custom_objects)
    temp = tempfile.TemporaryDirectory(prefix="tf2torch-savedmodel-")
    model.save(os.path.join(temp.name, f"{model.name}.h5"))
    return temp, model


def convert_tf(
    source: Any, *, model_name: str | None = None, signature: str = "serving_default",
    inputs: list[str] | None = None, outputs: list[str] | None = None, structure: str = "flat",
) -> Any:
    from tf2torch.api import ConversionResult
    from tf2torch.codegen.emit import emit_module
    from tf2torch.frontends.tf.loader import import_function, import_graph_def_file, import_saved_model
    from tf2torch.passes.pipeline import run_passes

    if isinstance(source, (str, os.PathLike)):
        path = str(source)
        if Path(path).is_dir():
            imported = import_saved_model(path, signature)
        else:
            imported = import_graph_def_file(path, inputs, outputs)  # checks the file type first
        source_name = Path(path).name
    else:
        imported = import_function(source)
        path = imported.graph.name
        source_name = path
    graph = run_passes(imported.graph)
    generated = emit_module(graph, source_name, model_name or graph.name, structure)
    result = ConversionResult(
        source_code=generated.source, graph=graph, generated=generated, source_path=path, keras_major=0,
    )
    from tf2torch.codegen.loader import instantiate  # torch: only once the source has been read

    result._module = instantiate(generated.source, generated.class_name, generated.state)
    result._keras_model = imported.runner
    return result

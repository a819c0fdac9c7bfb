"""Load the source model with Keras (imported lazily) and run both sides on one input set."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from tf2torch.errors import VerificationUnavailable
from tf2torch.ir import Graph, Value


def load_keras_model(path: str, keras_major: int, custom_objects: dict | None = None) -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        from tf2torch.frontends.tfjs.model_json import is_tfjs_path

        if is_tfjs_path(path):  # a TF.js layers-model: Keras builds it from the same files
            from tf2torch.frontends.tfjs.layers_model import reference_keras_model

            return reference_keras_model(path, custom_objects)
        if keras_major == 2:
            import tf_keras

            return tf_keras.models.load_model(path, compile=False, custom_objects=custom_objects)
        import keras

        _import_keras_hub(path)  # registers keras_hub's classes (backbones) for deserialization
        return keras.saving.load_model(path, compile=False, custom_objects=custom_objects)
    except ImportError as exc:
        raise VerificationUnavailable(
            f"verification of {path} needs {'tf-keras' if keras_major == 2 else 'keras'} and TensorFlow: "
            "pip install 'tf2torch[tf]'"
        ) from exc
    except Exception as exc:  # Keras could not rebuild the model: typically a class it does not know
        text = str(exc).strip().splitlines()
        raise VerificationUnavailable(
            f"{path}: Keras cannot load the model to compare with it ({type(exc).__name__}: "
            f"{text[0] if text else ''}). If it uses custom classes (layers, regularizers, constraints, "
            "...), pass the code defining them: --custom-code my_layers.py (or custom_objects={...})."
        ) from exc


def _import_keras_hub(path: str) -> None:
    """Import keras_hub (slow) only for .keras archives whose config names it."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            if b"keras_hub" not in archive.read("config.json"):
                return
        import keras_hub  # noqa: F401
    except (ImportError, OSError, KeyError, zipfile.BadZipFile):
        pass


def random_inputs(graph: Graph, batch_size: int, seed: int = 0) -> list[np.ndarray]:
    """Source-layout inputs: normal floats; ints below the smallest Embedding vocabulary."""
    rng = np.random.default_rng(seed)
    arrays = []
    for value in graph.inputs:
        shape = [batch_size if i == 0 else (7 if d is None else d) for i, d in enumerate(value.spec.shape)]
        if value.spec.dtype.startswith("int") or value.spec.dtype.startswith("uint"):
            vocab = min([n.attrs["num"] for n in graph.consumers(value) if n.op == "embedding"] or [10])
            arrays.append(rng.integers(0, vocab, size=shape).astype(value.spec.dtype))
        else:
            arrays.append(rng.standard_normal(shape).astype(np.float32))
    return arrays


def to_torch_layout(array: np.ndarray, value: Value) -> torch.Tensor:
    if value.perm is not None:
        array = np.transpose(array, value.perm)
    return torch.from_numpy(np.ascontiguousarray(array))


def to_source_layout(tensor: torch.Tensor, value: Value) -> np.ndarray:
    array = tensor.detach().cpu().numpy()
    if value.perm is not None:
        array = np.transpose(array, np.argsort(value.perm))
    return array


def run_torch(module: torch.nn.Module, graph: Graph, inputs: list[np.ndarray], training: bool) -> list[np.ndarray]:
    module.train(training)
    try:
        with torch.no_grad():
            result = module(*[to_torch_layout(a, v) for a, v in zip(inputs, graph.inputs)])
    finally:
        module.eval()
    results = list(result) if isinstance(result, (tuple, list)) else [result]
    return [to_source_layout(t, v) for t, v in zip(results, graph.outputs)]


def run_keras(model: Any, inputs: list[np.ndarray], training: bool, names: list[str] | None = None) -> list[np.ndarray]:
    struct = getattr(model, "_inputs_struct", None)
    if isinstance(struct, dict) and names is not None and set(struct) == set(names):
        # Dict-input models (keras_hub backbones): inputs by the names of the graph's inputs.
        result = model(dict(zip(names, inputs)), training=training)
    else:
        result = model(inputs if len(inputs) > 1 else inputs[0], training=training)
    results = list(result.values()) if isinstance(result, dict) else (list(result) if isinstance(result, (list, tuple)) else [result])
    return [np.asarray(r) for r in results]

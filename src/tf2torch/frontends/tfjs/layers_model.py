"""A TF.js layers-model as a KerasSource: its topology is a Keras model config, its weights
are named by Keras weight path (`conv/kernel`, `lstm/lstm_cell/bias`), so the Keras frontend
imports it like an .h5 file (same importers, weight checks and training side).
"""

from __future__ import annotations

import json
import re
import warnings
from typing import Any

import numpy as np

from tf2torch.errors import BadModelFile, UnsupportedFeature
from tf2torch.frontends.keras.archive import KerasSource, WeightReader, layer_name_of, v3_layer_paths
from tf2torch.frontends.keras.config_check import check_model_config
from tf2torch.frontends.tfjs.model_json import TfjsModel, read_model_json
from tf2torch.frontends.tfjs.shards import read_weights
from tf2torch.limits import DEFAULT_LIMITS, Limits

MODEL_CLASSES = ("Sequential", "Functional", "Model")


class TfjsWeightReader(WeightReader):
    """Weights of the manifest by layer: a layer's are those whose path starts with its name
    (inside a nested model, with the nested model's name first where the writer kept it), in
    manifest order, which is the layer's variable order."""

    def __init__(self, weights: dict[str, np.ndarray], scope: tuple[str, ...] = (),
                 paths: dict[str, tuple[str, ...]] | None = None) -> None:
        self._weights = weights
        self._scope = scope
        self._paths = paths if paths is not None else {n: tuple(weight_path(n)) for n in weights}

    def read(self, layer_name: str) -> list[np.ndarray]:
        for prefix in (self._scope + (layer_name,), (layer_name,)):
            names = [n for n, path in self._paths.items() if path[:len(prefix)] == prefix and len(path) > len(prefix)]
            if names:
                return [self._weights[n] for n in _variable_order(names)]
        return []

    def nested(self, layer_name: str, layer_configs: list[dict], sequential: bool) -> WeightReader:
        return TfjsWeightReader(self._weights, self._scope + (layer_name,), self._paths)

    def by_path(self) -> dict[str, np.ndarray]:
        """Every weight by its normalized path (`dense/kernel`)."""
        return {"/".join(weight_path(n)): a for n, a in self._weights.items()}


class Keras3TfjsWeightReader(WeightReader):
    """Weights of a Keras 3 model converted to TF.js: named by attribute path as in the
    .keras archive (`layers/conv2d_1/vars/0`, an LSTM's `layers/lstm/cell/vars/0`, a nested
    model's `layers/functional/layers/dense/vars/0`), not by layer name."""

    def __init__(self, weights: dict[str, np.ndarray], layer_configs: list[dict], sequential: bool,
                 path: str, prefix: str = "layers/") -> None:
        self._weights = weights
        self._paths = v3_layer_paths(layer_configs, sequential)
        self._file = path
        self._prefix = prefix

    def read(self, layer_name: str) -> list[np.ndarray]:
        """The layer's own variables, then those of the one sub-object holding any (an RNN's
        cell). With several such sub-objects the names do not give their order: refused."""
        if layer_name not in self._paths:
            return []
        base = f"{self._prefix}{self._paths[layer_name]}/"
        owners: dict[str, list[str]] = {}
        for name in self._weights:
            if name.startswith(base) and not name.startswith(base + "layers/"):
                owner, _, index = name[len(base):].rpartition("vars/")
                if index.isdigit():
                    owners.setdefault(owner, []).append(name)
        children = [o for o in owners if o]
        if len(children) > 1:
            raise UnsupportedFeature(
                f"{self._file}: layer {layer_name!r}: its weights sit in {len(children)} sub-objects "
                f"({', '.join(o.rstrip('/') for o in children)}) whose order Keras 3 weight paths do not give; "
                "convert the .keras file instead")
        ordered = [n for owner in ([""] if "" in owners else []) + children
                   for n in sorted(owners[owner], key=lambda n: int(n.rpartition("/")[2]))]
        return [self._weights[n] for n in ordered]

    def nested(self, layer_name: str, layer_configs: list[dict], sequential: bool) -> WeightReader:
        return Keras3TfjsWeightReader(self._weights, layer_configs, sequential, self._file,
                                      f"{self._prefix}{self._paths.get(layer_name, layer_name)}/layers/")

    def top_level_paths(self) -> set[str]:
        return set(self._paths.values())


def weight_path(name: str) -> list[str]:
    """`dense/kernel:0` -> ['dense', 'kernel'] (TF variable names keep an output index)."""
    return name.removesuffix(":0").split("/")


def _variable_order(names: list[str]) -> list[str]:
    """Manifest order, except Keras 3 `layer/0`, `layer/1`, ... names (written in HDF5 key
    order, where 10 sorts before 2): by their number."""
    if all(re.fullmatch(r"\d+", weight_path(n)[-1]) for n in names):
        return sorted(names, key=lambda n: int(weight_path(n)[-1]))
    return names


def keras_config(model: TfjsModel) -> tuple[dict, str]:
    """The Keras model config in the topology and the Keras version that wrote it. The
    Python converter wraps it ({keras_version, backend, model_config}); TF.js itself writes
    it bare, with keras_version 'tfjs-layers x.y.z' (Keras 2 semantics)."""
    topology = model.topology
    config = topology.get("model_config", topology)
    if not isinstance(config, dict) or config.get("class_name") not in MODEL_CLASSES:
        found = config.get("class_name") if isinstance(config, dict) else type(config).__name__
        raise BadModelFile(f"{model.path}: modelTopology holds no Keras model config (a Sequential or functional "
                           f"model; found class_name {found!r})")
    version = topology.get("keras_version", config.get("keras_version", "2"))
    return config, str(version)


def load_layers_model(path: str, limits: Limits = DEFAULT_LIMITS) -> KerasSource:
    """model.json of a layers-model (and its shards) as a KerasSource."""
    model = read_model_json(path, limits)
    if model.format != "layers-model":
        raise BadModelFile(f"{path}: is a TF.js {model.format}, which converts through the TF frontend "
                           "(frontend='auto', the default), not the Keras one")
    config, version = keras_config(model)
    check_model_config(config, path, limits)
    reader = weight_reader(model, config, read_weights(model))
    training = model.topology.get("training_config")
    return KerasSource(path=path, keras_major=3 if version.startswith("3") else 2, model_config=config,
                       weights=reader, compile_config=training if isinstance(training, dict) else None,
                       keras_version=version)


def weight_reader(model: TfjsModel, config: dict, weights: dict[str, np.ndarray]) -> WeightReader:
    """Keras 3 attribute paths (every name under `layers/`) or Keras 2 weight names; a weight
    that belongs to no layer is an error either way."""
    reader: WeightReader
    if model.weights and all(w.name.startswith("layers/") for w in model.weights) and "layers" not in layer_names(config):
        keras3 = Keras3TfjsWeightReader(weights, config.get("config", {}).get("layers", []),
                                        config.get("class_name") == "Sequential", model.path)
        known, position, reader = keras3.top_level_paths(), 1, keras3
    else:
        known, position, reader = layer_names(config), 0, TfjsWeightReader(weights)
    orphans = [w.name for w in model.weights if weight_path(w.name)[position] not in known]
    if orphans:
        listed = ", ".join(repr(n) for n in orphans[:5]) + (", ..." if len(orphans) > 5 else "")
        raise BadModelFile(f"{model.path}: {len(orphans)} weights in weightsManifest belong to no layer of the "
                           f"topology: {listed}; the manifest and the topology do not describe the same model")
    return reader


def layer_names(config: dict) -> set[str]:
    """Names of every layer of the model, nested models' layers (and the models) included."""
    names: set[str] = set()
    for raw in config.get("config", {}).get("layers", []):
        if not isinstance(raw, dict):
            continue
        names.add(layer_name_of(raw))
        if raw.get("class_name") in MODEL_CLASSES:
            names |= layer_names(raw)
    return names


def reference_keras_model(path: str, custom_objects: dict | None = None) -> Any:
    """The layers-model as Keras builds it from the same topology and weights, for
    verification. Keras 2 weights are assigned by variable name (not by the order the
    converter relies on), so a mix-up in either is caught by the comparison."""
    model = read_model_json(path)
    config, version = keras_config(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the conversion already warned about quantized weights
        reader = weight_reader(model, config, read_weights(model))
    if version.startswith("3"):
        import keras

        # The TF.js converter drops Keras 3's `module` keys, without which Keras finds no
        # 'Functional' class: name it.
        known = {"Functional": keras.Model, **(custom_objects or {})}
        built = keras.models.model_from_json(json.dumps(config), custom_objects=known)
    else:
        import tf_keras

        built = tf_keras.models.model_from_json(json.dumps(config), custom_objects=custom_objects)
    _assign_weights(built, reader, path)
    return built


def _assign_weights(model: Any, reader: WeightReader, path: str) -> None:
    by_name = reader.by_path() if isinstance(reader, TfjsWeightReader) else {}
    for layer in model.layers:
        if type(layer).__name__ in MODEL_CLASSES and hasattr(layer, "layers"):
            configs = [{"class_name": type(sub).__name__, "config": {"name": sub.name}} for sub in layer.layers]
            _assign_weights(layer, reader.nested(layer.name, configs, type(layer).__name__ == "Sequential"), path)
            continue
        variables = layer.weights
        if not variables:
            continue
        names = ["/".join(weight_path(getattr(v, "path", None) or v.name)) for v in variables]
        if by_name and all(n in by_name for n in names):
            layer.set_weights([by_name[n] for n in names])
            continue
        values = reader.read(layer.name)  # a writer that names variables otherwise: manifest order
        if len(values) != len(variables):
            raise BadModelFile(f"{path}: layer {layer.name!r} has {len(values)} weights in the manifest, "
                               f"Keras builds {len(variables)}")
        layer.set_weights(values)

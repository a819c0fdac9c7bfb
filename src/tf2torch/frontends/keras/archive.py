"""Read Keras model files without TensorFlow: the .keras zip and legacy HDF5.

Both give a `KerasSource`: the model config (a plain dict), the Keras major version that
wrote it, the compile config, and a `WeightReader` that hands out each layer's weights in
Keras variable order.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from tf2torch.errors import BadModelFile

# Archive members are never trusted: a member larger than this is refused (zip bombs).
MAX_MEMBER_BYTES = 16 * 1024**3
MAX_CONFIG_BYTES = 256 * 1024**2


def to_snake_case(name: str) -> str:
    """Keras' own naming of attribute paths in model.weights.h5 (saving_lib)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


# Exported names whose Python class (which names the weight group) differs.
SAVED_CLASS_NAMES = {"GroupQueryAttention": "GroupedQueryAttention"}


class WeightReader:
    """Per-layer weights of one (possibly nested) model, in Keras variable order."""

    def read(self, layer_name: str) -> list[np.ndarray]:
        raise NotImplementedError

    def nested(self, layer_name: str, layer_configs: list[dict], sequential: bool) -> WeightReader:
        raise NotImplementedError


class KerasV3WeightReader(WeightReader):
    """model.weights.h5 of a .keras archive: groups named by attribute path, not layer name.

    A model's layers sit at `layers/<snake_case class name>[_N]` in `model.layers` order
    (Sequential leaves its InputLayer out), their variables at `vars/0`, `vars/1`, ...
    """

    def __init__(self, group: h5py.Group, layer_configs: list[dict], sequential: bool,
                 assets: dict[str, bytes] | None = None, prefix: str = "") -> None:
        self._group = group
        self._assets = assets or {}  # archive members under assets/ (lookup vocabularies)
        self._prefix = prefix  # this model's path in the archive ("" or "layers/<model>/")
        self._paths: dict[str, str] = {}
        used: dict[str, int] = {}
        for cfg in layer_configs:
            if sequential and cfg["class_name"] == "InputLayer":
                continue
            base = to_snake_case(SAVED_CLASS_NAMES.get(cfg["class_name"], cfg["class_name"]))
            count = used.get(base, 0)
            used[base] = count + 1
            self._paths[layer_name_of(cfg)] = base if count == 0 else f"{base}_{count}"

    def _layer_group(self, layer_name: str) -> h5py.Group | None:
        path = self._paths.get(layer_name)
        if path is None or "layers" not in self._group or path not in self._group["layers"]:
            return None
        return self._group["layers"][path]

    def read(self, layer_name: str) -> list[np.ndarray]:
        group = self._layer_group(layer_name)
        if group is None or "vars" not in group:
            return []
        return read_vars_group(group["vars"])

    def nested(self, layer_name: str, layer_configs: list[dict], sequential: bool) -> WeightReader:
        group = self._layer_group(layer_name)
        if group is None:
            raise BadModelFile(f"no weights stored for nested model {layer_name!r}")
        return KerasV3WeightReader(group, layer_configs, sequential, self._assets,
                                   f"{self._prefix}layers/{self._paths[layer_name]}/")

    def asset(self, layer_name: str, filename: str) -> bytes | None:
        """A file Keras saved for the layer (e.g. an adapted lookup's vocabulary.txt)."""
        path = self._paths.get(layer_name)
        return None if path is None else self._assets.get(f"assets/{self._prefix}layers/{path}/{filename}")

    def group(self, layer_name: str) -> h5py.Group | None:
        """The raw group, for layers whose variables live in sub-objects (e.g. RNN cells)."""
        return self._layer_group(layer_name)


def read_vars_group(vars_group: h5py.Group) -> list[np.ndarray]:
    keys = sorted(vars_group.keys(), key=int)
    return [np.asarray(vars_group[k][()]) for k in keys]


class LegacyH5WeightReader(WeightReader):
    """`model_weights` of a legacy HDF5 file: one group per layer, read by `weight_names`."""

    def __init__(self, group: h5py.Group, names_filter: str | None = None) -> None:
        self._group = group
        self._filter = names_filter  # inside a nested model: its group, weights by inner layer

    def read(self, layer_name: str) -> list[np.ndarray]:
        if self._filter is None:
            if layer_name not in self._group:
                return []
            layer_group = self._group[layer_name]
            names = [_decode(n) for n in layer_group.attrs.get("weight_names", [])]
            return [np.asarray(layer_group[n][()]) for n in names]
        layer_group = self._group[self._filter]
        names = [_decode(n) for n in layer_group.attrs.get("weight_names", [])]
        mine = [n for n in names if layer_name in n.split("/")[:-1]]
        return [np.asarray(layer_group[n][()]) for n in mine]

    def nested(self, layer_name: str, layer_configs: list[dict], sequential: bool) -> WeightReader:
        if self._filter is not None:
            # Deeper nesting keeps all weights in the outermost nested model's group.
            return self
        return LegacyH5WeightReader(self._group, names_filter=layer_name)


def _decode(value: Any) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def layer_name_of(layer_cfg: dict) -> str:
    return layer_cfg.get("name") or layer_cfg["config"]["name"]


@dataclass
class KerasSource:
    path: str
    keras_major: int  # 2 or 3: decides version-dependent semantics (hard_sigmoid, BN variance)
    model_config: dict
    weights: WeightReader
    compile_config: dict | None = None
    keras_version: str = ""
    _resources: list[Any] = field(default_factory=list)

    def close(self) -> None:
        for resource in self._resources:
            resource.close()
        self._resources.clear()


def load_keras_file(path: str) -> KerasSource:
    """Open a .keras archive or a legacy .h5 file; raises BadModelFile with a clear message."""
    if not os.path.exists(path):
        raise BadModelFile(f"{path}: no such file")
    if os.path.isdir(path):
        raise BadModelFile(
            f"{path}: is a directory. SavedModel directories are not supported yet; "
            "pass a .keras or .h5 file."
        )
    if zipfile.is_zipfile(path):
        return _load_keras_v3(path)
    if h5py.is_hdf5(path):
        return _load_legacy_h5(path)
    raise BadModelFile(
        f"{path}: neither a .keras archive (zip) nor an HDF5 file. "
        "Save the model with model.save('model.keras') and convert that."
    )


def _load_keras_v3(path: str) -> KerasSource:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise BadModelFile(f"{path}: damaged .keras archive ({exc})") from exc
    with archive:
        names = set(archive.namelist())
        if "config.json" not in names:
            raise BadModelFile(f"{path}: the archive has no config.json; is it a Keras 3 .keras file?")
        config = json.loads(_read_member(archive, "config.json", MAX_CONFIG_BYTES, path))
        # keras_hub backbones store only constructor arguments: rebuild their layer graph.
        from tf2torch.frontends.keras.importers.attention import expand_keras_hub_models

        config = expand_keras_hub_models(config)
        metadata: dict = {}
        if "metadata.json" in names:
            metadata = json.loads(_read_member(archive, "metadata.json", MAX_CONFIG_BYTES, path))
        if "model.weights.h5" not in names:
            hint = " (it stores model.weights.npz, which is not supported)" if "model.weights.npz" in names else ""
            raise BadModelFile(f"{path}: the archive has no model.weights.h5{hint}")
        weights_file = _extract_member(archive, "model.weights.h5", path)
        assets = {n: _read_member(archive, n, MAX_CONFIG_BYTES, path)
                  for n in names if n.startswith("assets/") and not n.endswith("/")}
    h5 = h5py.File(weights_file, "r")
    model_layers = config.get("config", {}).get("layers", [])
    reader = KerasV3WeightReader(h5, model_layers, config.get("class_name") == "Sequential", assets)
    keras_version = str(metadata.get("keras_version", "3"))
    source = KerasSource(
        path=path,
        # tf.keras 2.13+ (tf_keras) also writes .keras archives: its layers compute as Keras 2's.
        keras_major=2 if keras_version.startswith("2.") else 3,
        model_config=config,
        weights=reader,
        compile_config=config.get("compile_config"),
        keras_version=keras_version,
    )
    source._resources.append(h5)
    source._resources.append(_Remover(weights_file))
    return source


def _read_member(archive: zipfile.ZipFile, name: str, limit: int, path: str) -> bytes:
    with archive.open(name) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise BadModelFile(f"{path}: archive member {name} is larger than {limit} bytes")
    return data


def _extract_member(archive: zipfile.ZipFile, name: str, path: str) -> str:
    """Stream a member to a private temp file, counting real bytes (declared sizes lie)."""
    handle, temp_path = tempfile.mkstemp(suffix=".h5", prefix="tf2torch-")
    written = 0
    with os.fdopen(handle, "wb") as out, archive.open(name) as member:
        while chunk := member.read(1 << 20):
            written += len(chunk)
            if written > MAX_MEMBER_BYTES:
                out.close()
                os.unlink(temp_path)
                raise BadModelFile(f"{path}: archive member {name} exceeds {MAX_MEMBER_BYTES} bytes")
            out.write(chunk)
    return temp_path


class _Remover:
    def __init__(self, path: str) -> None:
        self._path = path

    def close(self) -> None:
        if os.path.exists(self._path):
            os.unlink(self._path)


def _load_legacy_h5(path: str) -> KerasSource:
    h5 = h5py.File(path, "r")
    raw_config = h5.attrs.get("model_config")
    if raw_config is None:
        h5.close()
        raise BadModelFile(
            f"{path}: HDF5 file without a model_config attribute: it holds weights only. "
            "Save the whole model (model.save('model.h5')), not save_weights()."
        )
    config = json.loads(_decode(raw_config))
    keras_version = _decode(h5.attrs.get("keras_version", "2"))
    training = h5.attrs.get("training_config")
    compile_config = json.loads(_decode(training)) if training is not None else None
    group = h5.get("model_weights", h5)
    major = 3 if keras_version.startswith("3") else 2
    source = KerasSource(path, major, config, LegacyH5WeightReader(group), compile_config, keras_version)
    source._resources.append(h5)
    return source


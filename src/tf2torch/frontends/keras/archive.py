"""Read Keras model files without TensorFlow: the .keras zip and legacy HDF5.

Both give a `KerasSource`: the model config (a plain dict), the Keras major version that
wrote it, the compile config, and a `WeightReader` that hands out each layer's weights in
Keras variable order.
"""

from __future__ import annotations

import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from tf2torch.errors import BadModelFile
from tf2torch.frontends.keras.config_check import check_model_config, parse_json
from tf2torch.frontends.keras.hdf5_check import open_hdf5, read_text_attribute
from tf2torch.frontends.keras.zip_check import check_member_size, check_members, member_errors
from tf2torch.input_files import check_model_path, open_regular
from tf2torch.limits import DEFAULT_LIMITS, Limits, size_text

# Kept for callers that predate tf2torch.limits (training/state_transfer.py).
MAX_MEMBER_BYTES = DEFAULT_LIMITS.max_weight_bytes
MAX_CONFIG_BYTES = DEFAULT_LIMITS.max_config_bytes


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

    def read_with_sub_layers(self, layer_name: str) -> tuple[list[np.ndarray], bool]:
        """All weights of a custom layer, its sub-layers' included, in `layer.get_weights()`
        order, and whether that order is certain (see KerasV3WeightReader)."""
        return self.read(layer_name), True


def v3_layer_paths(layer_configs: list[dict], sequential: bool) -> dict[str, str]:
    """Layer name -> its Keras 3 attribute path (`conv2d`, `conv2d_1`, ...) in `model.layers`
    order (Sequential leaves its InputLayer out)."""
    paths: dict[str, str] = {}
    used: dict[str, int] = {}
    for cfg in layer_configs:
        if sequential and cfg["class_name"] == "InputLayer":
            continue
        class_name = cfg.get("saved_class_name", cfg["class_name"])
        base = to_snake_case(SAVED_CLASS_NAMES.get(class_name, class_name))
        count = used.get(base, 0)
        used[base] = count + 1
        paths[layer_name_of(cfg)] = base if count == 0 else f"{base}_{count}"
    return paths


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
        self._paths = v3_layer_paths(layer_configs, sequential)

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

    def read_with_sub_layers(self, layer_name: str) -> tuple[list[np.ndarray], bool]:
        """Own variables first, then each sub-layer's (as Layer.weights lists them). The
        archive names sub-layers by attribute and sorts them by name, not by creation order,
        so with two or more sub-objects holding variables the order is not certain."""
        group = self._layer_group(layer_name)
        if group is None:
            return [], True
        return _read_tree(group)

    def group(self, layer_name: str) -> h5py.Group | None:
        """The raw group, for layers whose variables live in sub-objects (e.g. RNN cells)."""
        return self._layer_group(layer_name)


def _read_tree(group: h5py.Group) -> tuple[list[np.ndarray], bool]:
    weights = read_vars_group(group["vars"]) if "vars" in group else []
    children = [_read_tree(group[k]) for k in group if k != "vars" and isinstance(group[k], h5py.Group)]
    children = [child for child in children if child[0]]
    certain = len(children) <= 1 and all(sure for _, sure in children)
    for child_weights, _ in children:
        weights.extend(child_weights)
    return weights, certain


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


def load_keras_file(path: str, limits: Limits = DEFAULT_LIMITS) -> KerasSource:
    """Open a .keras archive or a legacy .h5 file; raises BadModelFile with a clear message.

    The file is validated as it is read: its type before it is opened, archive member names,
    sizes (real, not declared), JSON nesting, and every HDF5 link and dataset (nothing stored
    outside the file is ever read). A TF.js layers-model (model.json) is read as one too."""
    from tf2torch.frontends.tfjs.model_json import is_tfjs_path

    if is_tfjs_path(path):
        from tf2torch.frontends.tfjs.layers_model import load_layers_model

        return load_layers_model(path, limits)
    check_model_path(path)
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as handle:
        head = handle.read(8)
        handle.seek(0)
        is_zip = zipfile.is_zipfile(handle)
    if is_zip:
        return _load_keras_v3(path, limits)
    if head.startswith(b"PK\x03\x04"):
        raise BadModelFile(f"{path}: the .keras archive is truncated or damaged (its zip directory is missing)")
    if head == HDF5_SIGNATURE or h5py.is_hdf5(path):
        return _load_legacy_h5(path, limits)
    raise BadModelFile(
        f"{path}: neither a .keras archive (zip) nor an HDF5 file. "
        "Save the model with model.save('model.keras') and convert that."
    )


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _load_keras_v3(path: str, limits: Limits) -> KerasSource:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise BadModelFile(f"{path}: the .keras archive is damaged ({exc})") from None
    with archive:
        names = check_members(archive, path)
        if "config.json" not in names:
            raise BadModelFile(f"{path}: the archive has no config.json; is it a Keras 3 .keras file?")
        config = parse_json(_read_member(archive, "config.json", limits.max_config_bytes, path, limits),
                            f"{path}: archive member config.json", limits, check_depth=False)
        check_model_config(config, path, limits)
        # keras_hub backbones store only constructor arguments: rebuild their layer graph.
        from tf2torch.frontends.keras.importers.attention import expand_keras_hub_models

        config = expand_keras_hub_models(config)
        metadata: dict = {}
        if "metadata.json" in names:
            metadata = parse_json(_read_member(archive, "metadata.json", limits.max_config_bytes, path, limits),
                                  f"{path}: archive member metadata.json", limits)
        if "model.weights.h5" not in names:
            hint = " (it stores model.weights.npz, which is not supported)" if "model.weights.npz" in names else ""
            raise BadModelFile(f"{path}: the archive has no model.weights.h5{hint}")
        assets = {n: _read_member(archive, n, limits.max_config_bytes, path, limits)
                  for n in names if n.startswith("assets/") and not n.endswith("/")}
        weights_file = _extract_member(archive, "model.weights.h5", path, limits)
    try:
        h5 = open_hdf5(weights_file, f"{path}: archive member model.weights.h5", limits)
    except BaseException:
        os.unlink(weights_file)
        raise
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


def _read_member(archive: zipfile.ZipFile, name: str, limit: int, path: str, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """A small member (a JSON document), read in chunks so that a bomb stops early."""
    info = archive.getinfo(name)
    chunks: list[bytes] = []
    size = 0
    with member_errors(path, name), archive.open(name) as member:
        while chunk := member.read(1 << 20):
            size += len(chunk)
            if size > limit:
                raise BadModelFile(
                    f"{path}: archive member {name} is larger than {size_text(limit)} "
                    "(limit: Limits.max_config_bytes in tf2torch.limits)"
                )
            check_member_size(info, size, path, limits)
            chunks.append(chunk)
    return b"".join(chunks)


def _extract_member(archive: zipfile.ZipFile, name: str, path: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """Stream a member to a private temp file, counting real bytes (declared sizes lie)."""
    info = archive.getinfo(name)
    check_member_size(info, info.file_size, path, limits)
    handle, temp_path = tempfile.mkstemp(suffix=".h5", prefix="tf2torch-")
    written = 0
    try:
        with os.fdopen(handle, "wb") as out, member_errors(path, name), archive.open(name) as member:
            while chunk := member.read(1 << 20):
                written += len(chunk)
                check_member_size(info, written, path, limits)
                out.write(chunk)
    except BaseException:
        os.unlink(temp_path)
        raise
    return temp_path


class _Remover:
    def __init__(self, path: str) -> None:
        self._path = path

    def close(self) -> None:
        if os.path.exists(self._path):
            os.unlink(self._path)


def _load_legacy_h5(path: str, limits: Limits) -> KerasSource:
    h5 = open_hdf5(path, path, limits)
    try:
        raw_config = read_text_attribute(h5, "model_config", path, limits)
        if raw_config is None:
            raise BadModelFile(
                f"{path}: HDF5 file without a model_config attribute: it holds weights only. "
                "Save the whole model (model.save('model.h5')), not save_weights()."
            )
        config = parse_json(raw_config, f"{path}: the model_config attribute", limits, check_depth=False)
        check_model_config(config, path, limits)
        keras_version = read_text_attribute(h5, "keras_version", path, limits) or "2"
        training = read_text_attribute(h5, "training_config", path, limits)
        compile_config = parse_json(training, f"{path}: the training_config attribute", limits) if training else None
        group = h5.get("model_weights", h5)
    except BaseException:
        h5.close()
        raise
    major = 3 if keras_version.startswith("3") else 2
    source = KerasSource(path, major, config, LegacyH5WeightReader(group), compile_config, keras_version)
    source._resources.append(h5)
    return source

"""A TF.js `model.json`, read and validated without TensorFlow.js.

The document names its format ("layers-model": a Keras topology; "graph-model": a GraphDef in
protobuf JSON), holds the topology, and a `weightsManifest`: groups of shard files (`paths`,
next to model.json) and the weights stored in them, in order (`name`, `shape`, `dtype`,
optionally `quantization`). Every entry is checked here, before a shard is opened.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass
from typing import Any

from tf2torch.errors import BadModelFile
from tf2torch.frontends.keras.config_check import parse_json
from tf2torch.input_files import check_model_path, open_regular
from tf2torch.limits import DEFAULT_LIMITS, Limits, size_text

FORMATS = ("layers-model", "graph-model")

# Bytes per element as stored: the weight's own dtype, or its quantized storage dtype.
STORED_DTYPES = {"float32": 4, "int32": 4, "bool": 1}
QUANTIZED_DTYPES = {"uint8": 1, "uint16": 2, "float16": 2}


@dataclass(frozen=True)
class Quantization:
    dtype: str  # storage: uint8 / uint16 (affine: value = q * scale + min) or float16
    scale: float = 1.0
    minimum: float = 0.0


@dataclass(frozen=True)
class WeightEntry:
    name: str
    shape: tuple[int, ...]
    dtype: str  # the dtype the weight has once read (float32, int32, bool)
    quantization: Quantization | None
    group: int  # index of its group in the manifest

    @property
    def stored_bytes(self) -> int:
        itemsize = QUANTIZED_DTYPES[self.quantization.dtype] if self.quantization else STORED_DTYPES[self.dtype]
        return math.prod(self.shape) * itemsize


@dataclass
class TfjsModel:
    path: str  # model.json
    format: str
    topology: dict
    groups: list[list[str]]  # the shard paths of each manifest group, as written
    weights: list[WeightEntry]
    document: dict  # the whole model.json (signature, userDefinedMetadata, ...)

    @property
    def directory(self) -> str:
        return os.path.dirname(os.path.abspath(self.path))


def is_tfjs_path(source: Any) -> bool:
    """A .json path, or a regular file that starts with '{' (JSON, not a zip or HDF5 file):
    model.json of a TF.js model, which reading it confirms or refutes with a clear error."""
    if not isinstance(source, (str, os.PathLike)):
        return False
    if str(source).lower().endswith(".json"):
        return True
    try:
        if not stat.S_ISREG(os.stat(source).st_mode):
            return False  # a directory (SavedModel), FIFO, device: never opened here
        with os.fdopen(open_regular(str(source)), "rb") as handle:
            head = handle.read(64)
    except (OSError, BadModelFile):
        return False
    return head.lstrip().startswith(b"{")


def read_model_json(path: str, limits: Limits = DEFAULT_LIMITS) -> TfjsModel:
    """Parse and validate model.json; BadModelFile names the file and the entry at fault."""
    document = parse_json(_read_bounded(path, limits.max_config_bytes), path, limits)
    fmt = document.get("format")
    if fmt is None and "modelTopology" in document:
        # TF.js 1.x wrote layers models without a format field.
        fmt = "graph-model" if isinstance(document["modelTopology"], dict) and "node" in document["modelTopology"] \
            else "layers-model"
    if fmt not in FORMATS:
        if fmt is None:
            raise BadModelFile(f"{path}: not a TF.js model.json (it has no 'format' and no 'modelTopology'); "
                               "tf2torch reads .keras / .h5 files, and model.json files written by TensorFlow.js")
        raise BadModelFile(f"{path}: TF.js format {fmt!r} is not supported (supported: {', '.join(FORMATS)})")
    topology = document.get("modelTopology")
    if not isinstance(topology, dict):
        raise BadModelFile(f"{path}: 'modelTopology' must be a JSON object, not {_kind(topology)}")
    manifest = document.get("weightsManifest", [])
    groups, weights = _parse_manifest(manifest, path)
    total = sum(w.stored_bytes for w in weights)
    if total > limits.max_weight_bytes:
        raise BadModelFile(f"{path}: the manifest declares {size_text(total)} of weights, more than the limit "
                           f"{size_text(limits.max_weight_bytes)} (raise it with --max-weight-bytes)")
    return TfjsModel(path, fmt, topology, groups, weights, document)


def _read_bounded(path: str, limit: int) -> bytes:
    info = check_model_path(path)
    if info.st_size > limit:
        raise BadModelFile(f"{path}: is larger than {size_text(limit)} (limit: Limits.max_config_bytes in tf2torch.limits)")
    with os.fdopen(open_regular(path), "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise BadModelFile(f"{path}: is larger than {size_text(limit)} (limit: Limits.max_config_bytes in tf2torch.limits)")
    return data


def _kind(value: Any) -> str:
    return "missing" if value is None else f"a {type(value).__name__}"


def _parse_manifest(manifest: Any, path: str) -> tuple[list[list[str]], list[WeightEntry]]:
    if not isinstance(manifest, list):
        raise BadModelFile(f"{path}: 'weightsManifest' must be a list of groups, not {_kind(manifest)}")
    groups: list[list[str]] = []
    weights: list[WeightEntry] = []
    seen: set[str] = set()
    for g, group in enumerate(manifest):
        where = f"{path}: weightsManifest[{g}]"
        if not isinstance(group, dict):
            raise BadModelFile(f"{where} must be a JSON object, not {_kind(group)}")
        paths = group.get("paths")
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise BadModelFile(f"{where}: 'paths' must be a list of shard file names")
        entries = group.get("weights")
        if not isinstance(entries, list):
            raise BadModelFile(f"{where}: 'weights' must be a list, not {_kind(entries)}")
        if entries and not paths:
            raise BadModelFile(f"{where}: lists weights but no shard files ('paths' is empty)")
        groups.append(list(paths))
        for i, raw in enumerate(entries):
            entry = _parse_weight(raw, f"{where}.weights[{i}]", g)
            if entry.name in seen:
                raise BadModelFile(f"{where}.weights[{i}]: weight {entry.name!r} is listed twice")
            seen.add(entry.name)
            weights.append(entry)
    return groups, weights


def _parse_weight(raw: Any, where: str, group: int) -> WeightEntry:
    if not isinstance(raw, dict):
        raise BadModelFile(f"{where} must be a JSON object, not {_kind(raw)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise BadModelFile(f"{where}: 'name' must be a non-empty string")
    where = f"{where} ({name!r})"
    shape = raw.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise BadModelFile(f"{where}: 'shape' must be a list of non-negative integers, got {shape!r}"[:400])
    dtype = raw.get("dtype")
    if dtype not in STORED_DTYPES:
        hint = " (string and complex weights are not supported)" if dtype in ("string", "complex64") else ""
        raise BadModelFile(f"{where}: dtype {dtype!r} is not supported{hint}; expected one of {', '.join(STORED_DTYPES)}")
    quantization = _parse_quantization(raw.get("quantization"), where, dtype)
    return WeightEntry(name, tuple(shape), dtype, quantization, group)


def _parse_quantization(raw: Any, where: str, dtype: str) -> Quantization | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or raw.get("dtype") not in QUANTIZED_DTYPES:
        stored = raw.get("dtype") if isinstance(raw, dict) else raw
        raise BadModelFile(f"{where}: quantization dtype {stored!r} is not supported "
                           f"(expected one of {', '.join(QUANTIZED_DTYPES)})")
    if dtype == "bool":
        raise BadModelFile(f"{where}: a bool weight cannot be quantized")
    if raw["dtype"] == "float16":
        return Quantization("float16")
    scale, minimum = raw.get("scale"), raw.get("min")
    for key, value in (("scale", scale), ("min", minimum)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise BadModelFile(f"{where}: quantization {key!r} must be a finite number, got {value!r}")
    return Quantization(raw["dtype"], float(scale), float(minimum))

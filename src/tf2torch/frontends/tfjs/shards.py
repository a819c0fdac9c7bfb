"""The weight shards of a TF.js model: bounded reads of files next to model.json, decoding
and dequantization.

The shards of one manifest group are one byte stream cut into files; its weights lie in it
back to back, in manifest order. Nothing a file declares is trusted: a shard path must name
a regular file inside model.json's directory (no absolute path, no `..`, no symlink, no
FIFO or device), and the bytes found must be exactly the bytes the manifest's shapes need.
"""

from __future__ import annotations

import os
import re
import stat
import warnings

import numpy as np

from tf2torch.errors import BadModelFile
from tf2torch.frontends.tfjs.model_json import TfjsModel, WeightEntry
from tf2torch.input_files import file_kind, open_regular
from tf2torch.limits import size_text

_NUMPY_DTYPES = {"float32": "<f4", "int32": "<i4", "bool": "|b1", "uint8": "|u1", "uint16": "<u2", "float16": "<f2"}


def read_weights(model: TfjsModel) -> dict[str, np.ndarray]:
    """Every weight of the manifest by name, in manifest order, dequantized (with a warning
    naming the quantized weights)."""
    arrays: dict[str, np.ndarray] = {}
    for index, paths in enumerate(model.groups):
        entries = [w for w in model.weights if w.group == index]
        data = _read_group(model, index, paths, sum(w.stored_bytes for w in entries))
        offset = 0
        for entry in entries:
            arrays[entry.name] = _decode(entry, data[offset:offset + entry.stored_bytes])
            offset += entry.stored_bytes
    quantized = [w for w in model.weights if w.quantization is not None]
    if quantized:
        kinds = ", ".join(sorted({w.quantization.dtype for w in quantized if w.quantization}))
        names = ", ".join(w.name for w in quantized[:8]) + (", ..." if len(quantized) > 8 else "")
        warnings.warn(f"{model.path}: {len(quantized)} weights are stored quantized ({kinds}): {names}; they are "
                      "dequantized to float32, so the model computes what TF.js computes, not the unquantized "
                      "original", stacklevel=2)
    return arrays


def _decode(entry: WeightEntry, raw: bytes) -> np.ndarray:
    q = entry.quantization
    stored = np.frombuffer(raw, dtype=_NUMPY_DTYPES[q.dtype if q else entry.dtype]).reshape(entry.shape)
    if q is None:
        return stored.astype(stored.dtype.newbyteorder("="), copy=True)
    if q.dtype == "float16":
        values = stored.astype(np.float32)
    else:
        # TF.js dequantizes in float32: q * scale + min.
        values = stored.astype(np.float32) * np.float32(q.scale) + np.float32(q.minimum)
    return np.round(values).astype(np.int32) if entry.dtype == "int32" else values


def _read_group(model: TfjsModel, index: int, paths: list[str], expected: int) -> bytes:
    where = f"{model.path}: weightsManifest[{index}]"
    files = [_shard_path(model.directory, p, f"{where}: shard {p!r}") for p in paths]
    chunks: list[bytes] = []
    found = 0
    for name, full in zip(paths, files):
        fd = _open_shard(full, f"{where}: shard {name!r}")
        with os.fdopen(fd, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if found + size > expected:
                raise BadModelFile(
                    f"{where}: the shards hold more bytes than the weights listed need ({size_text(expected)}, "
                    f"{expected} bytes; shard {name!r} ends at byte {found + size}); the manifest does not "
                    "describe these files (wrong shapes or dtypes, or a shard of another model)")
            data = handle.read(size + 1)  # one byte more: a file that grew is caught too
        if len(data) != size:
            raise BadModelFile(f"{where}: shard {name!r} changed size while it was read")
        found += size
        chunks.append(data)
    if found != expected:
        raise BadModelFile(
            f"{where}: the shards hold {found} bytes, the weights listed need {expected} "
            f"({size_text(expected)}): a shard is truncated or missing, or the manifest's shapes are wrong")
    return b"".join(chunks)


_DRIVE = re.compile(r"^[A-Za-z]:")


def _shard_path(directory: str, name: str, where: str) -> str:
    """The file a manifest path names, refused unless it stays inside `directory`."""
    parts = re.split(r"[\\/]", name)
    if not name or "\0" in name or name.startswith(("/", "\\")) or _DRIVE.match(name) or "://" in name:
        raise BadModelFile(f"{where}: shard paths must be file names relative to model.json's directory; refused")
    if ".." in parts:
        raise BadModelFile(f"{where}: the path leads outside model.json's directory ('..'); refused")
    full = os.path.join(directory, *[p for p in parts if p not in ("", ".")])
    current = directory
    for part in [p for p in parts if p not in ("", ".")]:
        current = os.path.join(current, part)
        if os.path.islink(current):
            raise BadModelFile(f"{where}: {os.path.relpath(current, directory)} is a symlink; shards must be "
                               "regular files next to model.json; refused")
    return full


def _open_shard(full: str, where: str) -> int:
    try:
        info = os.lstat(full)
    except FileNotFoundError:
        raise BadModelFile(f"{where}: no such file next to model.json (a shard is missing)") from None
    except OSError as exc:
        raise BadModelFile(f"{where}: cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise BadModelFile(f"{where}: is {file_kind(info.st_mode)}, not a weight shard; it was not opened")
    try:
        return open_regular(full)
    except OSError as exc:
        raise BadModelFile(f"{where}: cannot be read ({exc.strerror})") from None

"""Malformed and hostile model files, derived from small valid fixtures (make_fixtures.py).

Each family is a function `(rng, fixtures, case_dir) -> Case`: it writes one malformed input
into `case_dir` (next to a FIFO canary, `canary.fifo`, that no conversion may open: opening a
FIFO for reading blocks, so reading it shows up as a timeout) and says what must happen.

Expectations:
- REJECT: exit 2, one line naming the file, nothing written, nothing left behind.
- CONVERT_WARN: the file is valid but unusual (float16 weights, NaN): exit 0 and a warning.
- EITHER: the damage may or may not be detectable (a flipped bit inside raw weight bytes has
  no checksum in HDF5): a clean rejection or a complete conversion, never anything else.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import socket
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

REJECT = "reject"
CONVERT_WARN = "convert with a warning"
EITHER = "reject or convert"


@dataclass
class Case:
    family: str
    source: str  # the path given to the CLI
    expect: str
    extra_args: tuple[str, ...] = ()


@dataclass
class Fixtures:
    keras: Path  # a Keras 3 .keras: Input(5,7,3) -> Conv2D -> BN -> ReLU -> Flatten -> Dense
    h5: Path  # a tf_keras .h5: Sequential Dense(5, tanh) -> Dense(2)
    saved_model: Path
    frozen: Path


# -- zip helpers --------------------------------------------------------------------------------


def read_members(path: Path) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(path) as archive:
        return [(info, archive.read(info)) for info in archive.infolist()]


def write_members(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in members:
            archive.writestr(info, data)


def replace_member(fixture: Path, out: Path, name: str, data: bytes) -> None:
    write_members(out, [(info, data if info.filename == name else blob) for info, blob in read_members(fixture)])


def keras_config(fixture: Path) -> dict:
    with zipfile.ZipFile(fixture) as archive:
        return json.loads(archive.read("config.json"))


def keras_weights(fixture: Path, scratch: Path) -> Path:
    with zipfile.ZipFile(fixture) as archive:
        target = scratch / "weights-scratch.h5"
        target.write_bytes(archive.read("model.weights.h5"))
    return target


def with_weights(fixture: Path, out: Path, weights: Path) -> None:
    replace_member(fixture, out, "model.weights.h5", weights.read_bytes())
    weights.unlink()


# -- byte-level damage --------------------------------------------------------------------------


def truncated(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(0, len(data))]


def bit_flipped(data: bytes, rng: random.Random) -> bytes:
    damaged = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
    return bytes(damaged)


def spliced(data: bytes, other: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(1, len(data))] + other[rng.randrange(0, len(other)) :]


# -- the families -------------------------------------------------------------------------------


def zip_truncated(rng, fx, d):
    out = d / "model.keras"
    out.write_bytes(truncated(fx.keras.read_bytes(), rng))
    return Case("zip truncated", str(out), REJECT)


def zip_bit_flipped(rng, fx, d):
    out = d / "model.keras"
    out.write_bytes(bit_flipped(fx.keras.read_bytes(), rng))
    return Case("zip bit-flipped", str(out), EITHER)


def zip_spliced(rng, fx, d):
    out = d / "model.keras"
    out.write_bytes(spliced(fx.keras.read_bytes(), fx.h5.read_bytes(), rng))
    return Case("zip spliced", str(out), EITHER)


def _extra_member(rng, fx, d, family: str, name: str, info_edit: Callable | None = None) -> Case:
    out = d / "model.keras"
    members: list = list(read_members(fx.keras))
    info = zipfile.ZipInfo(name)
    if info_edit:
        info_edit(info)
    members.insert(rng.randrange(len(members) + 1), (info, b"../../canary.fifo"))
    write_members(out, members)
    return Case(family, str(out), REJECT)


def zip_traversal_member(rng, fx, d):
    name = rng.choice(["../evil.py", "assets/../../evil", "a/../../../tmp/evil", "..\\evil"])
    return _extra_member(rng, fx, d, "zip traversal member", name)


def zip_absolute_member(rng, fx, d):
    return _extra_member(rng, fx, d, "zip absolute member", rng.choice(["/tmp/evil", "/etc/evil.json", "C:/evil"]))


def zip_symlink_member(rng, fx, d):
    def as_symlink(info: zipfile.ZipInfo) -> None:
        info.create_system = 3
        info.external_attr = (0o120777 << 16)

    name = rng.choice(["assets/link", "model.weights.h5.link", "link"])
    return _extra_member(rng, fx, d, "zip symlink member", name, as_symlink)


def zip_duplicate_member(rng, fx, d):
    out = d / "model.keras"
    members: list = list(read_members(fx.keras))
    info, data = rng.choice(members)
    replacement = data[: len(data) // 2] if rng.random() < 0.5 else data
    members.append((zipfile.ZipInfo(info.filename), replacement))
    write_members(out, members)
    return Case("zip duplicate member", str(out), REJECT)


_BOMB_CACHE: dict[str, bytes] = {}


def _bomb_archive(fixture: Path, name: str, size: int, fill: int) -> bytes:
    """The fixture with member `name` replaced by `size` bytes of `fill` (deflated to almost
    nothing), streamed so that the generator never holds the bomb in memory."""
    if name not in _BOMB_CACHE:
        buffer = io.BytesIO()
        chunk = bytes([fill]) * (1 << 20)
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for info, data in read_members(fixture):
                if info.filename != name:
                    archive.writestr(info, data)
            with archive.open(name, "w", force_zip64=True) as member:
                for _ in range(size >> 20):
                    member.write(chunk)
        _BOMB_CACHE[name] = buffer.getvalue()
    return _BOMB_CACHE[name]


def zip_bomb(rng, fx, d):
    out = d / "model.keras"
    name = rng.choice(["config.json", "model.weights.h5"])
    # 96 MiB deflated to ~100 KiB (a bigger bomb is refused at the same point: the ratio).
    out.write_bytes(_bomb_archive(fx.keras, name, 96 << 20, 0x20 if name == "config.json" else 0))
    return Case("zip bomb", str(out), REJECT)


def _with_config(fx: Fixtures, d: Path, family: str, config: Any, expect: str = REJECT, raw: bytes | None = None) -> Case:
    out = d / "model.keras"
    replace_member(fx.keras, out, "config.json", raw if raw is not None else json.dumps(config).encode())
    return Case(family, str(out), expect)


def _h5_with_config(fx: Fixtures, d: Path, family: str, config: Any, expect: str = REJECT, raw: str | None = None) -> Case:
    out = d / "model.h5"
    shutil.copyfile(fx.h5, out)
    with h5py.File(out, "r+") as h5:
        h5.attrs["model_config"] = raw if raw is not None else json.dumps(config)
    return Case(family, str(out), expect)


def h5_model_config(fx: Fixtures) -> dict:
    with h5py.File(fx.h5, "r") as h5:
        return json.loads(h5.attrs["model_config"])


def json_deep(rng, fx, d):
    depth = rng.choice([2_000, 50_000, 200_000])
    nested = "[" * depth + "]" * depth
    if rng.random() < 0.5:
        config = keras_config(fx.keras)
        text = json.dumps(config).replace('"trainable": true', '"trainable": ' + nested, 1)
    else:
        text = nested
    if rng.random() < 0.5:
        return _h5_with_config(fx, d, "json deeply nested", None, raw=text)
    return _with_config(fx, d, "json deeply nested", None, raw=text.encode())


def json_invalid(rng, fx, d):
    text = json.dumps(keras_config(fx.keras)).encode()
    raw = rng.choice([truncated(text, rng), b"\xff\xfe" + text, b"", b"null", b"[1, 2]", b'"model"', b"NaN"])
    return _with_config(fx, d, "json invalid", None, raw=raw)


def _layers(config: dict) -> list[dict]:
    return config["config"]["layers"]


# Keys that decide a layer's computation or its weights' shapes: wrong values must be refused.
STRUCTURAL = {
    "Conv2D": ["filters", "kernel_size", "strides", "padding", "dilation_rate", "data_format", "activation"],
    "Dense": ["units", "activation", "use_bias"],
    "BatchNormalization": ["axis", "center", "scale"],
    "InputLayer": ["batch_shape", "batch_input_shape"],
    "Flatten": ["data_format"],
    "ReLU": ["max_value", "negative_slope"],
}
WRONG_VALUES = ["abc", None, -3, 0, 1e30, [], {}, [1, "x"], {"a": 1}, 2**70, -1.5]


def config_wrong_type(rng, fx, d):
    use_h5 = rng.random() < 0.4
    config = h5_model_config(fx) if use_h5 else keras_config(fx.keras)
    layers = [layer for layer in _layers(config) if layer["class_name"] in STRUCTURAL]
    layer = rng.choice(layers)
    keys = [k for k in STRUCTURAL[layer["class_name"]] if k in layer["config"]]
    key = rng.choice(keys)
    original = layer["config"][key]
    value = rng.choice([v for v in WRONG_VALUES if v != original and not (isinstance(original, bool) and v in (0,))])
    if key in ("center", "scale", "use_bias"):
        value = rng.choice(["abc", 3, None, [], {}])
    elif key in ("max_value", "negative_slope"):  # any non-negative number is valid here
        value = rng.choice(["abc", [], {}, -3, [1, "x"]])
    layer["config"][key] = value
    if use_h5:
        return _h5_with_config(fx, d, "config wrong type", config)
    return _with_config(fx, d, "config wrong type", config)


def config_structure_wrong(rng, fx, d):
    """Wrong types where the model graph is described: layers, class names, node lists."""
    use_h5 = rng.random() < 0.4
    config = h5_model_config(fx) if use_h5 else keras_config(fx.keras)
    layer = rng.choice(_layers(config))
    targets = [(config, "class_name"), (config, "config"), (config["config"], "layers"), (layer, "class_name"),
               (layer, "config"), (layer, "inbound_nodes"), (layer["config"], "name"), (config["config"], "input_layers"),
               (config["config"], "output_layers")]
    target, key = rng.choice([(holder, key) for holder, key in targets if key in holder])
    values = [None, 17, "abc", [], {}, [[1, 2]], {"x": []}, True]
    if target is layer["config"]:
        values.remove("abc")  # another name in the config is valid: Keras names the layer by it
    if target is layer and key == "config":
        values.remove({})  # no arguments is valid for a layer whose arguments all have defaults
    target[key] = rng.choice(values)
    if use_h5:
        return _h5_with_config(fx, d, "config structure wrong", config)
    return _with_config(fx, d, "config structure wrong", config)


REQUIRED = ["class_name", "config", "units", "filters", "kernel_size", "layers", "inbound_nodes", "input_layers",
            "output_layers", "batch_shape", "batch_input_shape"]


def config_missing_key(rng, fx, d):
    use_h5 = rng.random() < 0.4
    config = h5_model_config(fx) if use_h5 else keras_config(fx.keras)
    holders = [config, config["config"]] + _layers(config) + [layer["config"] for layer in _layers(config)]
    candidates = [(h, k) for h in holders for k in REQUIRED if k in h and not (k == "inbound_nodes" and not h[k])]
    candidates += [(layer, "name") for layer in _layers(config)]  # a layer without any name
    holder, key = rng.choice(candidates)
    if key == "name":
        holder.pop("name", None)
        holder["config"].pop("name", None)
    else:
        del holder[key]
    if use_h5:
        return _h5_with_config(fx, d, "config missing key", config)
    return _with_config(fx, d, "config missing key", config)


def config_cycle(rng, fx, d):
    config = keras_config(fx.keras)
    layers = [layer for layer in _layers(config) if layer["inbound_nodes"]]
    # The fixture is a chain: a layer that consumes a later one (or itself) closes a cycle.
    i = rng.randrange(len(layers))
    j = rng.randrange(i, len(layers))
    history = layers[i]["inbound_nodes"][0]["args"][0]["config"]["keras_history"]
    history[0] = layers[j]["name"]
    return _with_config(fx, d, "config cycle", config)


def shape_bomb(rng, fx, d):
    use_h5 = rng.random() < 0.4
    config = h5_model_config(fx) if use_h5 else keras_config(fx.keras)
    first = _layers(config)[0]["config"]
    key = "batch_shape" if "batch_shape" in first else "batch_input_shape"
    huge = rng.choice([10**9, 2**40, 10**18])
    shape = list(first[key])
    for i in range(1, len(shape)):
        if rng.random() < 0.7:
            shape[i] = huge
    shape[-1 if rng.random() < 0.3 else 1] = huge
    first[key] = shape
    if use_h5:
        return _h5_with_config(fx, d, "shape bomb", config)
    return _with_config(fx, d, "shape bomb", config)


def too_many_layers(rng, fx, d):
    config = keras_config(fx.keras)
    relu = next(layer for layer in _layers(config) if layer["class_name"] == "ReLU")
    layers = _layers(config)
    previous = relu["name"]
    copies = []
    template = json.dumps(relu)
    for i in range(100_001):
        layer = json.loads(template)
        layer["name"] = layer["config"]["name"] = f"relu_{i}"
        layer["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = [previous, 0, 0]
        previous = layer["name"]
        copies.append(layer)
    layers.extend(copies)
    return _with_config(fx, d, "too many layers", config)


def limits_lowered(rng, fx, d):
    """An honest model over a limit the user lowered: the option is honoured and named."""
    if rng.random() < 0.5:
        out = d / "model.keras"
        shutil.copyfile(fx.keras, out)
    else:
        out = d / "model.h5"
        shutil.copyfile(fx.h5, out)
    option = rng.choice([("--max-weight-bytes", str(rng.randrange(10, 150))), ("--max-layers", str(rng.randrange(1, 3)))])
    return Case("limits lowered", str(out), REJECT, option)


# -- weights --------------------------------------------------------------------------------------


def _weight_datasets(h5: h5py.File) -> list[str]:
    root = h5.get("model_weights", h5)
    names: list[str] = []
    root.visititems(lambda name, obj: names.append(obj.name) if isinstance(obj, h5py.Dataset) else None)
    return names


def _weights_case(rng, fx, d, family: str, edit: Callable[[h5py.File, str], None], expect: str = REJECT) -> Case:
    """Apply `edit(file, dataset_path)` to one weight of the .keras archive or the .h5 file."""
    if rng.random() < 0.5:
        out = d / "model.h5"
        shutil.copyfile(fx.h5, out)
        with h5py.File(out, "r+") as h5:
            edit(h5, rng.choice(_weight_datasets(h5)))
        return Case(family, str(out), expect)
    out = d / "model.keras"
    weights = keras_weights(fx.keras, d)
    with h5py.File(weights, "r+") as h5:
        edit(h5, rng.choice(_weight_datasets(h5)))
    with_weights(fx.keras, out, weights)
    return Case(family, str(out), expect)


def _replace(h5: h5py.File, path: str, **create: Any) -> None:
    del h5[path]
    h5.create_dataset(path, **create)


def weights_wrong_shape(rng, fx, d):
    def edit(h5, path):
        shape = list(h5[path].shape)
        choice = rng.randrange(3)
        if choice == 0 and shape:
            i = rng.randrange(len(shape))
            shape[i] += rng.choice([1, 2, 7])
        elif choice == 1:
            shape = shape + [1] if rng.random() < 0.5 else [int(np.prod(shape))]
            if len(shape) == 1 and shape == list(h5[path].shape):
                shape = [shape[0], 1]
        else:
            shape = shape[::-1] if len(set(shape)) > 1 else shape + [2]
        _replace(h5, path, data=np.ones(shape, np.float32))

    return _weights_case(rng, fx, d, "weights wrong shape", edit)


def weights_wrong_dtype(rng, fx, d):
    def edit(h5, path):
        shape = h5[path].shape
        dtype = rng.choice(["int32", "int8", "bool", "complex64", "S4", "uint16"])
        _replace(h5, path, data=np.ones(shape, dtype=dtype))

    return _weights_case(rng, fx, d, "weights wrong dtype", edit)


def weights_wrong_count(rng, fx, d):
    def edit(h5, path):
        parent = path.rsplit("/", 1)[0]
        if "weight_names" in h5[parent].attrs or any("weight_names" in h5[p].attrs for p in _parents(path)):
            holder = next(p for p in _parents(path) if "weight_names" in h5[p].attrs)
            names = list(h5[holder].attrs["weight_names"])
            h5[holder].attrs["weight_names"] = names[:-1] if rng.random() < 0.5 or len(names) < 2 else names + names[:1]
        elif rng.random() < 0.5:
            del h5[path]
        else:
            extra = str(max(int(k) for k in h5[parent]) + 1)
            h5[parent].create_dataset(extra, data=np.ones((3,), np.float32))

    return _weights_case(rng, fx, d, "weights wrong count", edit)


def _parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def weights_float_variants(rng, fx, d):
    def edit(h5, path):
        data = h5[path][()]
        _replace(h5, path, data=data.astype(rng.choice(["float16", "float64"])))

    return _weights_case(rng, fx, d, "weights float16/float64", edit, CONVERT_WARN)


def weights_nan(rng, fx, d):
    def edit(h5, path):
        data = np.array(h5[path][()], np.float32)
        data.flat[rng.randrange(data.size)] = rng.choice([np.nan, np.inf, -np.inf])
        _replace(h5, path, data=data)

    return _weights_case(rng, fx, d, "weights NaN/Inf", edit, CONVERT_WARN)


def h5_external_link(rng, fx, d):
    fifo = str(d / "canary.fifo")

    def edit(h5, path):
        del h5[path]
        h5[path] = h5py.ExternalLink(rng.choice([fifo, "canary.fifo", "../" + d.name + "/canary.fifo"]), "/data")

    return _weights_case(rng, fx, d, "hdf5 external link", edit)


def h5_soft_link(rng, fx, d):
    def edit(h5, path):
        others = [p for p in _weight_datasets(h5) if p != path]
        del h5[path]
        h5[path] = h5py.SoftLink(rng.choice([path, "/nowhere/at/all", rng.choice(others), path.rsplit("/", 1)[0]]))

    return _weights_case(rng, fx, d, "hdf5 soft link", edit)


def h5_external_storage(rng, fx, d):
    fifo = str(d / "canary.fifo")

    def edit(h5, path):
        dataset = h5[path]
        shape, dtype = dataset.shape, dataset.dtype
        del h5[path]
        h5.create_dataset(path, shape=shape, dtype=dtype, external=[(fifo, 0, h5py.h5f.UNLIMITED)])

    return _weights_case(rng, fx, d, "hdf5 external storage", edit)


def h5_virtual_dataset(rng, fx, d):
    fifo = str(d / "canary.fifo")

    def edit(h5, path):
        dataset = h5[path]
        shape, dtype = dataset.shape, dataset.dtype
        del h5[path]
        layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
        layout[...] = h5py.VirtualSource(rng.choice([fifo, "canary.fifo"]), "data", shape=shape)
        h5.create_virtual_dataset(path, layout, fillvalue=0)

    return _weights_case(rng, fx, d, "hdf5 virtual dataset", edit)


def h5_chunk_bomb(rng, fx, d):
    """A weight declared huge, stored as a few compressed chunks of zeros."""

    def edit(h5, path):
        del h5[path]
        n = rng.choice([2**16, 2**17])
        h5.create_dataset(path, shape=(n, n), dtype="float32", chunks=(1024, 1024), compression="gzip", fillvalue=0)

    return _weights_case(rng, fx, d, "hdf5 chunk bomb", edit)


def h5_truncated(rng, fx, d):
    out = d / "model.h5"
    out.write_bytes(truncated(fx.h5.read_bytes(), rng))
    return Case("hdf5 truncated", str(out), REJECT)


def h5_bit_flipped(rng, fx, d):
    out = d / "model.h5"
    out.write_bytes(bit_flipped(fx.h5.read_bytes(), rng))
    return Case("hdf5 bit-flipped", str(out), EITHER)


def h5_spliced(rng, fx, d):
    out = d / "model.h5"
    out.write_bytes(spliced(fx.h5.read_bytes(), fx.keras.read_bytes(), rng))
    return Case("hdf5 spliced", str(out), EITHER)


def h5_in_keras_damaged(rng, fx, d):
    """model.weights.h5 inside a valid zip is truncated or bit-flipped."""
    out = d / "model.keras"
    with zipfile.ZipFile(fx.keras) as archive:
        data = archive.read("model.weights.h5")
    damaged = truncated(data, rng) if rng.random() < 0.5 else bit_flipped(data, rng)
    replace_member(fx.keras, out, "model.weights.h5", damaged)
    return Case("hdf5 in .keras damaged", str(out), EITHER)


# -- special input files ---------------------------------------------------------------------------


def input_special(rng, fx, d):
    kind = rng.choice(["fifo", "symlink to fifo", "device", "symlink to device", "socket", "empty", "directory",
                       "missing", "dangling symlink"])
    out = d / f"model-{kind.replace(' ', '-')}.keras"
    if kind == "fifo":
        os.mkfifo(out)
    elif kind == "symlink to fifo":
        out.symlink_to(d / "canary.fifo")
    elif kind == "device":
        out = Path("/dev/zero")
    elif kind == "symlink to device":
        out.symlink_to("/dev/zero")
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        cwd = os.getcwd()
        os.chdir(d)  # a socket path is limited to 108 bytes (deep pytest temp dirs): bind by its name
        try:
            server.bind(out.name)
        finally:
            os.chdir(cwd)
            server.close()
    elif kind == "empty":
        out.write_bytes(b"")
    elif kind == "directory":
        out.mkdir()
    elif kind == "dangling symlink":
        out.symlink_to(d / "nowhere.keras")
    return Case("input special file", str(out), REJECT)


# -- SavedModel / frozen graph -------------------------------------------------------------------


def saved_model_broken(rng, fx, d):
    out = d / "saved_model"
    shutil.copytree(fx.saved_model, out)
    kind = rng.choice(["pb truncated", "pb bit-flipped", "pb garbage", "no variables", "index garbage",
                       "data truncated", "pb fifo", "variables symlink outside", "pb empty"])
    pb = out / "saved_model.pb"
    if kind == "pb truncated":
        pb.write_bytes(truncated(pb.read_bytes(), rng))
    elif kind == "pb bit-flipped":
        pb.write_bytes(bit_flipped(pb.read_bytes(), rng))
    elif kind == "pb garbage":
        pb.write_bytes(rng.randbytes(rng.randrange(1, 4096)))
    elif kind == "pb empty":
        pb.write_bytes(b"")
    elif kind == "no variables":
        shutil.rmtree(out / "variables")
    elif kind == "index garbage":
        (out / "variables" / "variables.index").write_bytes(rng.randbytes(200))
    elif kind == "data truncated":
        data = next((out / "variables").glob("variables.data-*"))
        data.write_bytes(truncated(data.read_bytes(), rng))
    elif kind == "pb fifo":
        pb.unlink()
        os.mkfifo(pb)
    elif kind == "variables symlink outside":
        moved = d / "elsewhere"
        shutil.move(out / "variables", moved)
        (out / "variables").symlink_to(moved)
    expect = EITHER if kind == "pb bit-flipped" else REJECT
    return Case("savedmodel broken", str(out), expect)


def frozen_graph_broken(rng, fx, d):
    out = d / "model.pb"
    data = fx.frozen.read_bytes()
    out.write_bytes(rng.choice([truncated(data, rng), bit_flipped(data, rng), rng.randbytes(300), b""]))
    return Case("frozen graph broken", str(out), EITHER)


FAMILIES: dict[str, Callable[[random.Random, Fixtures, Path], Case]] = {
    "zip_truncated": zip_truncated,
    "zip_bit_flipped": zip_bit_flipped,
    "zip_spliced": zip_spliced,
    "zip_traversal_member": zip_traversal_member,
    "zip_absolute_member": zip_absolute_member,
    "zip_symlink_member": zip_symlink_member,
    "zip_duplicate_member": zip_duplicate_member,
    "zip_bomb": zip_bomb,
    "json_deep": json_deep,
    "json_invalid": json_invalid,
    "config_wrong_type": config_wrong_type,
    "config_structure_wrong": config_structure_wrong,
    "config_missing_key": config_missing_key,
    "config_cycle": config_cycle,
    "shape_bomb": shape_bomb,
    "too_many_layers": too_many_layers,
    "limits_lowered": limits_lowered,
    "weights_wrong_shape": weights_wrong_shape,
    "weights_wrong_dtype": weights_wrong_dtype,
    "weights_wrong_count": weights_wrong_count,
    "weights_float_variants": weights_float_variants,
    "weights_nan": weights_nan,
    "h5_external_link": h5_external_link,
    "h5_soft_link": h5_soft_link,
    "h5_external_storage": h5_external_storage,
    "h5_virtual_dataset": h5_virtual_dataset,
    "h5_chunk_bomb": h5_chunk_bomb,
    "h5_truncated": h5_truncated,
    "h5_bit_flipped": h5_bit_flipped,
    "h5_spliced": h5_spliced,
    "h5_in_keras_damaged": h5_in_keras_damaged,
    "input_special": input_special,
    "saved_model_broken": saved_model_broken,
    "frozen_graph_broken": frozen_graph_broken,
}

from fuzz_tfjs import TFJS_FAMILIES  # (it builds on the helpers above)

FAMILIES.update(TFJS_FAMILIES)
# Families whose default run (not the slow sweep) takes 2 seeds: keeps the default run short.
QUICK_FAMILIES = set(TFJS_FAMILIES)

# Families whose cases need TensorFlow in the converting process (slow to start): fewer cases.
TF_FAMILIES = {"saved_model_broken", "frozen_graph_broken"}
# Families with few distinct cases, or expensive ones.
SMALL_FAMILIES = {"zip_bomb": 2, "too_many_layers": 1, "h5_chunk_bomb": 2}
# Expensive (a 100,001-layer config): only in the slow sweep.
SLOW_FAMILIES = {"too_many_layers"}


def make_case(family: str, seed: int, fixtures: Fixtures, case_dir: Path) -> Case:
    """Case `seed` of `family`, written into `case_dir` next to its FIFO canary."""
    case_dir.mkdir(parents=True, exist_ok=True)
    os.mkfifo(case_dir / "canary.fifo")
    rng = random.Random(f"{family}:{seed}")
    return FAMILIES[family](rng, fixtures, case_dir)

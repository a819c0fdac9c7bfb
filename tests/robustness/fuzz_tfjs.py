"""Malformed and hostile TF.js models (model.json + shards), derived from the committed
tests/fixtures/tfjs fixtures; registered in fuzz_cases.FAMILIES. Every case is written into
its own directory, next to the FIFO canary no conversion may open."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from fuzz_cases import EITHER, REJECT, Case, Fixtures, bit_flipped, truncated

TFJS_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tfjs"
SHARD = "group1-shard1of1.bin"

# Values no manifest field accepts in the place they are put.
HOSTILE = [None, -1, 2**70, 1e308, "x", "", [], {}, [[[]]], True]


def _copy(rng: random.Random, d: Path, graph: bool = True) -> Path:
    """A copy of a fixture (a graph-model only where the case is rejected before TensorFlow
    would load: converting one needs it)."""
    fixtures = ["small_cnn_layers", "small_cnn_layers_uint8", "keras3_layers"] + (["small_cnn_graph"] if graph else [])
    fixture = rng.choice(fixtures)
    target = d / "web_model"
    shutil.copytree(TFJS_FIXTURES / fixture, target)
    (target / "expected.npz").unlink()
    return target / "model.json"


def _case(family: str, model_json: Path, expect: str = REJECT) -> Case:
    return Case(family, str(model_json), expect)


def tfjs_json_damaged(rng: random.Random, fx: Fixtures, d: Path) -> Case:
    model_json = _copy(rng, d)
    text = model_json.read_bytes()
    model_json.write_bytes(rng.choice([truncated(text, rng), b"\xff\xfe" + text, b"[]", b"null", b"{}"]))
    return _case("tfjs model.json damaged", model_json)


def tfjs_manifest_hostile(rng: random.Random, fx: Fixtures, d: Path) -> Case:
    """One manifest entry replaced by a value it cannot hold (never a valid one)."""
    model_json = _copy(rng, d)
    document = json.loads(model_json.read_text())
    group = document["weightsManifest"][0]
    weight = rng.choice(group["weights"])
    place = rng.choice(["shape", "dim", "dtype", "name", "paths", "path", "group", "quantization"])
    if place == "shape":
        weight["shape"] = rng.choice([None, "8", 8, [-1], [1.5], [2**40, 2**40]])
    elif place == "dim" and weight["shape"]:
        weight["shape"][rng.randrange(len(weight["shape"]))] = rng.choice([-3, "3", 2.5, None, 2**62])
    elif place == "dtype":
        weight["dtype"] = rng.choice(["string", "complex64", "float64", None, 4])
    elif place == "name":
        weight["name"] = rng.choice([None, "", 7, ["a"]])
    elif place == "paths":
        group["paths"] = rng.choice([None, "x.bin", [3], {}])
    elif place == "path":
        group["paths"] = [rng.choice(["../" + SHARD, "/etc/passwd", "canary.fifo", "../canary.fifo", "C:\\w.bin",
                                      "https://example.com/w.bin", "a/../../" + SHARD, "missing.bin"])]
    elif place == "group":
        document["weightsManifest"][0] = rng.choice(HOSTILE)
    else:
        weight["quantization"] = rng.choice([{"dtype": "int8", "scale": 1, "min": 0}, {"dtype": "uint8"},
                                             {"dtype": "uint8", "scale": float("inf"), "min": 0}, "uint8", []])
    if place == "dim" and not weight["shape"]:
        weight["shape"] = [-1]
    model_json.write_text(json.dumps(document))
    return _case("tfjs manifest hostile", model_json)


def tfjs_shard_wrong_size(rng: random.Random, fx: Fixtures, d: Path) -> Case:
    model_json = _copy(rng, d)
    shard = model_json.parent / SHARD
    data = shard.read_bytes()
    shard.write_bytes(rng.choice([data[: rng.randrange(len(data))], data + bytes(rng.randrange(1, 64))]))
    return _case("tfjs shard wrong size", model_json)


def tfjs_shard_not_a_file(rng: random.Random, fx: Fixtures, d: Path) -> Case:
    """The shard is a symlink (to the canary or outside), a directory or the FIFO itself."""
    model_json = _copy(rng, d)
    shard = model_json.parent / SHARD
    shard.unlink()
    kind = rng.choice(["symlink-canary", "symlink-outside", "directory"])
    if kind == "symlink-canary":
        shard.symlink_to(d / "canary.fifo")
    elif kind == "symlink-outside":
        (d / "outside.bin").write_bytes(b"\0" * 4096)
        shard.symlink_to(d / "outside.bin")
    else:
        shard.mkdir()
    return _case("tfjs shard not a regular file", model_json)


def tfjs_shard_bit_flipped(rng: random.Random, fx: Fixtures, d: Path) -> Case:
    """Raw weight bytes have no checksum: a flipped bit converts (maybe with a NaN warning)."""
    model_json = _copy(rng, d, graph=False)
    shard = model_json.parent / SHARD
    shard.write_bytes(bit_flipped(shard.read_bytes(), rng))
    return _case("tfjs shard bit flipped", model_json, EITHER)


TFJS_FAMILIES = {
    "tfjs_json_damaged": tfjs_json_damaged,
    "tfjs_manifest_hostile": tfjs_manifest_hostile,
    "tfjs_shard_wrong_size": tfjs_shard_wrong_size,
    "tfjs_shard_not_a_file": tfjs_shard_not_a_file,
    "tfjs_shard_bit_flipped": tfjs_shard_bit_flipped,
}

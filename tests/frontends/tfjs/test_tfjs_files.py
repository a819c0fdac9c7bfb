"""Damaged or hostile TF.js model.json files and shards: each is a BadModelFile naming the
file and the place in it (never a traceback, never a read outside model.json's directory)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from tfjs_fixtures import GRAPH, LAYERS, copy_fixture, edit_model_json

import tf2torch
from tf2torch.errors import BadModelFile
from tf2torch.frontends.tfjs.model_json import read_model_json
from tf2torch.frontends.tfjs.shards import read_weights
from tf2torch.limits import Limits

SHARD = "group1-shard1of1.bin"


def _weights(document: dict) -> list[dict]:
    return document["weightsManifest"][0]["weights"]


# (id, edit of the model.json document, expected message)
DOCUMENT_EDITS = [
    ("no-format", lambda d: (d.pop("format"), d.pop("modelTopology")), r"not a TF\.js model\.json"),
    ("unknown-format", lambda d: d.update(format="saved-model"), r"TF\.js format 'saved-model' is not supported"),
    ("topology-not-object", lambda d: d.update(modelTopology=[1]), r"'modelTopology' must be a JSON object, not a list"),
    ("manifest-not-list", lambda d: d.update(weightsManifest={}), r"'weightsManifest' must be a list of groups"),
    ("group-not-object", lambda d: d.update(weightsManifest=[3]), r"weightsManifest\[0\] must be a JSON object"),
    ("paths-missing", lambda d: d["weightsManifest"][0].pop("paths"), r"weightsManifest\[0\]: 'paths' must be a list"),
    ("paths-empty", lambda d: d["weightsManifest"][0].update(paths=[]), r"lists weights but no shard files"),
    ("weights-not-list", lambda d: d["weightsManifest"][0].update(weights="w"), r"'weights' must be a list, not a str"),
    ("weight-no-name", lambda d: _weights(d)[0].pop("name"), r"weights\[0\]: 'name' must be a non-empty string"),
    ("negative-dim", lambda d: _weights(d)[0].update(shape=[-8]), r"'shape' must be a list of non-negative integers"),
    ("string-dim", lambda d: _weights(d)[0].update(shape=["8"]), r"'shape' must be a list of non-negative integers"),
    ("string-dtype", lambda d: _weights(d)[0].update(dtype="string"), r"dtype 'string' is not supported \(string"),
    ("int8-quantization", lambda d: _weights(d)[0].update(quantization={"dtype": "int8", "scale": 1, "min": 0}),
     r"quantization dtype 'int8' is not supported"),
    ("nan-scale", lambda d: _weights(d)[0].update(quantization={"dtype": "uint8", "scale": float("nan"), "min": 0}),
     r"quantization 'scale' must be a finite number"),
    ("duplicate-name", lambda d: _weights(d)[1].update(name=_weights(d)[0]["name"]), r"'bn/gamma' is listed twice"),
    ("shape-needs-more-bytes", lambda d: _weights(d)[0].update(shape=[9]),
     r"the shards hold 2324 bytes, the weights listed need 2328"),
    ("shape-needs-fewer-bytes", lambda d: _weights(d)[0].update(shape=[7]),
     r"the shards hold more bytes than the weights listed need \(.*2320 bytes"),
    ("shard-missing", lambda d: d["weightsManifest"][0].update(paths=[SHARD, "group1-shard2of2.bin"]),
     r"shard 'group1-shard2of2.bin': no such file next to model.json"),
    ("parent-path", lambda d: d["weightsManifest"][0].update(paths=["../m/" + SHARD]),
     r"shard '\.\./m/group1-shard1of1\.bin': the path leads outside model\.json's directory"),
    ("absolute-path", lambda d: d["weightsManifest"][0].update(paths=["/etc/passwd"]),
     r"shard '/etc/passwd': shard paths must be file names relative to model\.json's directory"),
    ("windows-path", lambda d: d["weightsManifest"][0].update(paths=["C:\\w.bin"]), r"must be file names relative"),
    ("url-path", lambda d: d["weightsManifest"][0].update(paths=["https://example.com/w.bin"]),
     r"must be file names relative"),
]


@pytest.mark.parametrize("edit, message", [c[1:] for c in DOCUMENT_EDITS], ids=[c[0] for c in DOCUMENT_EDITS])
def test_bad_model_json_is_a_clear_error(tmp_path, edit, message):
    model_json = copy_fixture(LAYERS, tmp_path / "m")
    edit_model_json(model_json, edit)
    with pytest.raises(BadModelFile, match=message) as info:
        tf2torch.convert(str(model_json))
    assert str(info.value).startswith(str(model_json))


@pytest.mark.parametrize("content, message", [
    (b"{\"format\": \"layers-model\", ", r"is truncated"),
    (b"[1, 2]", r"must hold a JSON object, not list"),
    (b"\xff\xfe", r"is not UTF-8 text"),
    (b"", r"the file is empty"),
], ids=["truncated", "array", "not-utf8", "empty"])
def test_model_json_that_is_not_json(tmp_path, content, message):
    model_json = tmp_path / "model.json"
    model_json.write_bytes(content)
    with pytest.raises(BadModelFile, match=message):
        tf2torch.convert(str(model_json))


@pytest.mark.parametrize("change, message", [
    (lambda data: data[:-1], r"the shards hold 2323 bytes, the weights listed need 2324 .*truncated"),
    (lambda data: data + b"\0", r"the shards hold more bytes than the weights listed need"),
], ids=["short", "too-long"])
def test_shard_of_the_wrong_size(tmp_path, change, message):
    model_json = copy_fixture(LAYERS, tmp_path / "m")
    shard = model_json.parent / SHARD
    shard.write_bytes(change(shard.read_bytes()))
    with pytest.raises(BadModelFile, match=message):
        tf2torch.convert(str(model_json))


def test_symlinked_shard_is_refused(tmp_path):
    model_json = copy_fixture(LAYERS, tmp_path / "m")
    shard = model_json.parent / SHARD
    outside = tmp_path / "outside.bin"
    shard.rename(outside)
    shard.symlink_to(outside)
    with pytest.raises(BadModelFile, match=r"group1-shard1of1\.bin is a symlink; .*refused"):
        tf2torch.convert(str(model_json))


def test_symlinked_directory_on_the_shard_path_is_refused(tmp_path):
    model_json = copy_fixture(LAYERS, tmp_path / "m")
    (tmp_path / "elsewhere").mkdir()
    (model_json.parent / SHARD).rename(tmp_path / "elsewhere" / SHARD)
    (model_json.parent / "weights").symlink_to(tmp_path / "elsewhere")
    edit_model_json(model_json, lambda d: d["weightsManifest"][0].update(paths=[f"weights/{SHARD}"]))
    with pytest.raises(BadModelFile, match=r"weights is a symlink"):
        tf2torch.convert(str(model_json))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifo_shard_is_not_opened(tmp_path):
    model_json = copy_fixture(LAYERS, tmp_path / "m")
    shard = model_json.parent / SHARD
    shard.unlink()
    os.mkfifo(shard)
    with pytest.raises(BadModelFile, match=r"is a FIFO \(named pipe\), not a weight shard; it was not opened"):
        tf2torch.convert(str(model_json))


def test_declared_weights_beyond_the_limit_are_refused_before_reading(tmp_path):
    model_json = copy_fixture(LAYERS, tmp_path / "m")
    edit_model_json(model_json, lambda d: _weights(d)[0].update(shape=[2**20, 2**20]))
    with pytest.raises(BadModelFile, match=r"declares 4\.0 TiB of weights, more than the limit .*--max-weight-bytes"):
        read_model_json(str(model_json), Limits(max_weight_bytes=2**30))


def test_weights_of_several_shards_and_groups_are_read_in_manifest_order(tmp_path):
    """The shards of a group are one byte stream: cut the fixture's shard in three files."""
    model_json = copy_fixture(LAYERS, tmp_path / "m")
    reference = read_weights(read_model_json(str(model_json)))
    data = (model_json.parent / SHARD).read_bytes()
    for i, (start, end) in enumerate([(0, 7), (7, 1000), (1000, len(data))]):
        (model_json.parent / f"part{i}.bin").write_bytes(data[start:end])
    edit_model_json(model_json, lambda d: d["weightsManifest"][0].update(paths=["part0.bin", "./part1.bin", "part2.bin"]))
    split = read_weights(read_model_json(str(model_json)))
    assert list(split) == list(reference)
    assert all((split[n] == reference[n]).all() for n in reference)


def test_graph_model_damage_is_named_too(tmp_path):
    model_json = copy_fixture(GRAPH, tmp_path / "g")
    (model_json.parent / SHARD).write_bytes(b"\0" * 10)
    with pytest.raises(BadModelFile, match=r"the shards hold 10 bytes"):
        tf2torch.convert(str(model_json))


def test_model_json_is_recognised_by_content_under_any_name(tmp_path):
    model_json = copy_fixture(LAYERS, tmp_path / "m")
    renamed = model_json.rename(model_json.with_name("web_model.txt"))
    assert tf2torch.convert(str(renamed)).graph.output_names == ["logits"]


def test_shard_of_a_group_without_weights_must_be_empty(tmp_path):
    model_json = copy_fixture(LAYERS, tmp_path / "m")
    (model_json.parent / "extra.bin").write_bytes(b"\0" * 16)
    edit_model_json(model_json, lambda d: d["weightsManifest"].append({"paths": ["extra.bin"], "weights": []}))
    with pytest.raises(BadModelFile, match=r"weightsManifest\[1\]: the shards hold more bytes than the weights"):
        tf2torch.convert(str(model_json))


def test_uint16_weights_dequantize_as_tfjs_specifies(tmp_path):
    """TF.js' affine quantization: value = q * scale + min (logits/bias is stored last)."""
    model_json = copy_fixture(LAYERS, tmp_path / "m")
    shard = model_json.parent / SHARD
    q = np.array([0, 1, 300, 65535, 7], "<u2")
    shard.write_bytes(shard.read_bytes()[:-5 * 4] + q.tobytes())
    quantization = {"dtype": "uint16", "scale": 0.001, "min": -2.0, "original_dtype": "float32"}
    edit_model_json(model_json, lambda d: _weights(d)[-1].update(quantization=quantization))
    with pytest.warns(UserWarning, match=r"1 weights are stored quantized \(uint16\): logits/bias"):
        weights = read_weights(read_model_json(str(model_json)))
    np.testing.assert_allclose(weights["logits/bias"], [-2.0, -1.999, -1.7, 63.535, -1.993], rtol=1e-6)
    assert weights["logits/bias"].dtype == np.float32

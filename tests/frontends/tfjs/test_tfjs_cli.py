"""`tf2torch convert | inspect | verify model.json`: the same face as for .keras files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tfjs_fixtures import GRAPH, LAYERS, LAYERS_UINT8, copy_fixture, expected

from tf2torch import cli


@pytest.mark.parametrize("fixture", [LAYERS, GRAPH], ids=["layers-model", "graph-model"])
def test_convert_with_verification_writes_the_model(tmp_path, capsys, fixture):
    out = tmp_path / "out"
    assert cli.main(["convert", str(fixture / "model.json"), "-o", str(out), "--verify", "--quiet"]) == 0
    assert {"model.py", "model.safetensors", "verification.json"} <= {p.name for p in out.iterdir()}
    assert "Result: OK" in capsys.readouterr().out
    from safetensors.numpy import load_file

    state = load_file(out / "model.safetensors")
    assert any(v.shape == (8, 3, 3, 3) for v in state.values())  # the conv kernel, OIHW
    assert all(v.dtype == np.float32 for v in state.values() if v.dtype.kind == "f")


def test_verify_layers_model_layer_by_layer(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, _ = expected(LAYERS_UINT8)
    np.savez(tmp_path / "x.npz", x=x)
    code = cli.main(["verify", str(LAYERS_UINT8 / "model.json"), "--inputs", str(tmp_path / "x.npz"), "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Result: OK" in captured.out and "logits" in captured.out
    assert "are stored quantized (uint8)" in captured.err
    assert (tmp_path / "verification.html").is_file()


def test_inspect_graph_model_lists_its_ops(capsys):
    assert cli.main(["inspect", str(GRAPH / "model.json")]) == 0
    out = capsys.readouterr().out
    assert "DepthwiseConv2dNative" in out and "0 unsupported" in out


def test_inspect_layers_model_lists_its_layers(capsys):
    assert cli.main(["inspect", str(LAYERS / "model.json")]) == 0
    out = capsys.readouterr().out
    assert "BatchNormalization" in out and "8 layers, 0 unsupported" in out


@pytest.mark.parametrize("fixture", [LAYERS, GRAPH], ids=["layers-model", "graph-model"])
def test_bad_shard_exits_2_naming_the_file_and_writes_nothing(tmp_path, capsys, fixture):
    model_json = copy_fixture(fixture, tmp_path / "m")
    (model_json.parent / "group1-shard1of1.bin").write_bytes(b"\0" * 3)
    out = tmp_path / "out"
    assert cli.main(["convert", str(model_json), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tf2torch convert: error: {model_json}: weightsManifest[0]: the shards hold 3 bytes")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_path_traversal_exits_2(tmp_path, capsys):
    model_json = copy_fixture(LAYERS, tmp_path / "m")
    document = json.loads(model_json.read_text())
    document["weightsManifest"][0]["paths"] = ["../../../../etc/passwd"]
    model_json.write_text(json.dumps(document))
    assert cli.main(["inspect", str(model_json)]) == 2
    assert "leads outside model.json's directory" in capsys.readouterr().err

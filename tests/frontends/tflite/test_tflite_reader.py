"""The TFLite reader and CLI on small hand-built flatbuffers (no TensorFlow): a sound file
converts and matches the LiteRT interpreter; broken ones are rejected with a clear error."""

from __future__ import annotations

import numpy as np
import pytest
from tflite_builder import fully_connected_tflite

from tf2torch.cli import main
from tf2torch.errors import BadModelFile
from tf2torch.frontends.tflite.reader import read_tflite

pytest.importorskip("tflite")

RNG = np.random.default_rng(0)
WEIGHTS = RNG.normal(size=(3, 5)).astype(np.float32)
BIAS = RNG.normal(size=(3,)).astype(np.float32)


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "dense.tflite"
    path.write_bytes(fully_connected_tflite(WEIGHTS, BIAS, batch=2))
    return path


def test_fully_connected_with_fused_relu_matches_litert(good):
    pytest.importorskip("ai_edge_litert")
    import tf2torch

    result = tf2torch.convert(good)
    assert "nn.Linear(5, 3)" in result.source_code and "F.relu(" in result.source_code
    report = result.verify(batch_size=2, tolerance=1e-6)  # the file's batch is fixed at 2
    assert report.ok, report.table()
    assert all(p.requires_grad for p in result.module.parameters())
    x = RNG.normal(size=(2, 5)).astype(np.float32)  # and against numpy, independently of both runtimes
    import torch

    expected = np.maximum(x @ WEIGHTS.T + BIAS, 0)
    np.testing.assert_allclose(result.module(torch.from_numpy(x)).detach().numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a flatbuffer at all", "not a TFLite flatbuffer"),
        (fully_connected_tflite(WEIGHTS, BIAS, weight_shape=(3, 6)), "has shape [3, 6]"),
        (fully_connected_tflite(WEIGHTS, BIAS, output_index=9), "refers to tensor 9"),
        (fully_connected_tflite(WEIGHTS, BIAS)[:300], "corrupt TFLite flatbuffer"),
    ],
    ids=["no-magic", "buffer-size", "tensor-index", "truncated"],
)
def test_bad_files_are_rejected(tmp_path, data, message):
    path = tmp_path / "bad.tflite"
    path.write_bytes(data)
    with pytest.raises(BadModelFile, match=str(path)) as info:
        read_tflite(path)
    assert message in str(info.value)


def test_cli_convert_inspect_and_bad_file(tmp_path, good, capsys):
    assert main(["inspect", str(good)]) == 0
    table = capsys.readouterr().out
    assert "FULLY_CONNECTED" in table and "yes" in table
    assert main(["convert", str(good), "-o", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.py", "model.safetensors", "weights_map.json"]
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(fully_connected_tflite(WEIGHTS, BIAS, output_index=9))
    assert main(["convert", str(bad), "-o", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert "broken.tflite" in err and "Traceback" not in err
    assert not (tmp_path / "nothing").exists()

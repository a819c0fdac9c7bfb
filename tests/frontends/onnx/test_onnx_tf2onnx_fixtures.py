"""Keras models exported by tf2onnx (fixtures/make_tf2onnx_fixtures.py wrote them; tf2onnx is not
needed here): an LSTM text classifier (Keras 3 and tf_keras) and a small transformer encoder,
converted and compared with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import tf2torch

FIXTURES = Path(__file__).parent / "fixtures"


def _tokens(batch: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 60, (batch, 9)).astype(np.int32)


def _trainable_fraction(module) -> float:
    params = list(module.parameters())
    return sum(p.numel() for p in params if p.requires_grad) / sum(p.numel() for p in params)


@pytest.mark.parametrize("name, modules", [
    ("keras_lstm_classifier.onnx", ["nn.LSTM(12, 10, batch_first=True)", "nn.LSTM(10, 7, batch_first=True, bidirectional=True)"]),
    ("tf_keras_rnn_classifier.onnx", ["nn.LSTM(12, 10, batch_first=True)", "nn.GRU(10, 6, batch_first=True, bidirectional=True)",
                                      "nn.GRU(12, 5, batch_first=True)"]),
])
def test_rnn_text_classifier_becomes_torch_recurrent_modules_and_matches(name, modules):
    result = tf2torch.convert(FIXTURES / name)
    for module in modules:
        assert module in result.source_code
    assert "Loop" not in result.source_code and _trainable_fraction(result.module) == 1.0
    report = result.verify(inputs=[_tokens(5, 0)])
    assert report.ok and report.reference == "onnxruntime"
    assert max(o.max_abs_error for o in report.outputs) <= 1e-5 * 1.0  # softmax outputs: scale 1


def test_transformer_encoder_matches_with_tf2onnx_erfc_read_as_gelu():
    path = FIXTURES / "keras_transformer_encoder.onnx"
    assert any(n.op_type == "Erfc" for n in onnx.load(str(path)).graph.node)  # not an ONNX op: no runtime has it
    result = tf2torch.convert(path)
    assert result.source_code.count("F.gelu(") == 1
    assert any("Erfc" in note for note in result.graph.notes)
    assert _trainable_fraction(result.module) == 1.0
    x = _tokens(4, 1)
    report = result.verify(inputs=[x])
    assert report.ok and report.reference == "onnxruntime"
    import torch

    with torch.no_grad():
        out = result.module.eval()(torch.from_numpy(x)).numpy()
    expected = result._keras_model(x)[0]  # onnxruntime on the file with Erfc read as 1 - Erf
    assert np.max(np.abs(out - expected)) <= 1e-5 * np.max(np.abs(expected))


def test_nhwc_decoder_with_transposed_convs_and_upsampling_matches():
    import torch

    result = tf2torch.convert(FIXTURES / "keras_upsampling_decoder.onnx")
    code = result.source_code
    assert code.count("nn.ConvTranspose2d(") == 3 and ".repeat(" in code
    assert code.count(".permute(") == 2  # the NHWC input, and UpSampling2D's own Transpose; the rest cancel
    x = np.random.default_rng(2).normal(size=(3, 11, 13, 3)).astype(np.float32)
    report = result.verify(inputs=[x])
    assert report.ok and report.reference == "onnxruntime"
    with torch.no_grad():
        out = result.module.eval()(torch.from_numpy(x)).numpy()
    expected = result._keras_model(x)[0]
    assert np.max(np.abs(out - expected)) <= 1e-5 * np.max(np.abs(expected))
    assert _trainable_fraction(result.module) == 1.0

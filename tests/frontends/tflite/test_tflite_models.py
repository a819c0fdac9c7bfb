"""TFLite frontend: Keras models written to .tflite by TensorFlow's TFLite converter, converted
by tf2torch and compared with the LiteRT interpreter's own output (1e-5 x max|output|)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import perturb_weights, set_batchnorm_statistics

pytest.importorskip("ai_edge_litert")
pytest.importorskip("tflite")

TOLERANCE = 1e-5


def _write_tflite(model, path) -> str:
    import tensorflow as tf

    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return str(path)


def _cnn(keras):
    layers = keras.layers
    inp = keras.Input((13, 11, 3))
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    x = layers.BatchNormalization()(x)
    y = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu6")(x)
    y = layers.Conv2D(8, 1, dilation_rate=1, activation="hard_swish")(y)
    x = layers.Add()([x, y])
    x = layers.Multiply()([x, layers.Conv2D(8, 1, activation="sigmoid")(x)])
    x = layers.ZeroPadding2D(((1, 0), (0, 2)))(x)
    a = layers.MaxPooling2D(2, padding="same")(x)
    b = layers.AveragePooling2D(3, strides=2, padding="same")(x)
    x = layers.Concatenate()([a, b])
    x = layers.Conv2DTranspose(5, 3, strides=2, padding="same", activation="tanh")(x)
    x = layers.UpSampling2D(2, interpolation="bilinear")(x)
    x = layers.Conv2D(6, 3, padding="valid")(x)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(4, activation="softmax")(x)
    return keras.Model(inp, out, name="cnn")


def _text(keras):
    layers = keras.layers
    ids = keras.Input((9,), dtype="int32")
    x = layers.Embedding(50, 12)(ids)
    x = layers.Dense(16, activation="gelu")(x)
    scores = keras.ops.matmul(x, keras.ops.transpose(x, (0, 2, 1))) / 4.0
    x = keras.ops.matmul(keras.ops.softmax(scores, axis=-1), x)
    x = layers.Reshape((9, 4, 4))(x)
    x = keras.ops.sum(x, axis=2) - keras.ops.mean(x, axis=2)
    x = x[:, 1:8:2, :]
    out = layers.Dense(3)(layers.Flatten()(x))
    return keras.Model(ids, out, name="text")


def _encoder(keras):
    layers = keras.layers
    inp = keras.Input((7, 16))
    x = layers.LayerNormalization()(inp + layers.MultiHeadAttention(num_heads=2, key_dim=8)(inp, inp))
    ffn = layers.Dense(16)(layers.Dense(32, activation="relu")(x))
    x = layers.LayerNormalization(epsilon=1e-4)(x + ffn)
    out = layers.Dense(3, activation="softmax")(layers.GlobalAveragePooling1D()(x))
    return keras.Model(inp, out, name="encoder")


def _tflite_with_keras(tmp_path_factory, build, name, seed, sample=None):
    import keras

    model = build(keras)
    perturb_weights(model, seed=seed)
    if sample is not None:
        set_batchnorm_statistics(model, sample)
    return _write_tflite(model, tmp_path_factory.mktemp("tflite") / f"{name}.tflite")


@pytest.fixture(scope="module")
def cnn_file(tmp_path_factory):
    sample = np.random.default_rng(0).normal(size=(4, 13, 11, 3)).astype(np.float32)
    return _tflite_with_keras(tmp_path_factory, _cnn, "cnn", 1, sample)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    return _tflite_with_keras(tmp_path_factory, _text, "text", 2)


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    return _tflite_with_keras(tmp_path_factory, _encoder, "encoder", 4)


def _trainable_fraction(module) -> float:
    total = sum(p.numel() for p in module.parameters()) + sum(b.numel() for b in module.buffers() if b.is_floating_point())
    return sum(p.numel() for p in module.parameters() if p.requires_grad) / total


def _check(result, batch_size: int) -> None:
    report = result.verify(batch_size=batch_size, tolerance=TOLERANCE)
    assert report.outputs and report.batch_size == batch_size
    assert report.ok, report.table()


def test_cnn_matches_litert(cnn_file):
    import tf2torch

    result = tf2torch.convert(cnn_file)
    _check(result, batch_size=3)  # the converter keeps Keras' dynamic batch
    source = result.source_code
    assert "nn.Conv2d(" in source and "nn.ConvTranspose2d(" in source and "nn.Linear(" in source
    assert ".permute(" not in source  # NHWC -> NCHW is done once, at the boundary, by the layout pass
    assert "F.hardswish(" in source
    assert _trainable_fraction(result.module) == 1.0


def test_float16_weights_become_float32_parameters(tmp_path):
    import keras
    import tensorflow as tf

    import tf2torch

    model = _cnn(keras)
    perturb_weights(model, seed=6)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    path = tmp_path / "cnn_fp16.tflite"
    path.write_bytes(converter.convert())
    result = tf2torch.convert(path)
    _check(result, batch_size=2)  # the interpreter dequantizes the same float16 values once
    assert all(p.dtype.is_floating_point and p.requires_grad for p in result.module.parameters())
    assert "nn.Conv2d(" in result.source_code


def test_text_model_matches_litert(text_file):
    import tf2torch

    result = tf2torch.convert(text_file)
    _check(result, batch_size=2)
    assert "nn.Embedding(" in result.source_code and "F.gelu(" in result.source_code
    assert _trainable_fraction(result.module) == 1.0


def test_transformer_encoder_matches_litert(encoder_file):
    import tf2torch

    result = tf2torch.convert(encoder_file)
    _check(result, batch_size=3)
    assert result.source_code.count("nn.LayerNorm(16, eps=0.0001)") == 1  # the layer-norm ops fold back
    assert result.source_code.count("nn.LayerNorm(16, eps=0.001)") == 1
    assert _trainable_fraction(result.module) == 1.0


def test_lstm_text_classifier_matches_litert(tmp_path):
    import tensorflow as tf
    import tf_keras

    import tf2torch

    # Keras 3's LSTM needs Select TF ops in TFLite; tf.keras' is fused into one
    # UNIDIRECTIONAL_SEQUENCE_LSTM, with a fixed batch (batch 2 here: a dynamic one is not fused).
    layers = tf_keras.layers
    ids = tf_keras.Input((11,), batch_size=2, dtype="int32")
    x = layers.LSTM(6, return_sequences=True)(layers.Embedding(40, 8)(ids))
    out = layers.Dense(2)(layers.LSTM(5)(x))
    model = tf_keras.Model(ids, out)
    perturb_weights(model, seed=5)
    path = tmp_path / "lstm.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    result = tf2torch.convert(path)
    _check(result, batch_size=2)
    assert result.source_code.count("nn.LSTM(") == 2 and "cell state to +-10" in result.source_code
    frozen = {name for name, p in result.module.named_parameters() if not p.requires_grad}
    assert frozen and all(name.endswith("bias_hh_l0") for name in frozen)  # Keras' LSTM has one bias


def _preactivation(keras):
    """BatchNorms the TFLite converter cannot fold into a conv: after a concatenation (DenseNet),
    after an add with a fused ReLU (ResNetV2), on a rank-2 output, and one it folds (after a conv)."""
    layers = keras.layers
    inp = keras.Input((9, 7, 3))
    x = layers.Concatenate()([layers.Conv2D(6, 3, padding="same")(inp), layers.Conv2D(4, 1)(inp)])
    x = layers.ReLU()(layers.BatchNormalization(epsilon=1e-2)(x))
    y = layers.BatchNormalization()(layers.Conv2D(10, 3, padding="same", use_bias=False)(x))
    x = layers.BatchNormalization(center=False)(layers.Add()([x, y]))
    # A per-channel constant scale added to a run-time tensor (LayerScale + residual) is no BatchNorm.
    x = layers.Activation("relu")(x) * np.linspace(0.5, 1.5, 10).astype(np.float32) + y
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.BatchNormalization(scale=False)(x), name="preactivation")


def test_batchnorm_left_as_scale_and_offset_becomes_trainable_module(tmp_path):
    import keras
    import torch

    import tf2torch

    model = _preactivation(keras)
    perturb_weights(model, seed=7)
    set_batchnorm_statistics(model, np.random.default_rng(1).normal(size=(4, 9, 7, 3)).astype(np.float32))
    result = tf2torch.convert(_write_tflite(model, tmp_path / "preactivation.tflite"))
    _check(result, batch_size=3)
    source = result.source_code
    assert source.count(" = ChannelAffine(") == 3  # the one after the conv is folded
    assert source.count(" = Variable(") == 1  # the LayerScale-like constant stays a multiplication
    assert _trainable_fraction(result.module) == 1.0
    # Each module's scale and offset are its Keras BatchNorm's, gamma / sqrt(var + eps) and
    # beta - mean * scale (the statistics themselves are not in the file).
    norms = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
    affines = [m for m in result.module.modules() if type(m).__name__ == "ChannelAffine"]
    for layer, module in zip([norms[0], norms[2], norms[3]], affines):
        w = {v.path.rsplit("/", 1)[-1]: np.asarray(v.numpy(), np.float64) for v in layer.weights}
        scale = w.get("gamma", 1.0) / np.sqrt(w["moving_variance"] + layer.epsilon)
        offset = w.get("beta", 0.0) - w["moving_mean"] * scale
        np.testing.assert_allclose(module.weight.detach().numpy().reshape(-1), scale, rtol=1e-5)
        np.testing.assert_allclose(module.bias.detach().numpy().reshape(-1), offset, rtol=1e-5, atol=1e-6)
    out = result.module.train()(torch.randn(2, 3, 9, 7))
    out.square().sum().backward()
    assert all(m.weight.grad is not None and m.bias.grad is not None for m in affines)


@pytest.mark.slow  # ~50 s: the TFLite converter on MobileNetV2 dominates
def test_mobilenet_v2_end_to_end(tmp_path, keras):
    import tf2torch

    model = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), alpha=0.5, classes=7)
    sample = np.random.default_rng(3).uniform(-1, 1, size=(4, 96, 96, 3)).astype(np.float32)
    set_batchnorm_statistics(model, sample)
    path = _write_tflite(model, tmp_path / "mobilenet_v2.tflite")
    result = tf2torch.convert(path)
    _check(result, batch_size=2)
    convs = [layer for layer in model.layers if type(layer).__name__ in ("Conv2D", "DepthwiseConv2D")]
    assert result.source_code.count("nn.Conv2d(") == len(convs)
    assert ".permute(" not in result.source_code
    assert _trainable_fraction(result.module) == 1.0
    result.save(tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.py", "model.safetensors"]

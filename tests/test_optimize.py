"""tf2torch.optimize_for_inference: BatchNorm folded into the preceding conv / linear layer.

Each case builds a Keras model with non-default arguments, odd sizes and perturbed weights,
converts it, and checks the optimized module against the unfused converted module and against
TensorFlow's own output, in eval mode.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import tf2torch
from conftest import convert_and_compare


def _cnn(keras):
    inp = keras.Input((13, 11, 3))
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", name="conv")(inp)
    x = keras.layers.BatchNormalization(epsilon=1e-2, momentum=0.9, name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.Conv2D(5, (3, 2), padding="valid", use_bias=False, name="conv_nobias")(x)
    x = keras.layers.BatchNormalization(center=False, name="bn_nocenter")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, keras.layers.Dense(4, name="logits")(x)), 2


def _depthwise(keras):
    inp = keras.Input((15, 9, 4))
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(inp)
    x = keras.layers.BatchNormalization(scale=False, name="dw_bn")(x)
    x = keras.layers.Activation("relu6", name="relu6")(x)
    x = keras.layers.Conv2D(7, 1, name="pw")(x)
    return keras.Model(inp, keras.layers.BatchNormalization(epsilon=1e-4, name="pw_bn")(x)), 2


def _shared_conv_output(keras):
    """The conv's output also feeds a skip connection: its BatchNorm must stay."""
    inp = keras.Input((9, 7, 5))
    conv = keras.layers.Conv2D(5, 3, padding="same", name="conv")(inp)
    x = keras.layers.BatchNormalization(name="bn")(conv)
    x = keras.layers.Add(name="add")([conv, x])
    x = keras.layers.Conv2D(3, 3, name="conv2")(x)
    return keras.Model(inp, keras.layers.BatchNormalization(name="bn2")(x)), 1


def _dense(keras):
    inp = keras.Input((17,))
    x = keras.layers.Dense(9, name="hidden")(inp)
    x = keras.layers.BatchNormalization(epsilon=1e-2, name="hidden_bn")(x)
    x = keras.layers.Activation("tanh", name="tanh")(x)
    return keras.Model(inp, keras.layers.Dense(3, name="logits")(x)), 1


def _conv1d(keras):
    inp = keras.Input((21, 4))
    x = keras.layers.Conv1D(6, 5, strides=2, padding="same", name="conv")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    return keras.Model(inp, keras.layers.Activation("elu", name="elu")(x)), 1


def _conv3d(keras):
    inp = keras.Input((7, 6, 5, 2))
    x = keras.layers.Conv3D(3, 3, padding="same", name="conv")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    return keras.Model(inp, keras.layers.ReLU(name="relu")(x)), 1


MODELS = {
    "conv2d": _cnn,
    "depthwise": _depthwise,
    "shared_conv_output": _shared_conv_output,
    "dense": _dense,
    "conv1d": _conv1d,
    "conv3d": _conv3d,
}


def _batch_norms(module: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


@pytest.mark.parametrize("channels_last", [True, False], ids=["channels_last", "contiguous"])
@pytest.mark.parametrize("name", list(MODELS))
def test_optimize_matches_unfused_and_tensorflow(keras, tmp_path, name, channels_last):
    model, expected_folds = MODELS[name](keras)
    result = convert_and_compare(model, tmp_path)  # the unfused module matches TensorFlow
    unfused = result.module.eval()
    before = _batch_norms(unfused)
    trainable = {name: p.requires_grad for name, p in unfused.named_parameters()}

    fast = tf2torch.optimize_for_inference(unfused, channels_last=channels_last)

    assert _batch_norms(fast) == before - expected_folds
    assert not fast.training
    assert not any(p.requires_grad for p in fast.parameters())
    assert _batch_norms(unfused) == before, "the argument must be left untouched"
    assert {name: p.requires_grad for name, p in unfused.named_parameters()} == trainable

    rng = np.random.default_rng(3)
    keras_input = rng.normal(size=(3, *model.input_shape[1:])).astype(np.float32)
    expected = np.asarray(model(keras_input, training=False))
    in_perm, out_perm = result.graph.inputs[0].perm, result.graph.outputs[0].perm
    x = torch.from_numpy(keras_input)
    if in_perm is not None:  # Keras layout -> the converted module's (channels-first) layout
        x = x.permute(in_perm).contiguous()
    with torch.inference_mode():
        reference = unfused(x)
        actual = fast(x)
    scale = max(float(np.abs(expected).max()), 1e-6)
    torch.testing.assert_close(actual, reference, rtol=0, atol=1e-5 * scale)
    if out_perm is not None:
        actual = actual.permute(tuple(np.argsort(out_perm)))
    np.testing.assert_allclose(actual.numpy(), expected, rtol=0, atol=1e-5 * scale)


def test_optimize_keeps_dynamic_same_padding(keras, tmp_path):
    """'same' padding that depends on the run-time input size stays a function call."""
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="conv")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    model = keras.Model(inp, keras.layers.ReLU(name="relu")(x))
    result = convert_and_compare(model, tmp_path, inputs=[np.random.default_rng(0).normal(size=(2, 11, 9, 3)).astype(np.float32)])
    fast = tf2torch.optimize_for_inference(result.module)
    assert _batch_norms(fast) == 0
    for h, w in ((11, 9), (8, 13)):
        keras_input = np.random.default_rng(h).normal(size=(2, h, w, 3)).astype(np.float32)
        expected = np.asarray(model(keras_input, training=False))
        with torch.inference_mode():
            actual = fast(torch.from_numpy(keras_input).permute(0, 3, 1, 2).contiguous())
        np.testing.assert_allclose(actual.permute(0, 2, 3, 1).numpy(), expected, rtol=0, atol=1e-5 * np.abs(expected).max())


# -- the generated code's own memory-format choice (codegen/emit.py) ---------------------------


def test_image_model_runs_in_channels_last_memory(keras, tmp_path):
    """A model with 2-D convolutions switches its NCHW input to channels_last memory in its
    first statement; every later activation stays so, and the numbers match TensorFlow."""
    inp = keras.Input((17, 15, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(max_value=6.0, name="relu6")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    model = keras.Model(inp, keras.layers.Conv2D(5, 1, name="pw")(x))
    result = convert_and_compare(model, tmp_path)
    convert_and_compare(model, tmp_path, training=True, perturb=False)
    assert "x = x.contiguous(memory_format=torch.channels_last)" in result.source_code
    assert result.state_dict["conv.weight"].flags["C_CONTIGUOUS"]  # weights stay plain
    with torch.inference_mode():
        out = result.module.eval()(torch.randn(2, 3, 17, 15))
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_model_without_2d_convolutions_keeps_its_memory_format(keras, tmp_path):
    inp = keras.Input((9, 7, 4))
    x = keras.layers.MaxPooling2D(2, name="pool")(inp)
    model = keras.Model(inp, keras.layers.Dense(3, name="dense")(x))
    result = convert_and_compare(model, tmp_path)
    assert "channels_last" not in result.source_code


@pytest.mark.parametrize("onednn_linear", [True, False], ids=["onednn", "default_linear"])
def test_optimize_computes_linear_layers_with_onednn(keras, tmp_path, onednn_linear):
    """Every nn.Linear, also those inside the attention helper module, becomes OneDNNLinear
    (opt-out with onednn_linear=False); outputs still match TensorFlow."""
    tokens = keras.Input((13, 24))
    x = keras.layers.MultiHeadAttention(num_heads=3, key_dim=5, name="attention")(tokens, tokens)
    x = keras.layers.LayerNormalization(name="norm")(x + tokens)
    x = keras.layers.Dense(31, activation="gelu", name="ffn")(x)
    outputs = keras.layers.Dense(7, name="head")(x)
    model = keras.Model(tokens, outputs)
    result = convert_and_compare(model, tmp_path, batch_size=4)

    fast = tf2torch.optimize_for_inference(result.module, onednn_linear=onednn_linear)

    linears = [m for m in fast.modules() if type(m) is nn.Linear]
    onednn = [m for m in fast.modules() if type(m).__name__ == "OneDNNLinear"]
    assert (len(linears), len(onednn)) == ((0, 6) if onednn_linear else (6, 0))
    if onednn_linear:  # the Dense(activation="gelu") runs as one oneDNN call with a GELU post-op
        assert [m.gelu for m in onednn if m.gelu is not None] == ["none"]
        assert "gelu" not in fast.code
    x = np.random.default_rng(5).normal(size=(4, 13, 24)).astype(np.float32)
    expected = np.asarray(model(x, training=False))
    with torch.inference_mode():
        actual = fast(torch.from_numpy(x)).numpy()
        one_row = fast(torch.from_numpy(x[:1])).numpy()
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(one_row, expected[:1], rtol=0, atol=1e-5 * scale)

"""Convolution layers against TensorFlow: strides, dilation, groups, padding, transposed and separable."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import convert_and_compare

# (id, Keras class name, layer kwargs, input shape without batch)
CONV_CASES = [
    # Conv1D
    ("conv1d_valid_stride2", "Conv1D", {"filters": 5, "kernel_size": 3, "strides": 2}, (23, 4)),
    ("conv1d_same_stride2_k4", "Conv1D", {"filters": 5, "kernel_size": 4, "strides": 2, "padding": "same"}, (23, 4)),
    (
        "conv1d_same_stride2_k3_even",
        "Conv1D",
        {"filters": 5, "kernel_size": 3, "strides": 2, "padding": "same"},
        (22, 4),
    ),
    ("conv1d_same_stride3_k2", "Conv1D", {"filters": 5, "kernel_size": 2, "strides": 3, "padding": "same"}, (23, 4)),
    ("conv1d_causal", "Conv1D", {"filters": 5, "kernel_size": 3, "padding": "causal"}, (23, 4)),
    (
        "conv1d_causal_dilated",
        "Conv1D",
        {"filters": 5, "kernel_size": 3, "padding": "causal", "dilation_rate": 2},
        (23, 4),
    ),
    ("conv1d_causal_stride2", "Conv1D", {"filters": 5, "kernel_size": 3, "padding": "causal", "strides": 2}, (23, 4)),
    ("conv1d_same_dilated", "Conv1D", {"filters": 5, "kernel_size": 4, "padding": "same", "dilation_rate": 3}, (23, 4)),
    (
        "conv1d_groups_nobias_relu",
        "Conv1D",
        {"filters": 6, "kernel_size": 3, "groups": 2, "use_bias": False, "activation": "relu"},
        (23, 4),
    ),
    # Conv2D
    ("conv2d_valid_stride2", "Conv2D", {"filters": 6, "kernel_size": 3, "strides": 2}, (13, 17, 3)),
    (
        "conv2d_valid_rect_kernel_strides",
        "Conv2D",
        {"filters": 6, "kernel_size": (2, 5), "strides": (3, 2)},
        (13, 17, 3),
    ),
    ("conv2d_same_stride1_k4", "Conv2D", {"filters": 6, "kernel_size": 4, "padding": "same"}, (13, 17, 3)),
    (
        "conv2d_same_stride2_k3_odd",
        "Conv2D",
        {"filters": 6, "kernel_size": 3, "strides": 2, "padding": "same"},
        (13, 17, 3),
    ),
    (
        "conv2d_same_stride2_k3_even",
        "Conv2D",
        {"filters": 6, "kernel_size": 3, "strides": 2, "padding": "same"},
        (12, 16, 3),
    ),
    (
        "conv2d_same_stride2_k4_odd",
        "Conv2D",
        {"filters": 6, "kernel_size": 4, "strides": 2, "padding": "same"},
        (13, 17, 3),
    ),
    (
        "conv2d_same_stride2_k4_even",
        "Conv2D",
        {"filters": 6, "kernel_size": 4, "strides": 2, "padding": "same"},
        (12, 16, 3),
    ),
    (
        "conv2d_same_stride_2x3_k2x5",
        "Conv2D",
        {"filters": 6, "kernel_size": (2, 5), "strides": (2, 3), "padding": "same"},
        (13, 17, 3),
    ),
    ("conv2d_valid_dilated", "Conv2D", {"filters": 6, "kernel_size": 3, "dilation_rate": (2, 3)}, (13, 17, 3)),
    (
        "conv2d_same_dilated",
        "Conv2D",
        {"filters": 6, "kernel_size": 3, "dilation_rate": 2, "padding": "same"},
        (13, 17, 3),
    ),
    ("conv2d_groups3_same", "Conv2D", {"filters": 9, "kernel_size": 3, "groups": 3, "padding": "same"}, (13, 17, 6)),
    (
        "conv2d_nobias_tanh",
        "Conv2D",
        {"filters": 6, "kernel_size": 3, "use_bias": False, "activation": "tanh", "strides": 2},
        (13, 17, 3),
    ),
    # Conv3D
    ("conv3d_valid_stride2", "Conv3D", {"filters": 4, "kernel_size": 3, "strides": 2}, (9, 11, 7, 2)),
    (
        "conv3d_same_stride2_k2",
        "Conv3D",
        {"filters": 4, "kernel_size": 2, "strides": 2, "padding": "same"},
        (9, 11, 7, 2),
    ),
    (
        "conv3d_same_stride_mixed",
        "Conv3D",
        {"filters": 4, "kernel_size": (3, 2, 4), "strides": (2, 1, 3), "padding": "same"},
        (9, 11, 7, 2),
    ),
    (
        "conv3d_dilated_groups_nobias",
        "Conv3D",
        {"filters": 4, "kernel_size": 2, "dilation_rate": 2, "groups": 2, "use_bias": False, "activation": "sigmoid"},
        (9, 11, 7, 4),
    ),
    # Transposed convolutions
    ("conv2dT_valid_s2_k3", "Conv2DTranspose", {"filters": 4, "kernel_size": 3, "strides": 2}, (13, 17, 3)),
    ("conv2dT_valid_s3_k4", "Conv2DTranspose", {"filters": 4, "kernel_size": 4, "strides": 3}, (13, 17, 3)),
    ("conv2dT_valid_s3_k2", "Conv2DTranspose", {"filters": 4, "kernel_size": 2, "strides": 3}, (13, 17, 3)),
    (
        "conv2dT_same_s2_k3",
        "Conv2DTranspose",
        {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"},
        (13, 17, 3),
    ),
    (
        "conv2dT_same_s2_k4",
        "Conv2DTranspose",
        {"filters": 4, "kernel_size": 4, "strides": 2, "padding": "same"},
        (13, 17, 3),
    ),
    (
        "conv2dT_same_s3_k3",
        "Conv2DTranspose",
        {"filters": 4, "kernel_size": 3, "strides": 3, "padding": "same"},
        (13, 17, 3),
    ),
    (
        "conv2dT_same_s3_k4",
        "Conv2DTranspose",
        {"filters": 4, "kernel_size": 4, "strides": 3, "padding": "same"},
        (13, 17, 3),
    ),
    (
        "conv2dT_same_s2_k5",
        "Conv2DTranspose",
        {"filters": 4, "kernel_size": 5, "strides": 2, "padding": "same"},
        (13, 17, 3),
    ),
    (
        "conv2dT_valid_s2_k3_op1",
        "Conv2DTranspose",
        {"filters": 4, "kernel_size": 3, "strides": 2, "output_padding": 1},
        (13, 17, 3),
    ),
    (
        "conv2dT_valid_s3_k4_op2",
        "Conv2DTranspose",
        {"filters": 4, "kernel_size": 4, "strides": 3, "output_padding": 2},
        (13, 17, 3),
    ),
    (
        "conv2dT_same_s2_k3_op1",
        "Conv2DTranspose",
        {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same", "output_padding": 1},
        (13, 17, 3),
    ),
    (
        "conv2dT_same_s2_k3_op0",
        "Conv2DTranspose",
        {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same", "output_padding": 0},
        (13, 17, 3),
    ),
    (
        "conv2dT_same_s3_k4_op_1x2",
        "Conv2DTranspose",
        {"filters": 4, "kernel_size": 4, "strides": 3, "padding": "same", "output_padding": (1, 2)},
        (13, 17, 3),
    ),
    (
        "conv2dT_same_s2_k4_op1",
        "Conv2DTranspose",
        {"filters": 4, "kernel_size": 4, "strides": 2, "padding": "same", "output_padding": 1},
        (13, 17, 3),
    ),
    # Even kernels with padding='same' and output_padding=0 are left out: TensorFlow itself
    # rejects them (Conv2DBackpropInput: inconsistent sizes).
    (
        "conv2dT_same_s2_k2_op1",
        "Conv2DTranspose",
        {"filters": 4, "kernel_size": 2, "strides": 2, "padding": "same", "output_padding": 1},
        (13, 17, 3),
    ),
    (
        "conv2dT_same_s4_k6_op3",
        "Conv2DTranspose",
        {"filters": 4, "kernel_size": 6, "strides": 4, "padding": "same", "output_padding": 3},
        (13, 17, 3),
    ),
    (
        "conv2dT_same_s2_k1_op1",
        "Conv2DTranspose",
        {"filters": 4, "kernel_size": 1, "strides": 2, "padding": "same", "output_padding": 1},
        (13, 17, 3),
    ),
    (
        "conv2dT_same_s3_k5_op2",
        "Conv2DTranspose",
        {"filters": 4, "kernel_size": 5, "strides": 3, "padding": "same", "output_padding": 2},
        (13, 17, 3),
    ),
    (
        "conv2dT_same_s1_k2_d2_op0",
        "Conv2DTranspose",
        {"filters": 4, "kernel_size": 2, "dilation_rate": 2, "padding": "same", "output_padding": 0},
        (13, 17, 3),
    ),
    ("conv2dT_same_s1_k4", "Conv2DTranspose", {"filters": 4, "kernel_size": 4, "padding": "same"}, (13, 17, 3)),
    ("conv2dT_valid_s1_k4_d3", "Conv2DTranspose", {"filters": 4, "kernel_size": 4, "dilation_rate": 3}, (13, 17, 3)),
    ("conv2dT_valid_dilated", "Conv2DTranspose", {"filters": 4, "kernel_size": 3, "dilation_rate": 2}, (13, 17, 3)),
    (
        "conv2dT_same_dilated",
        "Conv2DTranspose",
        {"filters": 4, "kernel_size": 3, "dilation_rate": 2, "padding": "same"},
        (13, 17, 3),
    ),
    (
        "conv2dT_nobias_relu",
        "Conv2DTranspose",
        {"filters": 4, "kernel_size": 3, "strides": 2, "use_bias": False, "activation": "relu"},
        (13, 17, 3),
    ),
    (
        "conv1dT_same_s2_k3",
        "Conv1DTranspose",
        {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"},
        (23, 3),
    ),
    (
        "conv1dT_valid_s3_k4_op1",
        "Conv1DTranspose",
        {"filters": 4, "kernel_size": 4, "strides": 3, "output_padding": 1},
        (23, 3),
    ),
    (
        "conv3dT_same_s2_k3",
        "Conv3DTranspose",
        {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"},
        (9, 11, 7, 2),
    ),
    (
        "conv3dT_valid_mixed",
        "Conv3DTranspose",
        {"filters": 3, "kernel_size": (2, 3, 4), "strides": (1, 2, 3)},
        (9, 11, 7, 2),
    ),
    # Depthwise
    ("dw2d_dm1_valid", "DepthwiseConv2D", {"kernel_size": 3}, (13, 17, 4)),
    (
        "dw2d_dm2_same_stride2",
        "DepthwiseConv2D",
        {"kernel_size": 3, "depth_multiplier": 2, "strides": 2, "padding": "same"},
        (13, 17, 4),
    ),
    (
        "dw2d_dm2_same_k4_stride2_even",
        "DepthwiseConv2D",
        {"kernel_size": 4, "depth_multiplier": 2, "strides": 2, "padding": "same"},
        (12, 16, 3),
    ),
    (
        "dw2d_dilated_nobias_relu6",
        "DepthwiseConv2D",
        {"kernel_size": 3, "dilation_rate": 2, "use_bias": False, "activation": "relu6", "padding": "same"},
        (13, 17, 4),
    ),
    (
        "dw1d_dm3_same_stride2",
        "DepthwiseConv1D",
        {"kernel_size": 4, "depth_multiplier": 3, "strides": 2, "padding": "same"},
        (23, 4),
    ),
    ("dw1d_valid_nobias", "DepthwiseConv1D", {"kernel_size": 5, "use_bias": False}, (23, 4)),
    # Separable
    (
        "sep2d_dm2_same_stride2",
        "SeparableConv2D",
        {"filters": 5, "kernel_size": 3, "depth_multiplier": 2, "strides": 2, "padding": "same"},
        (13, 17, 3),
    ),
    (
        "sep2d_nobias_valid_dilated",
        "SeparableConv2D",
        {"filters": 5, "kernel_size": 3, "dilation_rate": 2, "use_bias": False, "activation": "elu"},
        (13, 17, 3),
    ),
    (
        "sep1d_dm3_stride2_nobias",
        "SeparableConv1D",
        {"filters": 5, "kernel_size": 4, "depth_multiplier": 3, "strides": 2, "padding": "same", "use_bias": False},
        (23, 3),
    ),
    ("sep1d_valid", "SeparableConv1D", {"filters": 5, "kernel_size": 3}, (23, 3)),
]


@pytest.mark.parametrize(("cls", "kwargs", "shape"), [c[1:] for c in CONV_CASES], ids=[c[0] for c in CONV_CASES])
def test_conv_layer(keras, tmp_path, cls, kwargs, shape):
    layer = getattr(keras.layers, cls)(**kwargs)
    inp = keras.Input(shape)
    model = keras.Model(inp, layer(inp))
    convert_and_compare(model, tmp_path, batch_size=3)


# Spatial sizes unknown at conversion time: 'same' padding must be computed at run time.
DYNAMIC_CASES = [
    ("conv2d_same_s2", "Conv2D", {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"}, (None, None, 3)),
    ("conv2d_same_s2_k4", "Conv2D", {"filters": 4, "kernel_size": 4, "strides": 2, "padding": "same"}, (None, None, 3)),
    ("conv2d_same_s1_k4", "Conv2D", {"filters": 4, "kernel_size": 4, "padding": "same"}, (None, None, 3)),
    (
        "conv1d_causal_dilated",
        "Conv1D",
        {"filters": 4, "kernel_size": 3, "padding": "causal", "dilation_rate": 2},
        (None, 3),
    ),
    (
        "dw2d_same_s2_dm2",
        "DepthwiseConv2D",
        {"kernel_size": 3, "strides": 2, "depth_multiplier": 2, "padding": "same"},
        (None, None, 3),
    ),
    (
        "conv2dT_same_s2_k3",
        "Conv2DTranspose",
        {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"},
        (None, None, 3),
    ),
    ("conv2dT_valid_s3_k2", "Conv2DTranspose", {"filters": 4, "kernel_size": 2, "strides": 3}, (None, None, 3)),
    (
        "conv2dT_same_s2_k4_op1",
        "Conv2DTranspose",
        {"filters": 4, "kernel_size": 4, "strides": 2, "padding": "same", "output_padding": 1},
        (None, None, 3),
    ),
]


@pytest.mark.parametrize(("cls", "kwargs", "shape"), [c[1:] for c in DYNAMIC_CASES], ids=[c[0] for c in DYNAMIC_CASES])
def test_conv_layer_dynamic_size(keras, tmp_path, cls, kwargs, shape):
    layer = getattr(keras.layers, cls)(**kwargs)
    inp = keras.Input(shape)
    model = keras.Model(inp, layer(inp))
    data_shape = (2,) + tuple(n if n is not None else size for n, size in zip(shape, (13, 16))) + shape[-1:]
    if len(shape) == 2:
        data_shape = (2, 23, shape[-1])
    x = np.random.default_rng(1).normal(size=data_shape).astype(np.float32)
    convert_and_compare(model, tmp_path, inputs=[x])


@pytest.mark.parametrize("layer", ["Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose", "SeparableConv1D"])
def test_conv_channels_first(keras, tmp_path, layer):
    """Keras' channels-first tensors are torch's NCHW: no permute (frontends/keras/data_format.py)."""
    rank = int(layer[4]) if layer.startswith("Conv") else 1
    shape = (3,) + (13, 9, 5)[:rank]
    inp = keras.Input(shape)
    model = keras.Model(inp, getattr(keras.layers, layer)(5, 2, strides=2, data_format="channels_first")(inp))
    x = np.random.default_rng(0).standard_normal((2,) + shape).astype(np.float32)
    result = convert_and_compare(model, tmp_path, inputs=[x])
    assert ".permute(" not in result.source_code


def test_conv_channels_first_with_keras3_tf_bias_guess_is_refused(keras, tmp_path):
    """Keras 3 on TF adds the bias along the last axis when it has as many entries as there
    are channels (here 4 = filters); other backends add it along the channels."""
    import tf2torch

    inp = keras.Input((3, 13, 9))
    model = keras.Model(inp, keras.layers.Conv2D(4, 2, strides=2, data_format="channels_first")(inp))
    model.save(str(tmp_path / "model.keras"))
    with pytest.raises(tf2torch.errors.UnsupportedFeature, match="adds the bias along the last axis"):
        tf2torch.convert(str(tmp_path / "model.keras"))


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize(
    "layer, shape, kwargs",
    [
        ("LocallyConnected1D", (13, 3), {"kernel_size": 3, "strides": 2, "activation": "relu"}),
        ("LocallyConnected2D", (9, 11, 3), {"kernel_size": (3, 2), "strides": (2, 3)}),
        ("LocallyConnected2D", (7, 6, 2), {"kernel_size": 2, "use_bias": False}),
    ],
    ids=["1d", "2d-strided", "2d-no-bias"],
)
def test_locally_connected_tf_keras_h5(tmp_path, layer, shape, kwargs, training):
    import tf_keras

    inp = tf_keras.Input(shape)
    x = getattr(tf_keras.layers, layer)(4, **kwargs)(inp)
    model = tf_keras.Model(inp, tf_keras.layers.Dense(2)(tf_keras.layers.Flatten()(x)))
    x = np.random.default_rng(0).standard_normal((3,) + shape).astype(np.float32)
    convert_and_compare(model, tmp_path, suffix=".h5", inputs=[x], training=training)


def _tf_same_pads(n: int, k: int, s: int) -> tuple[int, int]:
    total = max((-(-n // s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5, 7])
def test_asymmetric_same_padding_as_symmetric_padding_and_crop(kernel, stride, dilation):
    """Every size parity: torch's symmetric padding plus the output crop equals F.pad with
    TF's (left, right) padding, wherever symmetric_padding_with_crop accepts the case."""
    import torch
    import torch.nn.functional as F

    from tf2torch.converters.conv import symmetric_padding_with_crop

    window = (kernel - 1) * dilation + 1
    w = torch.randn(4, 3, kernel, dtype=torch.float64)
    for n in range(max(window - 2, 1), window + 2 * stride + 3):
        x = torch.randn(2, 3, n, dtype=torch.float64)
        left, right = _tf_same_pads(n, window, stride)
        expected = F.conv1d(F.pad(x, (left, right)), w, stride=stride, dilation=dilation)
        found = symmetric_padding_with_crop([(left, right)], (stride,), (window,), (n,), (expected.shape[-1],))
        if left == right or not left < right <= left + stride:
            assert found is None or left == right
            continue
        assert found is not None, (n, left, right)
        (padding,), ((start, stop),) = found
        actual = F.conv1d(x, w, stride=stride, padding=padding, dilation=dilation)[..., start:stop]
        torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)


# Asymmetric TF padding: no F.pad copy, the same numbers as TensorFlow (eval and training,
# followed by a BatchNorm whose training statistics must not see the dropped outputs).
CROP_CASES = {
    "conv2d_k3_s2_even": (lambda k: k.layers.Conv2D(6, 3, strides=2, padding="same"), (16, 14, 3)),
    "conv2d_k5_s2_even_odd": (lambda k: k.layers.Conv2D(6, 5, strides=2, padding="same", use_bias=False), (16, 13, 3)),
    "conv2d_k4_s1_dilated": (lambda k: k.layers.Conv2D(6, 4, padding="same", dilation_rate=(1, 2)), (11, 12, 3)),
    "depthwise_k3_s2_dm2": (lambda k: k.layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2),
                            (14, 18, 4)),
    "conv1d_k3_s2_even": (lambda k: k.layers.Conv1D(5, 3, strides=2, padding="same"), (22, 4)),
}


@pytest.mark.parametrize("case", list(CROP_CASES))
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_asymmetric_same_padding_without_pad_copy(keras, tmp_path, case, training):
    make_layer, shape = CROP_CASES[case]
    inputs = keras.Input(shape)
    x = make_layer(keras)(inputs)
    outputs = keras.layers.BatchNormalization(momentum=0.8, name="bn")(x)
    result = convert_and_compare(keras.Model(inputs, outputs), tmp_path, batch_size=3, training=training)
    # TF 'same' padding: SameConv works it out from the input size (one class for every stride).
    assert "F.pad(" not in result.source_code and "SameConv" in result.source_code and "padding=" not in result.source_code


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_mobilenet_correct_pad_folds_into_a_cropped_depthwise_conv(keras, tmp_path, training):
    """keras.applications' `correct_pad`: ZeroPadding2D(((0, 1), (0, 1))) then a 'valid'
    stride-2 depthwise conv, on an even feature map."""
    inputs = keras.Input((18, 14, 4))
    x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name="pad")(inputs)
    x = keras.layers.DepthwiseConv2D(3, strides=2, use_bias=False, name="depthwise")(x)
    x = keras.layers.BatchNormalization(name="depthwise_bn")(x)
    outputs = keras.layers.ReLU(6.0, name="relu6")(x)
    result = convert_and_compare(keras.Model(inputs, outputs), tmp_path, batch_size=3, training=training)
    assert "F.pad(" not in result.source_code and "conv_bn(self.depthwise, self.depthwise_bn" in result.source_code
    assert "SameConv2d(" in result.source_code  # correct_pad's padding is TF 'same' here


@pytest.mark.parametrize("kernel,stride", [(2, 3), (1, 2), (3, 2)])
def test_same_conv_helper_matches_tf_same_padding_at_every_size(kernel, stride):
    """SameConv works its padding out per call: at sizes other than the converted one too, and
    where TF pads nothing because the kernel is shorter than a stride."""
    import tensorflow as tf
    import torch
    import torch.nn.functional as F
    from torch import nn

    from tf2torch.converters.conv import SAME_CONV_HELPER

    namespace = {"nn": nn, "torch": torch, "F": F}
    exec(SAME_CONV_HELPER.format(n=2), namespace)  # noqa: S102 - our own helper class, as model.py defines it
    torch.manual_seed(0)
    conv = namespace["SameConv2d"](3, 4, kernel, stride=stride)
    for size in (9, 10, 11):
        x = np.random.default_rng(size).standard_normal((2, size, size + 2, 3)).astype(np.float32)
        kernel_hwio = conv.weight.detach().numpy().transpose(2, 3, 1, 0)
        expected = tf.nn.conv2d(x, kernel_hwio, stride, "SAME").numpy() + conv.bias.detach().numpy()
        with torch.no_grad():
            got = conv(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)

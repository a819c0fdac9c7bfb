"""Dense and Embedding against TensorFlow's output."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import convert_and_compare

DENSE_CASES = {
    "2d": {"shape": (11,), "units": 7, "kwargs": {}},
    "2d_no_bias_tanh": {"shape": (11,), "units": 5, "kwargs": {"use_bias": False, "activation": "tanh"}},
    "2d_relu": {"shape": (11,), "units": 1, "kwargs": {"activation": "relu"}},
    "3d": {"shape": (23, 6), "units": 9, "kwargs": {}},
    "3d_no_bias_gelu": {"shape": (23, 6), "units": 4, "kwargs": {"use_bias": False, "activation": "gelu"}},
    "3d_softmax": {"shape": (23, 6), "units": 5, "kwargs": {"activation": "softmax"}},
    "4d": {"shape": (13, 17, 3), "units": 8, "kwargs": {}},
    "4d_no_bias_sigmoid": {"shape": (13, 17, 3), "units": 2, "kwargs": {"use_bias": False, "activation": "sigmoid"}},
    "4d_softmax": {"shape": (13, 17, 3), "units": 6, "kwargs": {"activation": "softmax"}},
}


@pytest.mark.parametrize("case", list(DENSE_CASES.values()), ids=list(DENSE_CASES))
def test_dense(keras, tmp_path, case):
    inp = keras.Input(case["shape"])
    out = keras.layers.Dense(case["units"], **case["kwargs"])(inp)
    convert_and_compare(keras.Model(inp, out), tmp_path)


@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "no_bias"])
def test_dense_on_conv_feature_map(keras, tmp_path, use_bias):
    """A Dense on an NCHW conv feature map contracts the channel axis."""
    inp = keras.Input((13, 17, 3))
    x = keras.layers.Conv2D(5, 3, padding="same")(inp)
    x = keras.layers.Dense(7, use_bias=use_bias, activation="relu")(x)
    x = keras.layers.Conv2D(4, 3)(x)  # back into a conv: the Dense output must be laid out right too
    convert_and_compare(keras.Model(inp, x), tmp_path, batch_size=2)


def test_dense_on_conv_feature_map_is_output(keras, tmp_path):
    inp = keras.Input((13, 17, 3))
    x = keras.layers.Conv2D(5, 3)(inp)
    out = keras.layers.Dense(6, activation="elu")(x)
    convert_and_compare(keras.Model(inp, out), tmp_path, batch_size=2)


def test_dense_on_5d(keras, tmp_path):
    inp = keras.Input((5, 7, 9, 3))
    out = keras.layers.Dense(4)(inp)
    convert_and_compare(keras.Model(inp, out), tmp_path, batch_size=2)


def test_dense_after_flatten_of_conv(keras, tmp_path):
    inp = keras.Input((13, 17, 3))
    x = keras.layers.Conv2D(4, 3, strides=2)(inp)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(5, use_bias=False)(x)
    convert_and_compare(keras.Model(inp, out), tmp_path)


@pytest.mark.parametrize(
    "seq_shape,input_dim,output_dim",
    [((23,), 37, 5), ((4, 6), 11, 3), ((1,), 1000, 16)],
    ids=["seq23_v37_d5", "2d_ids_v11_d3", "single_v1000_d16"],
)
def test_embedding(keras, tmp_path, seq_shape, input_dim, output_dim):
    inp = keras.Input(seq_shape, dtype="int32")
    out = keras.layers.Embedding(input_dim, output_dim)(inp)
    rng = np.random.default_rng(1)
    ids = rng.integers(0, input_dim, size=(3,) + seq_shape).astype(np.int32)
    ids.flat[0] = input_dim - 1  # last row of the table
    result = convert_and_compare(keras.Model(inp, out), tmp_path, inputs=[ids])
    assert dict(result.module.named_parameters())  # the table is a parameter


def test_embedding_then_dense(keras, tmp_path):
    inp = keras.Input((23,), dtype="int32")
    x = keras.layers.Embedding(50, 8)(inp)
    out = keras.layers.Dense(3, activation="tanh")(x)
    convert_and_compare(keras.Model(inp, out), tmp_path)


def test_embedding_mask_zero_keeps_the_embedding_exact(keras, tmp_path):
    # mask_zero is supported (a Keras mask, tests/converters/test_masking.py); the embedding
    # output itself is unchanged and no padding_idx is used.
    inp = keras.Input((9,), dtype="int32")
    out = keras.layers.Embedding(20, 4, mask_zero=True)(inp)
    ids = np.array([[1, 2, 0, 0, 5, 6, 7, 0, 3], [0, 0, 0, 4, 5, 6, 7, 8, 9]], dtype=np.int32)
    result = convert_and_compare(keras.Model(inp, out), tmp_path, inputs=[ids])
    assert "padding_idx" not in result.source_code

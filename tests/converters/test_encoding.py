"""Discretization, IntegerLookup and CategoryEncoding against TensorFlow's output."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import convert_and_compare

BOUNDARIES = [-1.0, 0.0, 0.5, 2.5]


def _floats(shape, batch=3):
    x = np.random.default_rng(0).normal(0.5, 1.5, (batch,) + shape).astype(np.float32)
    x.flat[:4] = BOUNDARIES  # values on the boundaries go to the upper bucket
    return [x]


def _ids(shape, high, batch=3, dtype="int64"):
    return [np.random.default_rng(1).integers(0, high, (batch,) + shape).astype(dtype)]


@pytest.mark.parametrize(
    "mode, shape", [("int", (5, 3)), ("one_hot", (1,)), ("multi_hot", (4,)), ("count", (6,))],
)
def test_discretization(keras, tmp_path, mode, shape):
    inp = keras.Input(shape)
    model = keras.Model(inp, keras.layers.Discretization(bin_boundaries=BOUNDARIES, output_mode=mode)(inp))
    convert_and_compare(model, tmp_path, inputs=_floats(shape))


def test_discretization_adapted_then_embedding(keras, tmp_path):
    layer = keras.layers.Discretization(num_bins=5, epsilon=0.001)
    layer.adapt(np.random.default_rng(3).normal(0, 1, (200, 1)).astype(np.float32))
    inp = keras.Input((7,))
    model = keras.Model(inp, keras.layers.Embedding(5, 3)(layer(inp)))
    convert_and_compare(model, tmp_path, inputs=_floats((7,)))


def test_discretization_tf_keras_h5(tmp_path):
    import tf_keras

    inp = tf_keras.Input((5,))
    model = tf_keras.Model(inp, tf_keras.layers.Discretization(bin_boundaries=BOUNDARIES)(inp))
    convert_and_compare(model, tmp_path, suffix=".h5", inputs=_floats((5,)))


LOOKUP_CASES = {
    "default": {},
    "two-oov-mask": {"num_oov_indices": 2, "mask_token": 0},
    "multi-hot": {"output_mode": "multi_hot"},
    "count-mask": {"output_mode": "count", "mask_token": 0},
    "multi-hot-mask-two-oov": {"output_mode": "multi_hot", "mask_token": 0, "num_oov_indices": 2},
}


@pytest.mark.parametrize("case", list(LOOKUP_CASES))
def test_integer_lookup(keras, tmp_path, case):
    inp = keras.Input((6,), dtype="int64")
    layer = keras.layers.IntegerLookup(vocabulary=[12, 5, 7, 40, 3], **LOOKUP_CASES[case])
    model = keras.Model(inp, layer(inp))
    convert_and_compare(model, tmp_path, inputs=_ids((6,), 45))


def test_integer_lookup_then_embedding_tf_keras_h5(tmp_path):
    import tf_keras

    inp = tf_keras.Input((6,), dtype="int64")
    ids = tf_keras.layers.IntegerLookup(vocabulary=[12, 5, 7, 40, 3], num_oov_indices=3)(inp)
    model = tf_keras.Model(inp, tf_keras.layers.Embedding(8, 4)(ids))
    convert_and_compare(model, tmp_path, suffix=".h5", inputs=_ids((6,), 45))


@pytest.mark.parametrize("kwargs", [{}, {"num_oov_indices": 2, "mask_token": 0}], ids=["default", "mask-two-oov"])
def test_adapted_integer_lookup(keras, tmp_path, kwargs):
    """An adapted vocabulary is not in the config: Keras 3 saves it in the archive's assets."""
    layer = keras.layers.IntegerLookup(**kwargs)
    layer.adapt(np.array([5, 2, 2, 9, 9, 9, 30]))
    inp = keras.Input((6,), dtype="int64")
    model = keras.Model(inp, keras.layers.Embedding(8, 3)(layer(inp)))
    convert_and_compare(model, tmp_path, inputs=[np.array([[0, 2, 5, 9, 30, 4], [9, 9, 1, 0, 2, 31]], np.int64)])


@pytest.mark.parametrize(
    "mode, shape", [("multi_hot", (4,)), ("count", (5,)), ("one_hot", (1,)), ("one_hot", (3,)), ("one_hot", ())],
)
def test_category_encoding(keras, tmp_path, mode, shape):
    inp = keras.Input(shape, dtype="int32")
    model = keras.Model(inp, keras.layers.CategoryEncoding(7, output_mode=mode)(inp))
    convert_and_compare(model, tmp_path, inputs=_ids(shape, 7, dtype="int32"))


def test_category_encoding_tf_keras_h5(tmp_path):
    import tf_keras

    inp = tf_keras.Input((4,), dtype="int32")
    x = tf_keras.layers.CategoryEncoding(6, output_mode="count")(inp)
    model = tf_keras.Model(inp, tf_keras.layers.Dense(3)(x))
    convert_and_compare(model, tmp_path, suffix=".h5", inputs=_ids((4,), 6, dtype="int32"))


def test_integer_lookup_one_hot_with_mask(keras, tmp_path):
    inp = keras.Input((1,), dtype="int64")
    layer = keras.layers.IntegerLookup(vocabulary=[12, 5, 7], output_mode="one_hot", mask_token=0)
    inputs = [np.array([[0], [12], [5], [99]], np.int64)]  # the mask token encodes as all zeros
    convert_and_compare(keras.Model(inp, layer(inp)), tmp_path, inputs=inputs)


@pytest.mark.parametrize("kwargs", [{}, {"mask_token": 0, "num_oov_indices": 2, "oov_token": 99}], ids=["default", "mask"])
def test_integer_lookup_invert(keras, tmp_path, kwargs):
    inp = keras.Input((6,), dtype="int64")
    layer = keras.layers.IntegerLookup(vocabulary=[12, 5, 7, 40], invert=True, **kwargs)
    ids = np.array([[0, 1, 2, 3, 4, 5], [6, 7, 2, 0, 1, 3]], np.int64)  # 6 and 7 are past the table
    convert_and_compare(keras.Model(inp, layer(inp)), tmp_path, inputs=[ids])

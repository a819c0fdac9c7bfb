"""Activation functions and activation layers against TensorFlow's output."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import convert_and_compare

KERAS3_ACTIVATIONS = [
    "celu", "elu", "exponential", "gelu", "glu", "hard_shrink", "hard_sigmoid", "hard_silu", "hard_swish",
    "hard_tanh", "leaky_relu", "linear", "log_sigmoid", "log_softmax", "mish", "relu", "relu6", "selu",
    "sigmoid", "silu", "soft_shrink", "softmax", "softplus", "softsign", "sparse_plus", "sparse_sigmoid",
    "squareplus", "swish", "tanh", "tanh_shrink",
]


def _scaled_4d(shape=(3, 13, 17, 4), scale=3.0, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(shape) * scale).astype(np.float32)]


@pytest.mark.parametrize("name", KERAS3_ACTIVATIONS, ids=KERAS3_ACTIVATIONS)
def test_activation_layer_4d(keras, tmp_path, name):
    inp = keras.Input((13, 17, 4))
    # A conv in front keeps the activation inside the NCHW part of the graph.
    x = keras.layers.Conv2D(4, 3, padding="same")(inp)
    out = keras.layers.Activation(name)(x)
    model = keras.Model(inp, out)
    convert_and_compare(model, tmp_path, inputs=_scaled_4d())


@pytest.mark.parametrize("name", ["relu", "softmax", "glu", "log_softmax", "hard_shrink"])
def test_activation_layer_3d(keras, tmp_path, name):
    inp = keras.Input((23, 6))
    out = keras.layers.Activation(name)(inp)
    convert_and_compare(keras.Model(inp, out), tmp_path, inputs=_scaled_4d((2, 23, 6)))


def test_activation_sparsemax(keras, tmp_path):
    inp = keras.Input((13, 17, 5))
    out = keras.layers.Activation("sparsemax")(inp)
    convert_and_compare(keras.Model(inp, out), tmp_path, inputs=_scaled_4d((3, 13, 17, 5), scale=1.5))


@pytest.mark.parametrize("name", ["sparsemax", "softmax"], ids=["sparsemax", "softmax"])
def test_activation_on_dense_2d(keras, tmp_path, name):
    inp = keras.Input((9,))
    out = keras.layers.Dense(7, activation=name)(inp)
    convert_and_compare(keras.Model(inp, out), tmp_path, batch_size=4)


RELU_CASES = {
    "max_value": {"max_value": 2.5},
    "max_value_6": {"max_value": 6.0},
    "slope": {"negative_slope": 0.1},
    "threshold": {"threshold": 0.7},
    "slope_threshold": {"negative_slope": 0.2, "threshold": 0.5},
    "all": {"max_value": 1.5, "negative_slope": 0.25, "threshold": 0.4},
    "max_slope": {"max_value": 3.0, "negative_slope": 0.05},
    "max_threshold": {"max_value": 2.0, "threshold": 0.5},
}


@pytest.mark.parametrize("kwargs", list(RELU_CASES.values()), ids=list(RELU_CASES))
def test_relu_layer(keras, tmp_path, kwargs):
    inp = keras.Input((13, 17, 3))
    out = keras.layers.ReLU(**kwargs)(inp)
    convert_and_compare(keras.Model(inp, out), tmp_path, inputs=_scaled_4d((3, 13, 17, 3)))


NEGATIVE_THRESHOLD_CASES = {
    "threshold": {"threshold": -0.8},
    "slope": {"negative_slope": 0.3, "threshold": -0.5},
    "all": {"max_value": 2.0, "negative_slope": 0.1, "threshold": -1.0},
}


@pytest.mark.parametrize("kwargs", list(NEGATIVE_THRESHOLD_CASES.values()), ids=list(NEGATIVE_THRESHOLD_CASES))
def test_relu_layer_negative_threshold(keras, tmp_path, kwargs):
    """The ReLU layer's constructor rejects threshold < 0, but keras.activations.relu (and a
    config edited after construction) accept it: where(x > t, x, 0) lets (t, 0) through."""
    with pytest.raises(ValueError):
        keras.layers.ReLU(threshold=-0.5)
    inp = keras.Input((13, 17, 3))
    layer = keras.layers.ReLU(**{**kwargs, "threshold": 0.0})
    layer.threshold = kwargs["threshold"]
    model = keras.Model(inp, layer(inp))
    x = _scaled_4d((3, 13, 17, 3))
    expected = keras.activations.relu(x[0], **kwargs)
    np.testing.assert_allclose(np.asarray(model(x[0])), np.asarray(expected), atol=1e-6)
    convert_and_compare(model, tmp_path, inputs=x)


@pytest.mark.parametrize("slope", [0.05, 0.3, 1.7], ids=["0.05", "default", "1.7"])
def test_leaky_relu(keras, tmp_path, slope):
    inp = keras.Input((23, 5))
    layer = keras.layers.LeakyReLU() if slope == 0.3 else keras.layers.LeakyReLU(negative_slope=slope)
    convert_and_compare(keras.Model(inp, layer(inp)), tmp_path, batch_size=2)


@pytest.mark.parametrize(
    "shape,shared_axes",
    [((13, 17, 3), None), ((13, 17, 3), [1, 2]), ((13, 17, 3), [2]), ((23, 5), None), ((23, 5), [1]), ((7,), None)],
    ids=["4d_per_element", "4d_shared_hw", "4d_shared_w", "3d_per_element", "3d_shared_steps", "2d"],
)
def test_prelu(keras, tmp_path, shape, shared_axes):
    inp = keras.Input(shape)
    x = keras.layers.PReLU(shared_axes=shared_axes)(inp)
    if len(shape) == 3:
        x = keras.layers.Conv2D(2, 3)(x)  # keep the PReLU inside an NCHW region
    convert_and_compare(keras.Model(inp, x), tmp_path)


@pytest.mark.parametrize("shape", [(13, 17, 3), (23, 4)], ids=["4d", "3d"])
def test_elu_layer(keras, tmp_path, shape):
    inp = keras.Input(shape)
    out = keras.layers.ELU(alpha=0.7)(inp)
    convert_and_compare(keras.Model(inp, out), tmp_path, inputs=_scaled_4d((2,) + shape))


@pytest.mark.parametrize(
    "shape,axis", [((13, 17, 5), -1), ((23, 6), 1), ((13, 17, 5), 1), ((13, 17, 5), 2), ((9,), -1)],
    ids=["4d_last", "3d_axis1", "4d_axis1", "4d_axis2", "2d"],
)
def test_softmax_layer(keras, tmp_path, shape, axis):
    inp = keras.Input(shape)
    out = keras.layers.Softmax(axis=axis)(inp)
    convert_and_compare(keras.Model(inp, out), tmp_path, inputs=_scaled_4d((3,) + shape))


# -- Keras 2 (.h5, tf_keras) -----------------------------------------------------------------


def test_k2_hard_sigmoid_h5(tmp_path):
    import tf_keras

    inp = tf_keras.Input((13, 17, 3))
    out = tf_keras.layers.Activation("hard_sigmoid")(inp)
    model = tf_keras.Model(inp, out)
    x = _scaled_4d((2, 13, 17, 3), scale=4.0)
    # What TF 2.21's tf_keras computes: the old clip(0.2x + 0.5, 0, 1).
    expected = np.clip(0.2 * x[0] + 0.5, 0.0, 1.0)
    np.testing.assert_allclose(np.asarray(model(x[0])), expected, atol=1e-6)
    convert_and_compare(model, tmp_path, suffix=".h5", inputs=x)


def test_k2_dense_hard_sigmoid_h5(tmp_path):
    import tf_keras

    inp = tf_keras.Input((9,))
    out = tf_keras.layers.Dense(5, activation="hard_sigmoid")(inp)
    convert_and_compare(tf_keras.Model(inp, out), tmp_path, suffix=".h5")

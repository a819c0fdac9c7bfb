"""Dropout-like layers: exact identity in eval; in training, the statistics of the noise
(random streams differ between TensorFlow and torch, so values cannot be compared)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import convert_and_compare

LAYERS = {
    "dropout_2d": ("Dropout", {"rate": 0.3}, (11,)),
    "dropout_4d": ("Dropout", {"rate": 0.3}, (13, 17, 3)),
    "spatial_dropout1d": ("SpatialDropout1D", {"rate": 0.3}, (23, 5)),
    "spatial_dropout2d": ("SpatialDropout2D", {"rate": 0.4}, (13, 17, 3)),
    "spatial_dropout3d": ("SpatialDropout3D", {"rate": 0.25}, (5, 7, 9, 3)),
    "gaussian_noise": ("GaussianNoise", {"stddev": 0.5}, (13, 17, 3)),
    "gaussian_dropout": ("GaussianDropout", {"rate": 0.3}, (23, 5)),
    "alpha_dropout": ("AlphaDropout", {"rate": 0.2}, (13, 17, 3)),
}


def _model(keras, class_name, kwargs, shape, conv=False):
    inp = keras.Input(shape)
    x = inp
    if conv:
        x = keras.layers.Conv2D(4, 3)(x)
    x = getattr(keras.layers, class_name)(**kwargs)(x)
    return keras.Model(inp, x)


@pytest.mark.parametrize("case", list(LAYERS.values()), ids=list(LAYERS))
def test_eval_is_identity(keras, tmp_path, case):
    class_name, kwargs, shape = case
    convert_and_compare(_model(keras, class_name, kwargs, shape), tmp_path)


@pytest.mark.parametrize("class_name", ["Dropout", "SpatialDropout2D", "GaussianNoise", "AlphaDropout"])
def test_eval_identity_after_conv(keras, tmp_path, class_name):
    kwargs = {"stddev": 0.4} if class_name == "GaussianNoise" else {"rate": 0.3}
    convert_and_compare(_model(keras, class_name, kwargs, (13, 17, 3), conv=True), tmp_path)


def _train_pair(keras, tmp_path, class_name, kwargs, x):
    """(Keras training output, torch training output), both in Keras layout."""
    from tf2torch.verify.runner import to_source_layout, to_torch_layout

    model = _model(keras, class_name, kwargs, x.shape[1:])
    result = convert_and_compare(model, tmp_path, inputs=[x[:2]])
    keras_out = np.asarray(model(x, training=True))
    module = result.module
    module.train()
    torch.manual_seed(0)
    with torch.no_grad():
        torch_out = module(to_torch_layout(x, result.graph.inputs[0]))
    module.eval()
    return keras_out, to_source_layout(torch_out, result.graph.outputs[0])


def _dropout_stats(y, rate):
    kept = y != 0
    return 1.0 - kept.mean(), y[kept]


@pytest.mark.parametrize("shape", [(64, 1000), (8, 31, 33, 16)], ids=["2d", "4d"])
def test_dropout_training_statistics(keras, tmp_path, shape):
    rate = 0.3
    x = np.ones(shape, np.float32)
    for y in _train_pair(keras, tmp_path, "Dropout", {"rate": rate}, x):
        dropped, kept = _dropout_stats(y, rate)
        assert abs(dropped - rate) < 0.02
        np.testing.assert_allclose(kept, 1.0 / (1.0 - rate), rtol=1e-6)


@pytest.mark.parametrize(
    "class_name,shape,rate",
    [("SpatialDropout1D", (64, 23, 16), 0.3), ("SpatialDropout2D", (32, 13, 17, 16), 0.4),
     ("SpatialDropout3D", (32, 5, 7, 9, 16), 0.25)],
    ids=["1d", "2d", "3d"],
)
def test_spatial_dropout_training_drops_whole_channels(keras, tmp_path, class_name, shape, rate):
    x = np.ones(shape, np.float32)
    for y in _train_pair(keras, tmp_path, class_name, {"rate": rate}, x):
        per_channel = y.reshape(shape[0], -1, shape[-1])  # (batch, positions, channels)
        first = per_channel[:, :1, :]
        assert np.all(per_channel == first), "a channel was only partly dropped"
        values = first.ravel()
        np.testing.assert_allclose(values[values != 0], 1.0 / (1.0 - rate), rtol=1e-6)
        dropped = (values == 0).mean()
        assert abs(dropped - rate) < 0.12, dropped


def test_gaussian_noise_training_statistics(keras, tmp_path):
    stddev = 0.5
    x = np.full((16, 31, 33, 8), 2.0, np.float32)
    for y in _train_pair(keras, tmp_path, "GaussianNoise", {"stddev": stddev}, x):
        noise = y - x
        assert abs(noise.mean()) < 0.01
        assert abs(noise.std() - stddev) < 0.01


def test_gaussian_dropout_training_statistics(keras, tmp_path):
    rate = 0.3
    x = np.full((64, 23, 100), 3.0, np.float32)
    for y in _train_pair(keras, tmp_path, "GaussianDropout", {"rate": rate}, x):
        factor = y / x
        assert abs(factor.mean() - 1.0) < 0.01
        assert abs(factor.std() - np.sqrt(rate / (1.0 - rate))) < 0.01


def test_alpha_dropout_training_statistics(keras, tmp_path):
    rate = 0.2
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 31, 33, 8)).astype(np.float32)
    keras_out, torch_out = _train_pair(keras, tmp_path, "AlphaDropout", {"rate": rate}, x)
    alpha_p = -1.6732632423543772 * 1.0507009873554805
    a = ((1 - rate) * (1 + rate * alpha_p**2)) ** -0.5
    b = -a * alpha_p * rate
    for y in (keras_out, torch_out):
        assert abs(y.mean()) < 0.02
        assert abs(y.var() - 1.0) < 0.05
        dropped = np.isclose(y, a * alpha_p + b, atol=1e-5)
        assert abs(dropped.mean() - rate) < 0.02
        np.testing.assert_allclose(y[~dropped], a * x[~dropped] + b, rtol=1e-4, atol=1e-5)


def test_dropout_noise_shape_unsupported(keras, tmp_path):
    import tf2torch
    from tf2torch.errors import UnsupportedFeature

    model = _model(keras, "Dropout", {"rate": 0.3, "noise_shape": (None, 1, 3)}, (23, 3))
    model.save(str(tmp_path / "m.keras"))
    with pytest.raises(UnsupportedFeature, match="noise_shape"):
        tf2torch.convert(str(tmp_path / "m.keras"))


@pytest.mark.parametrize("class_name", ["Dropout", "SpatialDropout2D", "GaussianDropout", "AlphaDropout"])
def test_k2_eval_identity_h5(tmp_path, class_name):
    import tf_keras

    inp = tf_keras.Input((13, 17, 3))
    x = tf_keras.layers.Conv2D(4, 3)(inp)
    x = getattr(tf_keras.layers, class_name)(0.3)(x)
    convert_and_compare(tf_keras.Model(inp, x), tmp_path, suffix=".h5")


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_activity_regularization_is_identity(keras, tmp_path, training):
    model = _model(keras, "ActivityRegularization", {"l1": 0.01, "l2": 0.02}, (13, 17, 3), conv=True)
    result = convert_and_compare(model, tmp_path, training=training)
    assert "ActivityRegularization(l1=0.01, l2=0.02): an identity" in result.source_code

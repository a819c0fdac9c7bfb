"""Normalization, keras.applications' LayerScale and CustomScaleLayer, and per-sample Dropout
(stochastic depth) against TensorFlow's output."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tf2torch
from conftest import convert_and_compare


def _inputs(shape, batch=3, seed=0, scale=3.0, shift=1.5):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch,) + shape) * scale + shift).astype(np.float32)]


# name -> (input shape, Normalization kwargs); mean/variance passed in the config.
CONFIG_CASES = {
    "channels-4d": ((9, 7, 3), {"mean": [0.5, -1.0, 2.0], "variance": [4.0, 0.25, 9.0]}),
    "channels-4d-invert": ((9, 7, 3), {"mean": [0.5, -1.0, 2.0], "variance": [4.0, 0.25, 9.0], "invert": True}),
    "scalar-axis-none": ((5, 3), {"axis": None, "mean": 1.5, "variance": 2.5}),
    "features-2d": ((5,), {"mean": [1.0, 2.0, 3.0, 4.0, 5.0], "variance": [1.0, 2.0, 3.0, 4.0, 0.0]}),
    "steps-3d": ((7, 4), {"mean": [0.1, 0.2, 0.3, 0.4], "variance": [2.0, 3.0, 4.0, 5.0]}),
    "spatial-axes-4d": ((3, 5, 2), {"axis": (1, 2), "mean": np.arange(15.0).reshape(3, 5).tolist(),
                                    "variance": (np.arange(15.0).reshape(3, 5) + 1).tolist()}),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_normalization_from_config(keras, tmp_path, case):
    shape, kwargs = CONFIG_CASES[case]
    inp = keras.Input(shape)
    x = keras.layers.Conv2D(3, 1)(inp) if len(shape) == 3 and shape[-1] == 3 else inp  # an NCHW input too
    model = keras.Model(inp, keras.layers.Normalization(**kwargs)(x))
    convert_and_compare(model, tmp_path, inputs=_inputs(shape), perturb=False)


def _adapted_model(keras, shape, axis=-1, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((40,) + shape).astype(np.float32) * 2.0 + 0.5
    data[..., 0] = 3.0  # a constant feature: variance 0, the std floor (1e-7) applies
    norm = keras.layers.Normalization(axis=axis)
    norm.adapt(data)
    inp = keras.Input(shape)
    return keras.Model(inp, keras.layers.Conv2D(4, 3)(norm(inp)) if len(shape) == 3 else norm(inp))


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("shape", [(9, 7, 3), (6,)], ids=["4d", "2d"])
def test_normalization_adapted(keras, tmp_path, shape, suffix):
    model = _adapted_model(keras, shape)
    inputs = _inputs(shape, scale=1e-6, shift=3.0)  # near the constant feature: exercises the floor
    convert_and_compare(model, tmp_path, suffix=suffix, inputs=inputs, perturb=False)
    convert_and_compare(model, tmp_path, suffix=suffix, inputs=_inputs(shape), perturb=False)


def test_normalization_adapted_tf_keras_h5(tmp_path):
    import tf_keras

    convert_and_compare(_adapted_model(tf_keras, (9, 7, 3)), tmp_path, suffix=".h5", perturb=False)


def test_normalization_runs_without_permutes(keras, tmp_path):
    shape, kwargs = CONFIG_CASES["spatial-axes-4d"]
    inp = keras.Input(shape)
    x = keras.layers.Normalization(**kwargs)(keras.layers.Conv2D(2, 1)(inp))
    result = convert_and_compare(keras.Model(inp, keras.layers.Conv2D(3, 2)(x)), tmp_path, inputs=_inputs(shape))
    forward = result.source_code.split("def forward")[1]
    assert ".permute(" not in forward


def _layer_scale(keras):
    from keras.src.applications.convnext import LayerScale

    return LayerScale


@pytest.mark.parametrize("shape", [(9, 7, 5), (7, 5), (5,)], ids=["4d", "3d", "2d"])
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_layer_scale(keras, tmp_path, shape, suffix):
    inp = keras.Input(shape)
    x = keras.layers.Dense(6)(inp)
    x = _layer_scale(keras)(init_values=0.3, projection_dim=6)(x)
    if len(shape) == 3:
        x = keras.layers.Conv2D(4, 3)(x)  # the scaled map feeds a conv: NCHW gamma
    convert_and_compare(keras.Model(inp, x), tmp_path, suffix=suffix, inputs=_inputs(shape))


def test_layer_scale_trains(keras, tmp_path):
    inp = keras.Input((5, 7, 3))
    x = keras.layers.Conv2D(4, 3)(inp)
    model = keras.Model(inp, _layer_scale(keras)(init_values=0.5, projection_dim=4)(x))
    result = convert_and_compare(model, tmp_path, inputs=_inputs((5, 7, 3)))
    gammas = [p for name, p in result.module.named_parameters() if name.endswith("gamma")]
    assert len(gammas) == 1 and gammas[0].requires_grad and gammas[0].shape == (4, 1, 1)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_custom_scale_layer(keras, tmp_path, suffix):
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer

    inp = keras.Input((9, 7, 3))
    branch = keras.layers.Conv2D(3, 3, padding="same")(inp)
    out = CustomScaleLayer(scale=0.17)([inp, branch])
    convert_and_compare(keras.Model(inp, keras.layers.Conv2D(2, 1)(out)), tmp_path, suffix=suffix, inputs=_inputs((9, 7, 3)))


def _sample_dropout_model(keras, rate):
    inp = keras.Input((5, 7, 3))
    x = keras.layers.Conv2D(4, 3)(inp)
    x = keras.layers.Dropout(rate, noise_shape=(None, 1, 1, 1))(x)
    return keras.Model(inp, keras.layers.Add()([x, keras.layers.Conv2D(4, 3)(inp)]))


def test_sample_dropout_eval(keras, tmp_path):
    convert_and_compare(_sample_dropout_model(keras, 0.3), tmp_path, inputs=_inputs((5, 7, 3), batch=4))


def test_sample_dropout_train_drops_whole_samples(keras, tmp_path):
    inp = keras.Input((5, 7, 3))
    x = keras.layers.Conv2D(4, 3)(inp)
    model = keras.Model(inp, keras.layers.Dropout(0.4, noise_shape=(None, 1, 1, 1))(x))
    result = convert_and_compare(model, tmp_path, inputs=_inputs((5, 7, 3), batch=4))
    x = _inputs((5, 7, 3), batch=64)[0]
    expected = np.asarray(model(x, training=False)).transpose(0, 3, 1, 2) / (1 - 0.4)
    torch.manual_seed(0)
    with torch.no_grad():
        out = result.module.train()(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    dropped = np.all(out == 0, axis=(1, 2, 3))
    np.testing.assert_allclose(out[~dropped], expected[~dropped], rtol=1e-5, atol=1e-5)
    assert 5 <= dropped.sum() <= 45  # about 40% of 64 samples, whole samples at a time


def test_dropout_with_other_noise_shape_is_refused(keras, tmp_path):
    inp = keras.Input((5, 7, 3))
    model = keras.Model(inp, keras.layers.Dropout(0.3, noise_shape=(None, 1, 1, 3))(inp))
    path = tmp_path / "model.keras"
    model.save(path)
    with pytest.raises(tf2torch.ConversionError, match=r"noise_shape=\[None, 1, 1, 3\].*not supported"):
        tf2torch.convert(path)


# -- Resizing and CenterCrop ------------------------------------------------------------------

RESIZE_METHODS_KERAS3 = ["bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5"]


def _resize_model(keras, shape, **kwargs):
    inp = keras.Input(shape)
    x = keras.layers.Conv2D(3, 1)(inp)  # a channels-first tensor meets the resize
    return keras.Model(inp, keras.layers.Conv2D(2, 1)(keras.layers.Resizing(**kwargs)(x)))


@pytest.mark.parametrize("antialias", [False, True], ids=["plain", "antialias"])
@pytest.mark.parametrize("method", RESIZE_METHODS_KERAS3)
def test_resizing_down(keras, tmp_path, method, antialias):
    model = _resize_model(keras, (13, 17, 3), height=7, width=5, interpolation=method, antialias=antialias)
    convert_and_compare(model, tmp_path, inputs=_inputs((13, 17, 3)))


@pytest.mark.parametrize("method", ["bilinear", "nearest", "bicubic", "area", "lanczos3"])
def test_resizing_up(keras, tmp_path, method):
    model = _resize_model(keras, (9, 7, 3), height=23, width=12, interpolation=method)
    convert_and_compare(model, tmp_path, inputs=_inputs((9, 7, 3)))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"crop_to_aspect_ratio": True, "interpolation": "bicubic"},
        {"pad_to_aspect_ratio": True},
        {"pad_to_aspect_ratio": True, "fill_value": 1.5, "interpolation": "area"},
    ],
    ids=["crop", "pad", "pad-fill"],
)
@pytest.mark.parametrize("target", [(8, 11), (11, 5)], ids=["wide", "tall"])
def test_resizing_to_aspect_ratio(keras, tmp_path, kwargs, target):
    model = _resize_model(keras, (13, 10, 3), height=target[0], width=target[1], **kwargs)
    convert_and_compare(model, tmp_path, inputs=_inputs((13, 10, 3)))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"interpolation": "gaussian"},
        {"interpolation": "mitchellcubic"},
        {"interpolation": "bilinear", "crop_to_aspect_ratio": True},
    ],
    ids=["gaussian", "mitchellcubic", "crop"],
)
def test_resizing_tf_keras_h5(tmp_path, kwargs):
    import tf_keras

    inp = tf_keras.Input((13, 17, 3))
    model = tf_keras.Model(inp, tf_keras.layers.Resizing(9, 6, **kwargs)(inp))
    convert_and_compare(model, tmp_path, suffix=".h5", inputs=_inputs((13, 17, 3)))


def test_resizing_uses_interpolate_for_plain_bilinear(keras, tmp_path):
    model = _resize_model(keras, (13, 17, 3), height=7, width=5)
    result = convert_and_compare(model, tmp_path, inputs=_inputs((13, 17, 3)))
    assert 'F.interpolate(x, size=(7, 5), mode="bilinear")' in result.source_code
    assert "MatrixResize" not in result.source_code


@pytest.mark.parametrize("shape", [(13, 16, 3), (6, 16, 3)], ids=["crop", "smaller-resized"])
def test_center_crop(keras, tmp_path, shape):
    inp = keras.Input(shape)
    model = keras.Model(inp, keras.layers.CenterCrop(8, 9)(keras.layers.Conv2D(3, 1)(inp)))
    convert_and_compare(model, tmp_path, inputs=_inputs(shape))


def test_center_crop_tf_keras_h5(tmp_path):
    import tf_keras

    inp = tf_keras.Input((13, 16, 3))
    model = tf_keras.Model(inp, tf_keras.layers.CenterCrop(8, 9)(inp))
    convert_and_compare(model, tmp_path, suffix=".h5", inputs=_inputs((13, 16, 3)))


def test_resizing_unknown_size_is_refused(keras, tmp_path):
    inp = keras.Input((None, None, 3))
    model = keras.Model(inp, keras.layers.Resizing(5, 5, interpolation="bicubic")(inp))
    model.save(tmp_path / "m.keras")
    with pytest.raises(tf2torch.errors.UnsupportedFeature, match="unknown height or width"):
        tf2torch.convert(str(tmp_path / "m.keras"))


@pytest.mark.parametrize("value_range", [(0, 255), (-1, 1)])
def test_auto_contrast(keras, tmp_path, value_range):
    inp = keras.Input((9, 7, 3))
    x = keras.layers.Conv2D(3, 1)(inp)
    model = keras.Model(inp, keras.layers.AutoContrast(value_range=value_range)(x))
    inputs = _inputs((9, 7, 3))
    inputs[0][1, :, :, 2] = 0.25  # a constant channel: Keras keeps it (0 / 0 -> the input)
    convert_and_compare(model, tmp_path, inputs=inputs, perturb=False)


def test_pipeline(keras, tmp_path):
    layers = keras.layers
    pipeline = layers.Pipeline([layers.RandomFlip(), layers.Resizing(7, 6, interpolation="area"), layers.Rescaling(0.5)])
    inp = keras.Input((13, 11, 3))
    model = keras.Model(inp, layers.Conv2D(2, 3)(pipeline(inp)))
    convert_and_compare(model, tmp_path, inputs=_inputs((13, 11, 3)))

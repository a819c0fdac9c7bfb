"""data_format="channels_first" (and BatchNormalization / GroupNormalization axis=1) against
TensorFlow: the torch tensors are NCHW as Keras' are, with no runtime permute."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import convert_and_compare, set_batchnorm_statistics

CF = {"data_format": "channels_first"}


def _inputs(shape, batch=3, seed=0):
    return [np.random.default_rng(seed).normal(0.3, 1.0, (batch,) + shape).astype(np.float32)]


def _cnn_2d(layers, input_layer, dropout=True):
    inp = input_layer((3, 13, 17))
    x = layers.Conv2D(6, 3, strides=2, padding="same", **CF)(inp)
    x = layers.BatchNormalization(axis=1)(x)
    x = layers.MaxPooling2D(2, padding="same", **CF)(x)
    x = layers.DepthwiseConv2D(3, padding="same", **CF)(x)
    x = layers.SeparableConv2D(5, 2, **CF)(x)
    x = layers.Conv2DTranspose(4, 3, strides=2, **CF)(x)
    x = layers.UpSampling2D((2, 1), **CF)(x)
    x = layers.ZeroPadding2D(((1, 0), (2, 1)), **CF)(x)
    x = layers.Cropping2D(((0, 1), (1, 2)), **CF)(x)
    x = layers.AveragePooling2D(3, strides=2, **CF)(x)
    if dropout:  # random in training
        x = layers.SpatialDropout2D(0.3, **CF)(x)
    skip = layers.GlobalMaxPooling2D(**CF)(x)
    x = layers.Flatten(**CF)(x)
    x = layers.Concatenate()([layers.Dense(4)(x), skip])
    return inp, layers.Dense(3)(x)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_channels_first_cnn_keras3(keras, tmp_path, training):
    model = keras.Model(*_cnn_2d(keras.layers, keras.Input, dropout=not training))
    batch = _inputs((3, 13, 17))
    set_batchnorm_statistics(model, batch[0])
    result = convert_and_compare(model, tmp_path, inputs=batch, training=training, perturb=False)
    assert ".permute(" not in result.source_code  # NCHW end to end, as in Keras
    assert not [n for n in result.graph.notes if "runtime permute" in n]


def test_channels_first_cnn_tf_keras_h5(tmp_path):
    import tf_keras

    model = tf_keras.Model(*_cnn_2d(tf_keras.layers, tf_keras.Input))
    convert_and_compare(model, tmp_path, suffix=".h5", inputs=_inputs((3, 13, 17)))


def test_channels_first_sequence_layers(keras, tmp_path):
    layers = keras.layers
    inp = keras.Input((7, 11))  # (batch, channels, steps) for the channels_first layers
    x = layers.Conv1D(6, 3, padding="causal", **CF)(inp)
    x = layers.GroupNormalization(groups=3, axis=1)(x)
    x = layers.MaxPooling1D(2, **CF)(x)
    a = layers.GlobalAveragePooling1D(**CF)(x)  # the example: a mean over the last axis
    b = layers.GlobalMaxPooling1D(**CF, keepdims=True)(inp)
    model = keras.Model(inp, [a, layers.Flatten()(b), layers.Cropping1D((1, 0))(x)])
    convert_and_compare(model, tmp_path, inputs=_inputs((7, 11)))


def test_channels_first_3d(keras, tmp_path):
    layers = keras.layers
    inp = keras.Input((2, 5, 7, 6))
    x = layers.Conv3D(3, 2, padding="same", **CF)(inp)
    x = layers.BatchNormalization(axis=1, epsilon=0.01)(x)
    x = layers.AveragePooling3D(2, **CF)(x)
    x = layers.UpSampling3D(2, **CF)(x)
    x = layers.ZeroPadding3D(1, **CF)(x)
    model = keras.Model(inp, layers.GlobalAveragePooling3D(**CF)(x))
    convert_and_compare(model, tmp_path, inputs=_inputs((2, 5, 7, 6)))


def test_channels_first_resizing(keras, tmp_path):
    inp = keras.Input((3, 13, 10))
    x = keras.layers.Resizing(7, 9, interpolation="bicubic", crop_to_aspect_ratio=True, **CF)(inp)
    model = keras.Model(inp, keras.layers.CenterCrop(5, 6, **CF)(x))
    convert_and_compare(model, tmp_path, inputs=_inputs((3, 13, 10)))

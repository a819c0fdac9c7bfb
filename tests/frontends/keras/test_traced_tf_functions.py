"""tf.keras raw TensorFlow calls outside the op table are traced (TensorFlow's own functions)."""

from __future__ import annotations

import pytest

import tf2torch
from conftest import perturb_weights
from tf2torch import cli


@pytest.fixture
def tiled_h5(tmp_path):
    import tensorflow as tf
    import tf_keras

    inp = tf_keras.Input((9, 7, 3))
    x = tf_keras.layers.Conv2D(4, 3, strides=2, padding="same")(inp)
    pooled = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    x = tf.concat([x, tf.tile(pooled, [1, 5, 4, 1])], axis=-1)  # tf.tile: not in the op table
    x = tf.math.cumsum(x, axis=2, reverse=True)
    model = tf_keras.Model(inp, tf_keras.layers.Dense(3)(tf_keras.layers.Flatten()(x)))
    perturb_weights(model)
    path = tmp_path / "tiled.h5"
    model.save(path)
    return model, path


def test_a_tf_function_outside_the_table_is_traced_and_checked(tiled_h5):
    model, path = tiled_h5
    result = tf2torch.convert(str(path))
    assert "class TfTile(nn.Module)" in result.source_code and "tf.tile (a raw TensorFlow call" in result.source_code
    assert result.verify(keras_model=model, batch_size=3).ok


def test_without_tensorflow_it_is_named_with_the_way_out(tiled_h5, monkeypatch, capsys, tmp_path):
    from tf2torch.frontends.keras import importer

    monkeypatch.setattr(importer, "tensorflow_available", lambda: False)
    assert cli.main(["convert", str(tiled_h5[1]), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "tf.tile" in err and "with TensorFlow installed it is traced" in err

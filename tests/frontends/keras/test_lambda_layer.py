"""Lambda layers: refused by default (their functions are code from the file); converted by
tracing with allow_lambda=True / --allow-lambda, verified against Keras."""

from __future__ import annotations

import numpy as np
import pytest
from keras import ops
from tf_keras import backend as K

import tf2torch
from conftest import perturb_weights
from tf2torch.cli import main


def siamese_distance(pair):
    """Euclidean distance of two embeddings."""
    return ops.sqrt(ops.sum(ops.square(pair[0] - pair[1]), axis=1, keepdims=True))


def _tf_keras_siamese(path):
    import tf_keras

    left, right = tf_keras.Input((7,)), tf_keras.Input((7,))
    encoder = tf_keras.Sequential([tf_keras.layers.Dense(5, activation="tanh"), tf_keras.layers.Dense(4)], name="encoder")
    distance = tf_keras.layers.Lambda(
        lambda pair: K.sqrt(K.sum(K.square(pair[0] - pair[1]), axis=1, keepdims=True)), name="distance"
    )([encoder(left), encoder(right)])
    model = tf_keras.Model([left, right], tf_keras.layers.Dense(1, activation="sigmoid")(distance))
    perturb_weights(model)
    model.save(path)
    return model


def _inputs(batch=3):
    rng = np.random.default_rng(3)
    return [rng.standard_normal((batch, 7)).astype(np.float32) for _ in range(2)]


def test_lambda_is_refused_by_default_naming_the_opt_in(tmp_path, capsys):
    path = tmp_path / "siamese.h5"
    _tf_keras_siamese(path)
    with pytest.raises(tf2torch.UnsupportedLayers, match=r"distance \(Lambda\)") as info:
        tf2torch.convert(str(path))
    assert "--allow-lambda" in str(info.value) and "allow_lambda=True" in str(info.value)
    out = tmp_path / "out"
    assert main(["convert", str(path), "-o", str(out)]) == 2
    assert "Traceback" not in capsys.readouterr().err and not out.exists()


def test_tf_keras_siamese_lambda_converts_with_allow_lambda(tmp_path, capsys):
    path = tmp_path / "siamese.h5"
    model = _tf_keras_siamese(path)
    result = tf2torch.convert(str(path), allow_lambda=True)
    assert "class DistanceLambda(nn.Module)" in result.source_code
    report = result.verify(_inputs(), keras_model=model)
    assert report.ok, report.table()
    out = tmp_path / "out"
    assert main(["convert", str(path), "-o", str(out), "--allow-lambda", "--verify"]) == 0, capsys.readouterr().err
    assert (out / "model.py").exists()


def test_keras3_siamese_lambda_converts_with_allow_lambda(keras, tmp_path):
    left, right = keras.Input((7,)), keras.Input((7,))
    encoder = keras.Sequential([keras.layers.Dense(5, activation="tanh"), keras.layers.Dense(4)], name="encoder")
    distance = keras.layers.Lambda(siamese_distance, output_shape=(1,), name="distance")([encoder(left), encoder(right)])
    model = keras.Model([left, right], keras.layers.Dense(1, activation="sigmoid")(distance))
    perturb_weights(model)
    path = tmp_path / "siamese.keras"
    model.save(path)
    with pytest.raises(tf2torch.UnsupportedLayers, match="allow_lambda"):
        tf2torch.convert(str(path))
    # Keras 3 stores a named function by name only: its code comes through custom_objects.
    result = tf2torch.convert(str(path), allow_lambda=True, custom_objects={"siamese_distance": siamese_distance})
    report = result.verify(_inputs(), keras_model=model)
    assert report.ok, report.table()

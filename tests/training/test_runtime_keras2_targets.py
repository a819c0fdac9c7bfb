"""tf.keras 2 reshapes 1-D targets of 2-D predictions to (batch, 1) before its compiled
metrics (compile_utils.match_dtype_and_rank); the training runtime does the same for
tf.keras sources, so metric values match tf.keras' own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tf2torch


def _model(tf_keras, case: str):
    model = tf_keras.Sequential([tf_keras.Input((6,)), tf_keras.layers.Dense(5, activation="tanh"),
                                 tf_keras.layers.Dense(3 if case == "accuracy_int_labels" else 1)])
    if case == "accuracy_int_labels":
        # A loss object: tf.keras resolves "accuracy" to categorical_accuracy, then applies it
        # to the integer labels (comparing the prediction with class 0).
        model.compile("sgd", tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    else:
        model.compile("sgd", "mse", metrics=["mae", "mse"])
    return model


@pytest.mark.parametrize("case", ["accuracy_int_labels", "mae_1d_targets"])
def test_keras2_metrics_see_targets_as_tf_keras_does(tmp_path, case):
    import tf_keras

    rng = np.random.default_rng(4)
    model = _model(tf_keras, case)
    x = rng.normal(size=(13, 6)).astype("float32")
    y = rng.integers(0, 3, 13) if case == "accuracy_int_labels" else rng.normal(size=13).astype("float32")
    path = tmp_path / "model.h5"
    model.save(path)
    expected = dict(zip(model.metrics_names, model.evaluate(x, y, batch_size=13, verbose=0)))

    training = tf2torch.convert(str(path)).training_setup()
    loss = training.test_step((torch.from_numpy(x),), torch.from_numpy(y))
    got = {"loss": float(loss)} | {m.name: float(m.result()) for m in training.metrics}

    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name


def test_keras3_losses_and_metrics_expand_1d_targets(keras, tmp_path):
    """Keras 3 too (LossFunctionWrapper, mean_absolute_error, binary_accuracy): (batch,)
    targets of (batch, 1) predictions are compared element by element, not broadcast."""
    rng = np.random.default_rng(5)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="tanh"), keras.layers.Dense(1)])
    model.compile("sgd", "mse", metrics=["mae", keras.metrics.BinaryAccuracy(threshold=0.1)])
    x = rng.normal(size=(13, 6)).astype("float32")
    y = (rng.normal(size=13) > 0).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)
    expected = model.evaluate(x, y, batch_size=13, verbose=0, return_dict=True)

    training = tf2torch.convert(str(path)).training_setup()
    loss = training.test_step((torch.from_numpy(x),), torch.from_numpy(y))
    got = {"loss": float(loss)} | {m.name: float(m.result()) for m in training.metrics}

    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert got[name] == pytest.approx(float(value), rel=1e-5, abs=1e-6), name

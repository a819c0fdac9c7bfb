"""Optimizer state transfer (train 10 steps in Keras, save, convert, 10 more in torch == 20 in
Keras) and a tf.keras 2.x .h5 source (training_config)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch
from training_helpers import RTOL, batches, compare_weights, keras_steps, torch_steps

import tf2torch
from tf2torch.training.compile_config import UnsupportedTraining

RESUME_OPTIMIZERS = {
    "adam_ema_exponential": lambda: keras.optimizers.Adam(
        keras.optimizers.schedules.ExponentialDecay(0.02, 3, 0.8), use_ema=True, ema_momentum=0.8),
    "sgd_momentum": lambda: keras.optimizers.SGD(0.05, momentum=0.9),
    "rmsprop_centered_momentum": lambda: keras.optimizers.RMSprop(0.005, momentum=0.5, centered=True),
    "nadam": lambda: keras.optimizers.Nadam(0.01),
    "ftrl": lambda: keras.optimizers.Ftrl(0.1, l1_regularization_strength=0.01),
    "adagrad_amsgrad_free": lambda: keras.optimizers.Adagrad(0.1),
}


def small_cnn() -> keras.Model:
    inputs = keras.Input((7, 9, 2), name="image")
    x = keras.layers.Conv2D(5, 3, name="conv", kernel_regularizer=keras.regularizers.L2(0.01))(inputs)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(6, activation="tanh", name="hidden", kernel_constraint=keras.constraints.UnitNorm())(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


RESUME_DEFAULT = {"adam_ema_exponential", "rmsprop_centered_momentum", "nadam"}


@pytest.mark.parametrize("optimizer", [
    pytest.param(name, id=name, marks=() if name in RESUME_DEFAULT else pytest.mark.slow) for name in RESUME_OPTIMIZERS
])
def test_resume_from_keras_optimizer_state(optimizer, tmp_path):
    data = batches((7, 9, 2), 3, 20, 5)
    keras.utils.set_random_seed(3)
    model = small_cnn()
    model.compile(optimizer=RESUME_OPTIMIZERS[optimizer](), loss="sparse_categorical_crossentropy")
    keras_steps(model, data[:10])
    path = tmp_path / "after10.keras"
    model.save(path)
    result = tf2torch.convert(path)
    training = result.training_setup()
    assert training.optimizer.param_groups[0]["iterations"] == 10
    torch_losses = torch_steps(result, training, data[10:])
    keras_losses = keras_steps(model, data[10:])
    np.testing.assert_allclose(torch_losses, keras_losses, rtol=RTOL)
    errors = compare_weights(model, result.module, tmp_path)
    assert max(errors.values()) < RTOL, errors


def test_training_setup_can_start_fresh(tmp_path):
    """load_optimizer_state=False: a new optimizer (iterations 0, empty moments)."""
    keras.utils.set_random_seed(3)
    model = small_cnn()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    keras_steps(model, batches((7, 9, 2), 3, 2, 4))
    model.save(tmp_path / "m.keras")
    result = tf2torch.convert(tmp_path / "m.keras")
    fresh = result.training_setup(load_optimizer_state=False)
    assert fresh.optimizer.param_groups[0]["iterations"] == 0
    assert not fresh.optimizer.state
    resumed = result.training_setup()
    assert resumed.optimizer.param_groups[0]["iterations"] == 2
    assert all("velocity" in s for s in resumed.optimizer.state.values())


def tf_keras_model(tf_keras, optimizer):
    inputs = tf_keras.Input((6,), name="features")
    x = tf_keras.layers.Dense(9, activation="relu", name="hidden", kernel_regularizer=tf_keras.regularizers.L2(0.02),
                              kernel_constraint=tf_keras.constraints.MaxNorm(0.7))(inputs)
    outputs = tf_keras.layers.Dense(4, activation="softmax", name="probs")(x)
    model = tf_keras.Model(inputs, outputs)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


H5_OPTIMIZERS = {
    "sgd_momentum": lambda k: k.optimizers.SGD(0.05, momentum=0.9),
    "adam": lambda k: k.optimizers.Adam(0.01),
    "legacy_adam_decay": lambda k: k.optimizers.legacy.Adam(0.02, decay=0.05),
    "legacy_rmsprop": lambda k: k.optimizers.legacy.RMSprop(0.01, momentum=0.3),
}


H5_DEFAULT = {"sgd_momentum", "legacy_adam_decay"}


@pytest.mark.parametrize("optimizer", [
    pytest.param(name, id=name, marks=() if name in H5_DEFAULT else pytest.mark.slow) for name in H5_OPTIMIZERS
])
def test_tf_keras_h5_parity(optimizer, tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(2)
    model = tf_keras_model(tf_keras, H5_OPTIMIZERS[optimizer](tf_keras))
    path = tmp_path / "start.h5"
    model.save(path)
    result = tf2torch.convert(path)
    training = result.training_setup()
    data = batches((6,), 4, 25, 5)
    torch_losses = torch_steps(result, training, data)
    keras_losses = keras_steps(model, data)
    np.testing.assert_allclose(torch_losses, keras_losses, rtol=RTOL)
    errors = compare_weights(model, result.module, tmp_path, suffix=".h5")
    assert max(errors.values()) < RTOL, errors


def test_unsupported_optimizer_is_a_clear_error(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="d")(inputs))
    model.compile(optimizer=keras.optimizers.Lamb(0.01), loss="mse")
    model.save(tmp_path / "lamb.keras")
    result = tf2torch.convert(tmp_path / "lamb.keras")
    with pytest.raises(UnsupportedTraining, match="optimizer 'Lamb' is not supported"):
        result.training_setup()


def test_binary_crossentropy_on_softmax_is_a_clear_error(tmp_path):
    """Keras on TensorFlow would use the softmax's inputs as sigmoid logits here."""
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="d")(inputs))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.save(tmp_path / "bce.keras")
    result = tf2torch.convert(tmp_path / "bce.keras")
    with pytest.raises(UnsupportedTraining, match="binary_crossentropy on a softmax output"):
        result.training_setup()
    with pytest.warns(UserWarning, match="train.py not written"):
        written = result.save(tmp_path / "out")
    assert (written / "model.py").exists() and not (written / "train.py").exists()


def test_uncompiled_model_has_no_training_setup(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="d")(inputs))
    model.save(tmp_path / "plain.keras")
    result = tf2torch.convert(tmp_path / "plain.keras")
    with pytest.raises(UnsupportedTraining, match="not compiled"):
        result.training_setup()
    written = result.save(tmp_path / "out")
    assert not (written / "train.py").exists()


def test_live_compiled_model(tmp_path):
    """A live keras.Model carries its compile() too."""
    keras.utils.set_random_seed(4)
    inputs = keras.Input((5,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="d")(inputs))
    model.compile(optimizer=keras.optimizers.Adamax(0.05), loss="categorical_crossentropy")
    result = tf2torch.convert(model)
    training = result.training_setup()
    data = batches((5,), "onehot:3", 5, 4)
    torch_losses = torch_steps(result, training, data)
    keras_losses = keras_steps(model, data)
    np.testing.assert_allclose(torch_losses, keras_losses, rtol=RTOL)
    assert isinstance(training.optimizer, torch.optim.Optimizer)

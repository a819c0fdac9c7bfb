"""Training-mode verification switches dropout and noise off on its own copies only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tf2torch
from conftest import perturb_weights, set_batchnorm_statistics


def _noisy_cnn(keras):
    inp = keras.Input((9, 7, 3))
    x = keras.layers.GaussianNoise(0.3)(inp)
    x = keras.layers.Conv2D(6, 3, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.SpatialDropout2D(0.4)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.5)(x)
    x = keras.layers.GaussianDropout(0.2)(x)
    return keras.Model(inp, keras.layers.Dense(4)(x))


def _noisy_sequence(keras):
    inp = keras.Input((11, 5))
    x = keras.layers.LSTM(6, return_sequences=True, dropout=0.3, recurrent_dropout=0.2)(inp)
    x = keras.layers.MultiHeadAttention(2, 3, dropout=0.4)(x, x)
    x = keras.layers.GRU(4, dropout=0.25)(x)
    return keras.Model(inp, keras.layers.Dense(3)(keras.layers.AlphaDropout(0.3)(x)))


@pytest.mark.parametrize("build", [_noisy_cnn, _noisy_sequence], ids=["cnn", "sequence"])
def test_train_mode_verifies_with_noise_off_on_both_copies(keras, tmp_path, build):
    model = build(keras)
    perturb_weights(model)
    if build is _noisy_cnn:
        set_batchnorm_statistics(model, np.random.default_rng(1).standard_normal((8, 9, 7, 3)).astype("float32"))
    path = tmp_path / "noisy.keras"
    model.save(path)
    result = tf2torch.convert(str(path))
    before = {name: t.clone() for name, t in result.module.state_dict().items()}

    report = result.verify(keras_model=model, training=True, batch_size=3)
    assert report.ok, report.table()
    assert report.silenced and "Dropout / noise off" in report.table()
    layers = result.verify_layers(keras_model=model, training=True, batch_size=3)
    assert layers.first_divergence is None, layers.table()

    # The user's objects keep their noise: only the verification's copies were changed.
    assert all(getattr(layer, "rate", 1) > 0 for layer in model.layers if "dropout" in layer.name)
    rates = [m.p for m in result.module.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)]
    assert rates and all(p > 0 for p in rates)
    assert all(torch.equal(before[k], v) for k, v in result.module.state_dict().items())


def test_train_mode_still_catches_a_wrong_batchnorm(keras, tmp_path):
    # Silencing noise must not hide a real training-mode difference.
    model = _noisy_cnn(keras)
    perturb_weights(model)
    path = tmp_path / "noisy.keras"
    model.save(path)
    result = tf2torch.convert(str(path))
    bn = next(m for m in result.module.modules() if isinstance(m, torch.nn.BatchNorm2d))
    bn.eps = 0.5
    assert not result.verify(keras_model=model, training=True, batch_size=3).ok


def test_train_report_checks_the_training_path_of_traced_layers(keras, tmp_path):
    class HalfInTraining(keras.layers.Layer):
        def call(self, x, training=None):
            return x * 0.5 if training else x

    class NormInTraining(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.norm = keras.layers.BatchNormalization()

        def call(self, x, training=None):
            return self.norm(x, training=training)

    inp = keras.Input((5,))
    x = keras.layers.Dense(3)(HalfInTraining(name="halves")(inp))
    model = keras.Model(inp, NormInTraining(name="normed")(x))
    path = tmp_path / "traced.keras"
    model.save(path)
    custom = {"HalfInTraining": HalfInTraining, "NormInTraining": NormInTraining}
    result = tf2torch.convert(str(path), custom_objects=custom)
    report = result.verify(keras_model=model, training=True, batch_size=3)
    # `halves` is converted in both modes; `normed` (moving statistics updated in call()) is
    # converted for inference only, and the report names it.
    assert report.traced_for_inference == ["normed"]
    assert "Traced in inference mode" in report.table() and "halves" not in report.table()
    assert result.verify(keras_model=model, batch_size=3).ok

    only_halves = keras.Model(inp, keras.layers.Dense(3)(HalfInTraining(name="halves")(inp)))
    only_halves.save(path)
    result = tf2torch.convert(str(path), custom_objects=custom)
    report = result.verify(keras_model=only_halves, training=True, batch_size=3)
    assert report.ok and not report.traced_for_inference, report.table()

"""Dice, Tversky, CategoricalFocalCrossentropy and BinaryFocalCrossentropy against Keras' own
loss objects (through the compile-config parser), their string aliases, and a short MLP
training parity run with a focal and a Tversky loss."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import pytest
import torch
from training_helpers import batches, run_parity

from tf2torch.training import losses as tl
from tf2torch.training.compile_config import parse_loss

RTOL = 1e-5


def build(obj) -> object:
    return eval(obj.render(), vars(tl))


def _data(kind: str, seed: int):
    rng = np.random.default_rng(seed)
    shape = (5, 4, 6)  # batch > 1 and an extra middle axis
    if kind == "probs":
        logits = rng.normal(size=shape).astype(np.float32)
        y_pred = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        y_true = np.eye(6, dtype=np.float32)[rng.integers(0, 6, size=shape[:-1])]
    elif kind == "onehot_logits":
        y_pred = rng.normal(size=shape).astype(np.float32) * 2
        y_true = np.eye(6, dtype=np.float32)[rng.integers(0, 6, size=shape[:-1])]
    elif kind == "binary":
        y_pred = rng.uniform(0.01, 0.99, size=shape).astype(np.float32)
        y_true = rng.integers(0, 2, size=shape).astype(np.float32)
    else:  # "logits": binary labels, raw scores
        y_pred = rng.normal(size=shape).astype(np.float32) * 3
        y_true = rng.integers(0, 2, size=shape).astype(np.float32)
    return y_true, y_pred


L = keras.losses
LOSSES = {
    # Dice / Tversky: axis None (a scalar), one axis, several axes.
    "dice_default": (L.Dice(), "binary"),
    "dice_axis_last_sum": (L.Dice(axis=-1, reduction="sum"), "binary"),
    "dice_axes_none": (L.Dice(axis=(1, 2), reduction="none"), "binary"),
    "dice_axis1_mean": (L.Dice(axis=1, reduction="sum_over_batch_size"), "binary"),
    "tversky": (L.Tversky(alpha=0.3, beta=0.7), "binary"),
    "tversky_axis_last_sum": (L.Tversky(alpha=0.8, beta=0.2, axis=-1, reduction="sum"), "binary"),
    "tversky_axes_none": (L.Tversky(alpha=0.6, beta=0.9, axis=(1, 2), reduction="none"), "binary"),
    # Categorical focal: scalar and per-class alpha, logits, smoothing, another axis.
    "cfce": (L.CategoricalFocalCrossentropy(alpha=0.4, gamma=1.5), "probs"),
    "cfce_smoothing_sum": (L.CategoricalFocalCrossentropy(alpha=0.7, gamma=3.0, label_smoothing=0.2,
                                                          reduction="sum"), "probs"),
    "cfce_logits_none": (L.CategoricalFocalCrossentropy(alpha=0.5, gamma=0.5, from_logits=True,
                                                        reduction="none"), "onehot_logits"),
    "cfce_alpha_list": (L.CategoricalFocalCrossentropy(alpha=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], gamma=2.5,
                                                       from_logits=True, label_smoothing=0.1), "onehot_logits"),
    "cfce_axis1": (L.CategoricalFocalCrossentropy(alpha=0.3, gamma=1.0, from_logits=True, axis=1,
                                                  reduction="sum"), "onehot_logits"),
    # Binary focal: every option.
    "bfce_balanced": (L.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.35, gamma=2.5), "binary"),
    "bfce_logits_smoothing_sum": (L.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.6, gamma=1.0,
                                                            from_logits=True, label_smoothing=0.15,
                                                            reduction="sum"), "logits"),
    "bfce_axis1_none": (L.BinaryFocalCrossentropy(gamma=3.0, label_smoothing=0.05, axis=1, reduction="none"),
                        "binary"),
}


@pytest.mark.parametrize("name", list(LOSSES), ids=list(LOSSES))
def test_loss_matches_keras(name):
    keras_loss, kind = LOSSES[name]
    y_true, y_pred = _data(kind, len(name))
    config = keras.saving.serialize_keras_object(keras_loss)
    ours = build(parse_loss(config))
    reloaded = keras.saving.deserialize_keras_object(config)
    expected = np.asarray(reloaded(y_true, y_pred))
    actual = ours(torch.from_numpy(y_true), torch.from_numpy(y_pred)).numpy()
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=1e-6)
    # The reference object itself (not only the reloaded one) gives the same value.
    np.testing.assert_allclose(actual, np.asarray(keras_loss(y_true, y_pred)), rtol=RTOL, atol=1e-6)


@pytest.mark.parametrize("name", ["dice", "tversky", "categorical_focal_crossentropy", "binary_focal_crossentropy"])
def test_loss_by_string_name(name):
    y_true, y_pred = _data("probs" if name.startswith("categorical") else "binary", 3)
    fn = keras.losses.get(name)
    expected = float(np.mean(np.asarray(fn(y_true, y_pred))))
    actual = float(build(parse_loss(name))(torch.from_numpy(y_true), torch.from_numpy(y_pred)))
    np.testing.assert_allclose(actual, expected, rtol=RTOL)


def test_non_default_arguments_are_rendered():
    obj = parse_loss(keras.saving.serialize_keras_object(L.Tversky(alpha=0.3, beta=0.7, axis=-1)))
    assert obj.kwargs == {"alpha": 0.3, "beta": 0.7, "axis": -1}
    obj = parse_loss(keras.saving.serialize_keras_object(L.CategoricalFocalCrossentropy(axis=-1)))
    assert "axis" not in obj.kwargs


def _mlp(activation: str) -> keras.Model:
    inputs = keras.Input((7,), name="features")
    x = keras.layers.Dense(11, activation="tanh", name="hidden")(inputs)
    outputs = keras.layers.Dense(5, activation=activation, name="out")(x)
    return keras.Model(inputs, outputs, name="mlp")


PARITY = {
    "categorical_focal": (lambda: L.CategoricalFocalCrossentropy(alpha=0.4, gamma=1.5, label_smoothing=0.1),
                          "softmax", "onehot:5"),
    "tversky_axis_last": (lambda: L.Tversky(alpha=0.3, beta=0.7, axis=-1), "sigmoid", "binary:5"),
}


@pytest.mark.parametrize("name", list(PARITY), ids=list(PARITY))
def test_mlp_parity(name, tmp_path):
    make_loss, activation, labels = PARITY[name]
    keras.utils.set_random_seed(1)
    model = _mlp(activation)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=make_loss())
    run_parity(model, batches((7,), labels, 10, 6), tmp_path).check()


def _ctc_data(seed: int, batch: int = 4, steps: int = 12, classes: int = 7, max_length: int = 5):
    rng = np.random.default_rng(seed)
    y_pred = rng.normal(size=(batch, steps, classes)).astype(np.float32) * 2
    y_true = np.zeros((batch, max_length), np.int64)  # labels first, then blank (0) padding
    for i in range(batch):
        n = int(rng.integers(1, max_length + 1))
        y_true[i, :n] = rng.integers(1, classes, size=n)
    return y_true, y_pred


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "none"])
def test_ctc_matches_keras(reduction):
    keras_loss = L.CTC(reduction=reduction)
    y_true, y_pred = _ctc_data(len(reduction))
    ours = build(parse_loss(keras.saving.serialize_keras_object(keras_loss)))
    expected = np.asarray(keras_loss(y_true, y_pred))
    actual = ours(torch.from_numpy(y_true), torch.from_numpy(y_pred)).numpy()
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=1e-5)


def test_ctc_string_alias_matches_keras():
    y_true, y_pred = _ctc_data(3)
    expected = float(np.mean(np.asarray(keras.losses.get("ctc")(y_true, y_pred))))
    actual = float(build(parse_loss("ctc"))(torch.from_numpy(y_true), torch.from_numpy(y_pred)))
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=1e-5)


def test_ctc_sequence_model_parity(tmp_path):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((12, 4), name="frames")
    x = keras.layers.Dense(9, activation="tanh", name="hidden")(inputs)
    outputs = keras.layers.Dense(7, name="logits")(x)
    model = keras.Model(inputs, outputs, name="ctc_model")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=L.CTC())
    rng = np.random.default_rng(0)
    data = []
    for step in range(10):
        y_true, _ = _ctc_data(step)
        data.append((rng.normal(size=(4, 12, 4)).astype(np.float32), y_true))
    run_parity(model, data, tmp_path).check()

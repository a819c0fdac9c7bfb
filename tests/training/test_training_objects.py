"""Schedules, losses, metrics, regularizers and constraints against Keras' own objects,
through the compile-config parser (so each Keras config is what selects our object)."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import pytest
import torch

from tf2torch.training import constraints as tc
from tf2torch.training import losses as tl
from tf2torch.training import metrics as tm
from tf2torch.training import regularizers as tr
from tf2torch.training import schedules as ts
from tf2torch.training.compile_config import (
    UnsupportedTraining,
    parse_constraint,
    parse_loss,
    parse_metric,
    parse_regularizer,
    parse_schedule,
)

NAMESPACE = {**vars(ts), **vars(tl), **vars(tm), **vars(tr), **vars(tc)}


def build(obj) -> object:
    return eval(obj.render(), NAMESPACE)


def serialized(obj) -> dict:
    return keras.saving.serialize_keras_object(obj)


SCHEDULES = {
    "exponential": keras.optimizers.schedules.ExponentialDecay(0.1, 7, 0.6),
    "exponential_staircase": keras.optimizers.schedules.ExponentialDecay(0.1, 7, 0.6, staircase=True),
    "piecewise": keras.optimizers.schedules.PiecewiseConstantDecay([3, 11, 20], [0.5, 0.2, 0.1, 0.01]),
    "polynomial": keras.optimizers.schedules.PolynomialDecay(0.1, 17, end_learning_rate=0.01, power=2.0),
    "polynomial_cycle": keras.optimizers.schedules.PolynomialDecay(0.1, 9, power=0.5, cycle=True),
    "inverse_time": keras.optimizers.schedules.InverseTimeDecay(0.2, 5, 0.3),
    "inverse_time_staircase": keras.optimizers.schedules.InverseTimeDecay(0.2, 5, 0.3, staircase=True),
    "cosine": keras.optimizers.schedules.CosineDecay(0.1, 23, alpha=0.05),
    "cosine_warmup": keras.optimizers.schedules.CosineDecay(0.01, 19, alpha=0.1, warmup_target=0.1, warmup_steps=6),
    "cosine_restarts": keras.optimizers.schedules.CosineDecayRestarts(0.1, 7, t_mul=1.5, m_mul=0.8, alpha=0.01),
    "cosine_restarts_tmul1": keras.optimizers.schedules.CosineDecayRestarts(0.1, 5, t_mul=1.0),
}


@pytest.mark.parametrize("name", list(SCHEDULES), ids=list(SCHEDULES))
def test_schedule_matches_keras(name):
    keras_schedule = SCHEDULES[name]
    ours = build(parse_schedule(serialized(keras_schedule)))
    steps = range(60)
    expected = [float(keras_schedule(step)) for step in steps]
    np.testing.assert_allclose([ours(step) for step in steps], expected, rtol=1e-6, atol=1e-9)


def _data(kind: str, rng: np.random.Generator):
    shape = (5, 4, 6)  # extra middle axis: reductions over non-batch axes are checked too
    if kind == "probs":
        logits = rng.normal(size=shape).astype(np.float32)
        y_pred = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        y_true = np.eye(6, dtype=np.float32)[rng.integers(0, 6, size=shape[:-1])]
    elif kind == "sparse":
        y_pred = rng.normal(size=shape).astype(np.float32)
        y_true = rng.integers(0, 6, size=shape[:-1]).astype(np.int64)
    elif kind == "binary":
        y_pred = rng.uniform(0.01, 0.99, size=shape).astype(np.float32)
        y_true = rng.integers(0, 2, size=shape).astype(np.float32)
    elif kind == "logits":
        y_pred = rng.normal(size=shape).astype(np.float32) * 3
        y_true = rng.integers(0, 2, size=shape).astype(np.float32)
    else:  # positive regression targets
        y_pred = rng.uniform(0.1, 3.0, size=shape).astype(np.float32)
        y_true = rng.uniform(0.1, 3.0, size=shape).astype(np.float32)
    return y_true, y_pred


LOSSES = {
    "mse": (keras.losses.MeanSquaredError(), "regress"),
    "mae_sum": (keras.losses.MeanAbsoluteError(reduction="sum"), "regress"),
    "mape": (keras.losses.MeanAbsolutePercentageError(), "regress"),
    "msle": (keras.losses.MeanSquaredLogarithmicError(), "regress"),
    "cosine_axis1": (keras.losses.CosineSimilarity(axis=1), "regress"),
    "huber": (keras.losses.Huber(delta=0.7), "regress"),
    "log_cosh": (keras.losses.LogCosh(), "regress"),
    "hinge": (keras.losses.Hinge(), "binary"),
    "squared_hinge": (keras.losses.SquaredHinge(), "binary"),
    "categorical_hinge": (keras.losses.CategoricalHinge(), "probs"),
    "kl_divergence": (keras.losses.KLDivergence(), "probs"),
    "poisson": (keras.losses.Poisson(), "regress"),
    "cce_smoothing": (keras.losses.CategoricalCrossentropy(label_smoothing=0.15), "probs"),
    "cce_logits_none": (keras.losses.CategoricalCrossentropy(from_logits=True, reduction="none"), "probs"),
    "scce_logits": (keras.losses.SparseCategoricalCrossentropy(from_logits=True), "sparse"),
    "scce_ignore_class": (keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=2), "sparse"),
    "bce": (keras.losses.BinaryCrossentropy(label_smoothing=0.2), "binary"),
    "bce_logits": (keras.losses.BinaryCrossentropy(from_logits=True), "logits"),
    "binary_focal": (keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.3, gamma=1.5), "binary"),
}


@pytest.mark.parametrize("name", list(LOSSES), ids=list(LOSSES))
def test_loss_matches_keras(name):
    keras_loss, kind = LOSSES[name]
    y_true, y_pred = _data(kind, np.random.default_rng(len(name)))
    config = serialized(keras_loss)
    ours = build(parse_loss(config))
    # The reference is the loss Keras itself rebuilds from the saved config: Keras 3 does not
    # save Huber's delta nor CosineSimilarity's axis, so a reloaded model trains with defaults.
    reloaded = keras.saving.deserialize_keras_object(config)
    expected = np.asarray(reloaded(y_true, y_pred))
    actual = ours(torch.from_numpy(y_true), torch.from_numpy(y_pred)).numpy()
    np.testing.assert_allclose(actual, expected, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["mse", "mae", "binary_crossentropy", "sparse_categorical_crossentropy", "kld"])
def test_loss_by_string_name(name):
    kind = {"sparse_categorical_crossentropy": "sparse", "binary_crossentropy": "binary", "kld": "probs"}.get(name, "regress")
    y_true, y_pred = _data(kind, np.random.default_rng(0))
    if kind == "sparse":
        y_pred = keras.ops.convert_to_numpy(keras.ops.softmax(y_pred))
    expected = float(keras.losses.get(name)(y_true, y_pred).numpy().mean())
    actual = float(build(parse_loss(name))(torch.from_numpy(y_true), torch.from_numpy(y_pred)))
    np.testing.assert_allclose(actual, expected, rtol=2e-6)


METRICS = {
    "accuracy_categorical": ("accuracy", "probs"),
    "accuracy_sparse": ("accuracy", "sparse"),
    "acc_binary": ("acc", "binary1"),
    "binary_accuracy": (keras.metrics.BinaryAccuracy(threshold=0.3), "binary"),
    "categorical_accuracy": (keras.metrics.CategoricalAccuracy(), "probs"),
    "sparse_categorical_accuracy": (keras.metrics.SparseCategoricalAccuracy(), "sparse"),
    "top_k": (keras.metrics.TopKCategoricalAccuracy(k=2), "probs"),
    "sparse_top_k": (keras.metrics.SparseTopKCategoricalAccuracy(k=3), "sparse"),
    "precision": (keras.metrics.Precision(), "binary"),
    "recall_threshold": (keras.metrics.Recall(thresholds=0.7), "binary"),
    "auc": (keras.metrics.AUC(num_thresholds=50), "binary"),
    "mae": (keras.metrics.MeanAbsoluteError(), "regress"),
    "mse": ("mse", "regress"),
}


@pytest.mark.parametrize("name", list(METRICS), ids=list(METRICS))
def test_metric_matches_keras_over_two_batches(name):
    spec, kind = METRICS[name]
    rng = np.random.default_rng(7)
    data = []
    for _ in range(2):
        if kind == "binary1":
            y_true, y_pred = _data("binary", rng)
            y_true, y_pred = y_true[..., :1], y_pred[..., :1]
        else:
            y_true, y_pred = _data(kind, rng)
        data.append((y_true.reshape(-1, *y_true.shape[2:]), y_pred.reshape(-1, y_pred.shape[-1])))
    if isinstance(spec, str):
        model = keras.Sequential([keras.Input((data[0][1].shape[-1],)), keras.layers.Identity()])
        loss = {"sparse": "sparse_categorical_crossentropy", "probs": "categorical_crossentropy"}.get(kind, "mse")
        model.compile(loss=loss, metrics=[spec])
        results = []
        for y_true, y_pred in data:
            results.append(model.evaluate(y_pred, y_true, verbose=0, return_dict=True, batch_size=len(y_true)))
        keras_metric = None
        expected_single = [r[spec if spec != "acc" else "acc"] for r in results]
    else:
        keras_metric = spec
        for y_true, y_pred in data:
            keras_metric.update_state(y_true, y_pred)
        expected = float(keras_metric.result())
    ours = build(parse_metric(spec if isinstance(spec, str) else serialized(spec)))
    if keras_metric is None:
        for (y_true, y_pred), value in zip(data, expected_single):
            ours.reset_state()
            ours.update_state(torch.from_numpy(y_true), torch.from_numpy(y_pred))
            np.testing.assert_allclose(ours.result(), value, rtol=1e-5)
        return
    for y_true, y_pred in data:
        ours.update_state(torch.from_numpy(y_true), torch.from_numpy(y_pred))
    np.testing.assert_allclose(ours.result(), expected, rtol=1e-5, atol=1e-6)


REGULARIZERS = {
    "l1": keras.regularizers.L1(0.03),
    "l2": keras.regularizers.L2(0.07),
    "l1l2": keras.regularizers.L1L2(l1=0.01, l2=0.02),
    "orthogonal_rows": keras.regularizers.OrthogonalRegularizer(factor=0.2, mode="rows"),
}


@pytest.mark.parametrize("name", list(REGULARIZERS), ids=list(REGULARIZERS))
def test_regularizer_matches_keras(name):
    w = np.random.default_rng(1).normal(size=(7, 5)).astype(np.float32)
    ours = build(parse_regularizer(serialized(REGULARIZERS[name])))
    np.testing.assert_allclose(float(ours(torch.from_numpy(w))), float(REGULARIZERS[name](w)), rtol=1e-5)


CONSTRAINTS = {
    "max_norm_axis0": keras.constraints.MaxNorm(1.5),
    "max_norm_conv_axes": keras.constraints.MaxNorm(0.9, axis=[0, 1, 2]),
    "min_max_norm": keras.constraints.MinMaxNorm(0.5, 1.2, rate=0.7, axis=[0, 1, 2]),
    "unit_norm_axis3": keras.constraints.UnitNorm(axis=3),
    "non_neg": keras.constraints.NonNeg(),
}


@pytest.mark.parametrize("name", list(CONSTRAINTS), ids=list(CONSTRAINTS))
def test_constraint_in_torch_layout_matches_keras(name):
    """A conv kernel: Keras (kh, kw, in, out), torch (out, in, kh, kw); the constraint acts on
    the torch parameter through the Keras-layout view."""
    kernel = np.random.default_rng(2).normal(size=(3, 2, 4, 5)).astype(np.float32)
    expected = np.asarray(CONSTRAINTS[name](kernel))
    param = torch.nn.Parameter(torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))))
    keras_axes = (2, 3, 1, 0)  # torch dim of Keras axis 0, 1, 2, 3
    apply = tc.Constraints([("w", param, keras_axes, build(parse_constraint(serialized(CONSTRAINTS[name]))))])
    apply()
    np.testing.assert_allclose(param.detach().numpy().transpose(2, 3, 1, 0), expected, rtol=1e-6, atol=1e-7)


def test_unsupported_settings_are_clear_errors():
    with pytest.raises(UnsupportedTraining, match="metric 'f1_score' is not supported"):
        parse_metric("f1_score")
    with pytest.raises(UnsupportedTraining, match="AUC other than ROC"):
        parse_metric(serialized(keras.metrics.AUC(curve="PR")))
    with pytest.raises(UnsupportedTraining, match="schedule 'Custom' is not supported"):
        parse_schedule({"class_name": "Custom", "config": {}})

"""Layer-by-layer verification names the first layer that diverges."""

from __future__ import annotations

import pytest
import torch

import tf2torch
from conftest import perturb_weights


@pytest.fixture
def converted(keras, tmp_path):
    inp = keras.Input((13, 11, 3))
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", name="stem")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.Conv2D(4, 3, name="body")(x)
    x = keras.layers.Flatten(name="flat")(x)
    model = keras.Model(inp, keras.layers.Dense(5, name="head")(x))
    perturb_weights(model)
    path = tmp_path / "layers.keras"
    model.save(path)
    return model, tf2torch.convert(str(path))


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_every_layer_matches(converted, training):
    model, result = converted
    report = result.verify_layers(keras_model=model, batch_size=3, training=training)
    assert [c.name for c in report.layers] == ["stem", "bn", "relu", "body", "flat", "head"]
    assert report.first_divergence is None, report.table()


def test_first_divergence_is_named(converted):
    model, result = converted
    with torch.no_grad():
        result.module.body.weight.mul_(1.5)  # break one layer on purpose
    report = result.verify_layers(keras_model=model, batch_size=3)
    assert report.first_divergence is not None
    assert report.first_divergence.name == "body"
    checks = {c.name: c for c in report.layers}
    # Isolated, the layers after the broken one are fed Keras' values: only drift is left.
    assert checks["relu"].status == "OK" and checks["head"].status == "OK"
    assert checks["head"].cumulative_rel_error > 1e-2 and checks["body"].max_rel_error > 1e-2
    assert report.first_drift.name == "body"
    assert "First divergence: layer 'body'" in report.table()


def test_cli_verify_prints_layer_table(converted, capsys):
    from tf2torch.cli import main

    _, result = converted
    assert main(["verify", result.source_path, "--batch-size", "2"]) == 0
    out = capsys.readouterr().out
    assert "Layer-by-layer verification" in out and "Every layer matches in isolation." in out


def test_fp64_rerun_tells_rounding_from_a_bug(converted):
    model, result = converted
    # A bound below fp32 rounding: the cumulative error crosses it, float64 does not.
    report = result.verify_layers(keras_model=model, batch_size=3, tolerance=1e-9, fp64=True)
    assert report.first_drift is not None and report.fp64_checked
    assert report.drift_is_rounding is True, report.table()
    assert all(c.cumulative_rel_error_fp64 < 1e-12 for c in report.layers)
    assert "(fp64: rounding)" in report.summary()


def test_nested_model_with_its_own_input_is_probed_in_the_outer_graph(tmp_path):
    # tf.keras gives a nested Sequential with an Input the nested graph's tensor as `.output`:
    # a probe built on it was "disconnected" and the per-layer report was dropped.
    import tf_keras

    inner = tf_keras.Sequential(
        [tf_keras.layers.InputLayer((6,)), tf_keras.layers.Dense(8, activation="relu"), tf_keras.layers.Dense(4)],
        name="inner",
    )
    inp = tf_keras.Input((5,))
    x = inner(tf_keras.layers.Dense(6, name="stem")(inp))
    model = tf_keras.Model(inp, tf_keras.layers.Dense(3, name="head")(x))
    perturb_weights(model)
    path = tmp_path / "nested.h5"
    model.save(path)
    report = tf2torch.convert(str(path)).verify_layers(batch_size=3)
    assert [c.name for c in report.layers] == ["stem", "inner", "head"]
    assert report.first_divergence is None, report.table()

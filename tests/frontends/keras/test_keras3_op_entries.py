"""Keras 3 records arithmetic on KerasTensors (`x + 3.0`) as op entries in the config."""

from __future__ import annotations

import pytest

from conftest import convert_and_compare


@pytest.mark.parametrize(
    "expression",
    ["x + 3.0", "2.5 - x", "x * y", "x / 4.0", "1.0 / (x * x + 1.0)", "(x - y) * 0.5"],
)
def test_arithmetic_on_keras_tensors(keras, tmp_path, expression):
    inp = keras.Input((9, 11, 4))
    x = keras.layers.Conv2D(3, 3, padding="same")(inp)
    y = keras.layers.Conv2D(3, 1)(inp)
    out = eval(expression, {}, {"x": x, "y": y})
    result = convert_and_compare(keras.Model(inp, out), tmp_path)
    assert ".permute(" not in result.source_code


def test_hard_sigmoid_block_as_in_mobilenet_v3(keras, tmp_path):
    inp = keras.Input((7, 5, 6))
    x = keras.layers.Conv2D(6, 1)(inp)
    gate = keras.layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)
    out = keras.layers.Multiply()([x, gate])
    out = keras.layers.GlobalAveragePooling2D(keepdims=True)(out)
    result = convert_and_compare(keras.Model(inp, keras.layers.Flatten()(out)), tmp_path)
    assert ".permute(" not in result.source_code  # flattening a 1x1 map needs no reorder

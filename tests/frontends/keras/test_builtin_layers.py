"""Refused built-in Keras layers are named as built-ins, with the reason."""

from __future__ import annotations

import pytest

import tf2torch
from tf2torch.errors import UnsupportedLayers
from tf2torch.frontends.keras.importer import find_unsupported


def test_refused_builtin_layer_gives_its_reason(keras, tmp_path):
    inp = keras.Input((9, 7, 3))
    x = keras.layers.ContrastLimitedAdaptiveHistogramEqualization(value_range=(0, 1), name="equalize")(inp)
    model = keras.Model(inp, keras.layers.Conv2D(2, 3)(x))
    path = tmp_path / "clahe.keras"
    model.save(path)
    with pytest.raises(UnsupportedLayers) as info:
        tf2torch.convert(str(path))
    (layer,) = info.value.layers
    assert (layer.name, layer.class_name) == ("equalize", "ContrastLimitedAdaptiveHistogramEqualization")
    assert layer.reason.startswith("a built-in Keras layer, not supported yet, because it computes per-image histograms")
    assert not list(tmp_path.glob("*.py"))


def test_unknown_keras3_builtin_is_refused_as_builtin():
    config = {"config": {"layers": [
        {"module": "keras.layers", "class_name": "FutureLayer", "config": {"name": "future"}},
        {"module": "my_project.layers", "class_name": "MyLayer", "config": {"name": "mine"}},
    ]}}
    future, mine = find_unsupported(config)
    assert future.reason.startswith("a built-in Keras layer, not supported yet, because this tf2torch version does not know")
    assert "not supported yet, because" in future.reason
    assert "built-in" not in mine.reason

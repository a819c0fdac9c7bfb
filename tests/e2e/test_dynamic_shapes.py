"""Dimensions declared None in Keras stay symbolic: 'same' padding is computed at run time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tf2torch
from conftest import perturb_weights


@pytest.fixture
def dynamic_cnn(keras, tmp_path):
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(inp)
    x = keras.layers.Conv2D(5, 4, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(3)(x))
    perturb_weights(model)
    path = tmp_path / "dynamic.keras"
    model.save(path)
    return model, tf2torch.convert(str(path))


@pytest.mark.parametrize("shape", [(1, 13, 17, 3), (4, 8, 9, 3), (2, 31, 6, 3)], ids=str)
def test_dynamic_spatial_size_matches_tensorflow(dynamic_cnn, shape):
    model, result = dynamic_cnn
    x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)
    report = result.verify([x], keras_model=model)
    assert report.ok, report.table()
    assert "pad_same(" in result.source_code


def test_export_with_dynamic_batch_and_spatial_size(dynamic_cnn):
    _, result = dynamic_cnn
    batch = torch.export.Dim("batch", min=1, max=64)
    exported = torch.export.export(
        result.module, (torch.randn(2, 3, 16, 16),), dynamic_shapes=({0: batch},)
    )
    out = exported.module()(torch.randn(5, 3, 16, 16))
    assert out.shape == (5, 3)

"""User-registered converters for custom Keras layers (register_layer)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tf2torch
from conftest import convert_and_compare


class SinModule(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x)


class ScaleModule(torch.nn.Module):
    def __init__(self, size: int, offset: float) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(size))
        self.offset = offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.offset


@pytest.fixture
def custom_keras_layers(keras):
    @keras.saving.register_keras_serializable(package="tf2torch_tests")
    class SinLayer(keras.layers.Layer):
        def call(self, inputs):
            return keras.ops.sin(inputs)

    @keras.saving.register_keras_serializable(package="tf2torch_tests")
    class ScaleLayer(keras.layers.Layer):
        def __init__(self, offset=0.0, **kwargs):
            super().__init__(**kwargs)
            self.offset = offset

        def build(self, input_shape):
            self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones")

        def call(self, inputs):
            return inputs * self.scale + self.offset

        def get_config(self):
            return {**super().get_config(), "offset": self.offset}

    yield SinLayer, ScaleLayer
    tf2torch.unregister_layer("SinLayer")
    tf2torch.unregister_layer("ScaleLayer")


def test_seed_sin_custom_layer_maps_to_user_module(keras, tmp_path, custom_keras_layers):
    SinLayer, _ = custom_keras_layers

    @tf2torch.register_layer("SinLayer")
    def convert_sin(config: dict, weights: list[np.ndarray]) -> tf2torch.CustomLayer:
        return tf2torch.CustomLayer(SinModule)

    model = keras.Sequential([keras.Input((5, 7)), keras.layers.Dense(4), SinLayer()])
    result = convert_and_compare(model, tmp_path)
    assert f"from {SinModule.__module__} import SinModule" in result.source_code
    assert any(isinstance(m, SinModule) for m in result.module.modules())


def test_custom_layer_with_weights_and_kwargs_on_4d_input(keras, tmp_path, custom_keras_layers):
    _, ScaleLayer = custom_keras_layers

    @tf2torch.register_layer("ScaleLayer")
    def convert_scale(config: dict, weights: list[np.ndarray]) -> tf2torch.CustomLayer:
        (scale,) = weights
        return tf2torch.CustomLayer(ScaleModule, {"size": scale.shape[0], "offset": config["offset"]}, {"scale": scale})

    inp = keras.Input((9, 11, 3))
    x = keras.layers.Conv2D(5, 3)(inp)
    x = ScaleLayer(offset=0.25)(x)  # gets the Keras (channels-last) layout
    x = keras.layers.Conv2D(2, 1)(x)
    result = convert_and_compare(keras.Model(inp, x), tmp_path)
    assert "ScaleModule(size=5, offset=0.25)" in result.source_code


def test_registering_twice_is_an_error(custom_keras_layers):
    tf2torch.register_layer("SinLayer")(lambda c, w: tf2torch.CustomLayer(SinModule))
    with pytest.raises(ValueError, match="already registered"):
        tf2torch.register_layer("SinLayer")(lambda c, w: tf2torch.CustomLayer(SinModule))


def test_unregistered_custom_layer_is_reported(keras, tmp_path, custom_keras_layers):
    SinLayer, _ = custom_keras_layers
    model = keras.Sequential([keras.Input((3,)), SinLayer(name="my_sin")])
    path = tmp_path / "m.keras"
    model.save(path)
    with pytest.raises(tf2torch.UnsupportedLayers, match=r"my_sin \(SinLayer\)"):
        tf2torch.convert(str(path))

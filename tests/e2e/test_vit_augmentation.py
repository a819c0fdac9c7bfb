"""Acceptance (issue 12): a ViT-style classifier with augmentation layers and Resizing inside
the model converts and matches TensorFlow in eval; its patch extraction, a custom layer, is
converted by a registered converter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tf2torch
from conftest import convert_and_compare


class PatchesModule(torch.nn.Module):
    """keras.ops.image.extract_patches (valid, stride = size) then (batch, patches, features),
    on a channels-last image as custom layers receive it."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w, c = x.shape
        p = self.size
        rows, cols = h // p, w // p
        x = x[:, : rows * p, : cols * p].reshape(n, rows, p, cols, p, c).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(n, rows * cols, p * p * c)


@pytest.fixture
def patches_layer(keras):
    @keras.saving.register_keras_serializable(package="tf2torch_vit")
    class Patches(keras.layers.Layer):
        def __init__(self, patch_size, **kwargs):
            super().__init__(**kwargs)
            self.patch_size = patch_size

        def call(self, images):
            patches = keras.ops.image.extract_patches(images, size=self.patch_size)
            _, rows, cols, features = patches.shape
            return keras.ops.reshape(patches, (-1, rows * cols, features))

        def get_config(self):
            return {**super().get_config(), "patch_size": self.patch_size}

    @tf2torch.register_layer("Patches")
    def convert_patches(config: dict, weights: list[np.ndarray]) -> tf2torch.CustomLayer:
        return tf2torch.CustomLayer(PatchesModule, {"size": config["patch_size"]})

    yield Patches
    tf2torch.unregister_layer("Patches")


def _vit(keras, Patches):
    layers = keras.layers
    inp = keras.Input((37, 41, 3))
    x = layers.RandomFlip("horizontal")(inp)
    x = layers.RandomRotation(0.02)(x)
    x = layers.RandomZoom(0.2, 0.2)(x)
    x = layers.Resizing(24, 24, interpolation="bicubic", antialias=True)(x)
    x = Patches(6)(x)
    x = layers.Dense(32, name="projection")(x)
    for block in range(2):
        y = layers.LayerNormalization(epsilon=1e-6, name=f"ln{block}a")(x)
        y = layers.MultiHeadAttention(num_heads=2, key_dim=16, name=f"attention{block}")(y, y)
        x = layers.Add()([x, y])
        y = layers.LayerNormalization(epsilon=1e-6, name=f"ln{block}b")(x)
        y = layers.Dense(48, activation="gelu", name=f"mlp{block}a")(y)
        x = layers.Add()([x, layers.Dense(32, name=f"mlp{block}b")(y)])
    x = layers.GlobalAveragePooling1D()(layers.LayerNormalization(epsilon=1e-6)(x))
    return keras.Model(inp, layers.Dense(5, name="logits")(x), name="vit")


def test_vit_with_augmentation_and_resizing_matches_tf_in_eval(keras, tmp_path, patches_layer):
    model = _vit(keras, patches_layer)
    inputs = [np.random.default_rng(0).uniform(0, 255, (3, 37, 41, 3)).astype(np.float32)]
    result = convert_and_compare(model, tmp_path, inputs=inputs)
    assert "MatrixResize" in result.source_code and "PatchesModule" in result.source_code
    assert "class RandomFlip" in result.source_code

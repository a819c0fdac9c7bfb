"""A traced custom layer becomes one class named after the Keras class, its submodules named
after the attributes the layer's code keeps them in (`self.att`, `self.ffn`, `self.layernorm1`),
so that every instance of the layer shares the class."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import tf2torch
from conftest import perturb_weights


def _transformer_block_class():
    import keras

    class TransformerBlock(keras.layers.Layer):
        def __init__(self, dim: int, heads: int, **kwargs) -> None:
            super().__init__(**kwargs)
            self.dim, self.heads = dim, heads
            self.att = keras.layers.MultiHeadAttention(heads, dim // heads)
            self.ffn = keras.Sequential([keras.layers.Dense(dim * 2, activation="gelu"), keras.layers.Dense(dim)])
            self.layernorm1 = keras.layers.LayerNormalization(epsilon=1e-6)
            self.layernorm2 = keras.layers.LayerNormalization(epsilon=1e-6)
            self.dropout = keras.layers.Dropout(0.3)

        def call(self, x, training=None):
            x = self.layernorm1(x + self.dropout(self.att(x, x), training=training))
            return self.layernorm2(x + self.ffn(x))

        def get_config(self):
            return {**super().get_config(), "dim": self.dim, "heads": self.heads}

    return TransformerBlock


@pytest.fixture(scope="module")
def traced_blocks(tmp_path_factory):
    import keras

    block = _transformer_block_class()
    inputs = keras.Input((7, 12), name="tokens")
    x = inputs
    for i in range(3):
        x = block(12, 3, name=f"encoder_{i}")(x)
    outputs = keras.layers.Dense(5, name="logits")(x)
    model = keras.Model(inputs, outputs)
    perturb_weights(model)
    path = tmp_path_factory.mktemp("traced") / "blocks.keras"
    model.save(path)
    return path, model, block


def test_instances_share_one_class_named_after_the_keras_class(traced_blocks, tmp_path):
    path, model, block = traced_blocks
    result = tf2torch.convert(path, custom_objects={"TransformerBlock": block})
    source = result.source_code
    assert source.count("class TransformerBlock") == 1, source
    assert [type(result.module.get_submodule(f"encoder_{i}")).__name__ for i in range(3)] == ["TransformerBlock"] * 3
    for attr in ("att_query", "att_attention_output", "ffn_0", "ffn_1", "layernorm1", "layernorm2"):
        assert f"self.{attr} = nn." in source, attr
    keys = set(result.module.state_dict())
    assert {"encoder_2.att_query.weight", "encoder_0.ffn_1.bias", "encoder_1.layernorm2.weight"} <= keys
    assert not any("multi_head_attention" in k or "sequential" in k or "kernel" in k for k in keys), keys
    report = result.verify(batch_size=3, keras_model=model)
    assert report.outputs and report.ok, report.table()
    directory = result.save(tmp_path / "out")
    layers = json.loads((directory / "weights_map.json").read_text())["layers"]
    assert layers["encoder_1"] == "encoder_1" and layers["logits"] == "logits"


def test_flat_keeps_the_same_traced_class(traced_blocks):
    path, model, block = traced_blocks
    flat = tf2torch.convert(path, custom_objects={"TransformerBlock": block}, structure="flat")
    assert flat.source_code.count("class TransformerBlock") == 1
    batch = np.random.default_rng(0).standard_normal((4, 7, 12)).astype(np.float32)
    with torch.no_grad():
        got = flat.module(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(got, np.asarray(model(batch)), rtol=1e-4, atol=1e-5)

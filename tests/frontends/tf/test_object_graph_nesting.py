"""A SavedModel of a subclassed Keras model: the object graph's attribute paths name the
submodules (`self.stem`, `blocks.2.d1`, not `block_1_dense_3_1` or `net`, Keras 3's name for
every variable's layer), and the objects of a list attribute become one class, instantiated per
element in an nn.Sequential when they chain."""

from __future__ import annotations

import json

import pytest
import torch
from tf_frontend_helpers import residual_mlp_net

import tf2torch


def _export_subclassed(path) -> None:
    import tensorflow as tf

    model = residual_mlp_net()

    @tf.function(input_signature=[tf.TensorSpec([None, 9], tf.float32)])
    def serve(x):
        return model(x)

    tf.saved_model.save(model, str(path), signatures=serve)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("subclassed") / "net"
    _export_subclassed(path)
    return path


def test_list_attribute_of_custom_blocks_becomes_one_class(saved, tmp_path):
    result = tf2torch.convert(saved)
    code = result.source_code
    assert code.count("class Block(nn.Module):") == 1, code
    assert "self.blocks = nn.Sequential(*(Block() for _ in range(4)))" in code
    assert "self.d1 = nn.Linear(12, 24)" in code and "self.norm = nn.LayerNorm(12, eps=1e-05)" in code
    assert sum(type(m).__name__ == "Block" for m in result.module.modules()) == 4
    keys = set(result.state_dict)
    assert {"stem.weight", "blocks.3.d1.weight", "blocks.0.norm.bias", "head.bias"} <= keys, keys
    assert not any(k.startswith("net") for k in keys)
    report = result.verify(batch_size=3)
    assert report.outputs and report.ok, report.table()
    directory = result.save(tmp_path / "out")
    layers = json.loads((directory / "weights_map.json").read_text())["layers"]
    assert layers["blocks/2/d1"] == "blocks.2.d1" and layers["stem"] == "stem"
    with torch.no_grad():  # a batch size the SavedModel's signature leaves open
        assert result.module(torch.randn(7, 9)).shape == (7, 3)


def test_flat_keeps_one_class_with_the_attribute_paths(saved):
    flat = tf2torch.convert(saved, structure="flat")
    assert "class Block" not in flat.source_code
    assert "self.blocks_2_d1 = nn.Linear(12, 24)" in flat.source_code
    report = flat.verify(batch_size=2)
    assert report.ok, report.table()

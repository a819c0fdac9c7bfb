"""TF graphs without an attribute tree (Keras 3's `model.export`, a frozen `.pb`) come out
structured too: their name scopes carry the Keras layer names (without TensorFlow's `_1`
counters), so a ResNet-like model gets the same `Block` classes and stage loops as its
`.keras` file, and a scope holding several layers (a custom block) becomes one class named
after the Keras class, instantiated once per block."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from tf_frontend_helpers import residual_mlp_net

import tf2torch
from conftest import perturb_weights, set_batchnorm_statistics
from tf2torch.frontends.tf.name_scopes import class_name_of, counter_free_scopes


def _bottleneck(keras, x, filters: int, stride: int, name: str, project: bool):
    shortcut = x
    if project:
        shortcut = keras.layers.Conv2D(filters * 2, 1, strides=stride, name=f"{name}_0_conv")(x)
        shortcut = keras.layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_0_bn")(shortcut)
    x = keras.layers.Conv2D(filters, 1, strides=stride, name=f"{name}_1_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_1_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_2_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_2_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = keras.layers.Conv2D(filters * 2, 1, name=f"{name}_3_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_3_bn")(x)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.Activation("relu", name=f"{name}_out")(x)


def _resnet_like(keras):
    """Two stages (3 and 2 bottlenecks, the first of each with a projection shortcut)."""
    inputs = keras.Input((13, 11, 3), name="image")
    x = keras.layers.Conv2D(8, 3, strides=2, name="conv1_conv")(inputs)
    x = keras.layers.Activation("relu", name="conv1_relu")(x)
    for stage, (filters, blocks) in enumerate([(4, 3), (8, 2)], start=2):
        for b in range(1, blocks + 1):
            x = _bottleneck(keras, x, filters, 2 if b == 1 and stage > 2 else 1, f"conv{stage}_block{b}", b == 1)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(5, name="predictions")(x))
    perturb_weights(model)
    set_batchnorm_statistics(model, np.random.default_rng(1).standard_normal((6, 13, 11, 3)).astype(np.float32))
    return model


def _freeze(model, spec, path) -> None:
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    tf.io.write_graph(convert_variables_to_constants_v2(fn).graph.as_graph_def(), str(path.parent), path.name,
                      as_text=False)


@pytest.fixture(scope="module")
def resnet_like(tmp_path_factory):
    import keras
    import tensorflow as tf

    directory = tmp_path_factory.mktemp("resnet_like")
    model = _resnet_like(keras)
    model.export(str(directory / "exported"), verbose=False)
    _freeze(model, tf.TensorSpec([None, 13, 11, 3], tf.float32, name="image"), directory / "frozen.pb")
    return directory


@pytest.fixture(scope="module")
def tf_keras_saved_model(tmp_path_factory):
    """tf_keras' `model.save(directory)`: its object graph tracks a functional model's layers
    by position (`layer_with_weights-4`), its variables carry the Keras layer names."""
    tf_keras = pytest.importorskip("tf_keras")
    path = tmp_path_factory.mktemp("tf_keras") / "resnet_like"
    _resnet_like(tf_keras).save(str(path))
    return path


@pytest.fixture(scope="module")
def subclassed(tmp_path_factory):
    import tensorflow as tf

    directory = tmp_path_factory.mktemp("subclassed")
    model = residual_mlp_net()
    model.export(str(directory / "exported"), verbose=False)
    _freeze(model, tf.TensorSpec([None, 9], tf.float32, name="x"), directory / "frozen.pb")
    return directory


def _instances(module: torch.nn.Module, class_name: str) -> int:
    return sum(type(m).__name__ == class_name for m in module.modules())


@pytest.mark.parametrize("source", ["exported", "frozen.pb", "tf_keras"])
def test_resnet_like_gets_block_classes_and_stage_loops(resnet_like, tf_keras_saved_model, source, tmp_path):
    result = tf2torch.convert(tf_keras_saved_model if source == "tf_keras" else resnet_like / source)
    code = result.source_code
    if source == "frozen.pb":  # BatchNorm frozen to constants: the first block of a stage is a class of its own
        assert code.count("class Block(nn.Module):") == 1 and code.count("class Block2(nn.Module):") == 1, code
        assert re.search(r"self\.conv2 = nn\.Sequential\(\s*Block2\(", code), code
        assert (_instances(result.module, "Block"), _instances(result.module, "Block2")) == (3, 2)
    else:  # one bottleneck class; the first block of a stage has the projection shortcut
        assert code.count("class Block(nn.Module):") == 1 and "class Block2(" not in code, code
        assert re.search(r"self\.conv2 = nn\.Sequential\(\s*Block\(.*projection=True", code), code
        assert re.search(r"self\.conv3 = nn\.Sequential\(\s*Block\(.*projection=True", code), code
        assert _instances(result.module, "Block") == 5
    # Keras' names without TensorFlow's scope counters (`conv1_conv_1`), inside the blocks too.
    assert "self.conv1_conv = nn.Conv2d(3, 8" in code and "self.predictions = nn.Linear(16, 5)" in code, code
    assert "self.conv2 = nn.Conv2d(" in code and "self.conv0 = nn.Conv2d(" in code, code
    keys = set(result.state_dict)
    assert {"conv1_conv.weight", "conv2.0.conv0.weight", "conv2.2.conv3.bias", "conv3.1.conv2.weight"} <= keys, keys
    assert not any(k.endswith("_1.weight") or "layer_with_weights" in k for k in keys), keys
    report = result.verify(batch_size=3)
    assert report.outputs and report.ok, report.table()
    layers = json.loads((result.save(tmp_path / "out") / "weights_map.json").read_text())["layers"]
    assert layers["conv2_block1_1_conv"] == "conv2.0.conv1" and layers["conv3_block2_3_conv"] == "conv3.1.conv3"
    assert layers["predictions"] == "predictions"


@pytest.mark.parametrize("source", ["exported", "frozen.pb"])
def test_custom_block_scope_becomes_one_class_per_keras_class(subclassed, source, tmp_path):
    result = tf2torch.convert(subclassed / source)
    code = result.source_code
    assert code.count("class ResidualMlp(nn.Module):") == 1, code
    assert "self.residual_mlps = nn.Sequential(*(ResidualMlp() for _ in range(4)))" in code, code
    assert _instances(result.module, "ResidualMlp") == 4
    # The first block's Keras layer names (`dense_1`, not `net` or `residual_mlp_1_dense_1_1`).
    for line in ("self.dense_1 = nn.Linear(12, 24)", "self.dense_2 = nn.Linear(24, 12)",
                 "self.layer_normalization = nn.LayerNorm(12, eps=1e-05)", "self.dense = nn.Linear(9, 12)"):
        assert line in code, (line, code)
    assert "requires_grad_(False)" not in code  # a frozen graph's LayerNorm trains, as its Linears do
    keys = set(result.state_dict)
    assert {"dense.weight", "residual_mlps.3.dense_2.bias", "residual_mlps.0.layer_normalization.weight"} <= keys
    assert not any(k.startswith("net") for k in keys), keys
    report = result.verify(batch_size=3)
    assert report.outputs and report.ok, report.table()
    layers = json.loads((result.save(tmp_path / "out") / "weights_map.json").read_text())["layers"]
    assert layers["residual_mlp_1/dense_3"] == "residual_mlps.1.dense_1", layers
    with torch.no_grad():  # the batch stays dynamic
        assert result.module(torch.randn(7, 9)).shape == (7, 3)


def test_layer_of_a_numbered_block_leaves_the_block_to_the_names(tmp_path):
    """`layer_0_att` (a MultiHeadAttention, whose scope holds query/key/value) is a layer of
    block `layer_0`: the block is the class, as from the `.keras` file, not the attention."""
    import keras
    import tensorflow as tf

    inputs = keras.Input((7, 16), name="tokens")
    x = inputs
    for i in range(2):
        x = keras.layers.LayerNormalization(name=f"layer_{i}_norm1")(
            x + keras.layers.MultiHeadAttention(2, 8, name=f"layer_{i}_att")(x, x))
        ffn = keras.layers.Dense(16, name=f"layer_{i}_ffn2")(keras.layers.Dense(32, activation="gelu",
                                                                               name=f"layer_{i}_ffn1")(x))
        x = keras.layers.LayerNormalization(name=f"layer_{i}_norm2")(x + ffn)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(x))
    perturb_weights(model)
    _freeze(model, tf.TensorSpec([None, 7, 16], tf.float32, name="tokens"), tmp_path / "encoder.pb")
    result = tf2torch.convert(tmp_path / "encoder.pb")
    code = result.source_code
    assert code.count("class Layer(nn.Module):") == 1 and "class LayerAtt" not in code, code
    assert "self.layers = nn.Sequential(Layer(), Layer())" in code, code
    assert "self.att_query = nn.Linear(16, 16, bias=False)" in code and "self.ffn1 = nn.Linear(16, 32)" in code, code
    assert "self.logits = nn.Linear(16, 3)" in code, code  # not `logits_tensordot`
    report = result.verify(batch_size=3)
    assert report.outputs and report.ok, report.table()


@pytest.mark.slow
def test_flat_keeps_the_keras_names(resnet_like):
    flat = tf2torch.convert(resnet_like / "frozen.pb", structure="flat")
    assert "class Block" not in flat.source_code
    assert "self.conv2_block1_1_conv = nn.Conv2d(" in flat.source_code
    report = flat.verify(batch_size=2)
    assert report.ok, report.table()


def test_counters_are_dropped_only_where_every_sibling_has_one():
    # Keras 3 (the model's own scope `net_1/` is the common prefix the importer drops first).
    keras3 = ["dense_1/MatMul", "residual_mlp_1/dense_1_1/MatMul", "residual_mlp_1_2/dense_3_1/MatMul",
              "residual_mlp_1_2/dense_4_1/MatMul", "residual_mlp_1/layer_normalization_1/moments/mean"]
    renames = counter_free_scopes(keras3)
    assert renames["residual_mlp_1_2/dense_3_1"] == "residual_mlp_1/dense_3"
    assert renames["residual_mlp_1/layer_normalization_1/moments"] == "residual_mlp/layer_normalization/moments"
    # Keras 2: a scope without a counter among the siblings: the numbers are the layers' own.
    keras2 = ["model/dense_1/MatMul", "model/conv2d/Conv2D", "model/dense/MatMul"]
    assert counter_free_scopes(keras2)["model/dense_1"] == "model/dense_1"
    # Dropping them would merge two scopes: kept.
    assert counter_free_scopes(["a_1/x", "a_2/x"]) == {"a_1": "a_1", "a_2": "a_2"}
    # The call scopes of a graph frozen from a loaded SavedModel name nothing.
    inlined = ["net/StatefulPartitionedCall/residual_mlp/StatefulPartitionedCall/dense_1/MatMul",
               "net/StatefulPartitionedCall/residual_mlp/StatefulPartitionedCall/norm/mul",
               "Func/net/StatefulPartitionedCall/input/_3"]
    renames = counter_free_scopes(inlined)
    assert renames["net/StatefulPartitionedCall/residual_mlp/StatefulPartitionedCall/dense_1"] == "net/residual_mlp/dense_1"
    # One scope alone says nothing about counters: `dense_1` may be the layer's name.
    assert counter_free_scopes(["block/dense_1/MatMul"])["block/dense_1"] == "block/dense_1"
    assert class_name_of("residual_mlp_1") == "ResidualMlp" and class_name_of("encoder") == "Encoder"
    assert class_name_of("layer_0_att") == class_name_of("layer_1_att") == "LayerAtt"

"""Training a structured model.py (repeated blocks as classes, issue 14): Keras fit and
training_setup() from the same weights and batches give the same losses and weights, with a
kernel regularizer and an activity regularizer on layers inside the block classes; train.py
and weights_map.json (per-weight torch key and permutation) are written with nested keys."""

from __future__ import annotations

import json

import keras
import pytest
from training_helpers import batches, run_parity

import tf2torch

STEPS = 6
BATCH = 4
IMAGE = (9, 7, 3)  # odd spatial size


def block_net():
    """Three residual blocks `stage_blockN_*`, one class (the first's projection shortcut is optional)."""
    inputs = keras.Input(IMAGE, name="image")
    x = keras.layers.Conv2D(6, 3, padding="same", name="stem")(inputs)
    for i in (1, 2, 3):
        name = f"stage_block{i}"
        # No bias before the BatchNorm: its gradient is rounding noise on both sides.
        y = keras.layers.Conv2D(6, 3, padding="same", use_bias=False, name=f"{name}_conv",
                                kernel_regularizer=keras.regularizers.L2(0.01))(x)
        y = keras.layers.BatchNormalization(name=f"{name}_bn")(y)
        y = keras.layers.Dense(6, activation="tanh", name=f"{name}_mix",
                               activity_regularizer=keras.regularizers.L1(0.001))(y)
        if i == 1:
            x = keras.layers.Conv2D(6, 1, name=f"{name}_shortcut")(x)
        x = keras.layers.Add(name=f"{name}_add")([x, y])
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="block_net")


@pytest.fixture
def compiled():
    keras.utils.set_random_seed(3)
    model = block_net()
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.5), loss="sparse_categorical_crossentropy")
    return model


def test_training_parity_through_block_classes(compiled, tmp_path):
    parity = run_parity(compiled, batches(IMAGE, 3, STEPS, BATCH), tmp_path)
    parity.check()


def test_train_py_and_weights_map_use_nested_keys(compiled, tmp_path):
    compiled.save(tmp_path / "block_net.keras")
    result = tf2torch.convert(tmp_path / "block_net.keras")
    assert "class Block(nn.Module):" in result.source_code
    directory = result.save(tmp_path / "out")
    assert "stage_blocks.2.mix" in (directory / "train.py").read_text()  # the activity hook's module path
    content = json.loads((directory / "weights_map.json").read_text())
    assert content["layers"]["stage_block3_conv"] == "stage_blocks.2.conv"
    assert content["layers"]["stage_block1_shortcut"] == "stage_blocks.0.shortcut"
    by_keras = {entry["keras"]: entry for entry in content["weights"]}
    kernel = by_keras["stage_block2_conv/vars/0"]
    assert kernel["torch"] == "stage_blocks.1.conv.weight" and kernel["permute"] == [3, 2, 0, 1]
    assert by_keras["stage_block2_mix/vars/0"]["permute"] == [1, 0]
    assert "permute" not in by_keras["stage_block2_bn/vars/0"]
    assert by_keras["stem/vars/1"]["torch"] == "stem.bias"
    assert by_keras["stage_block3_bn/vars/2"]["torch"] == "stage_blocks.2.bn.running_mean"
    assert by_keras["stage_block1_shortcut/vars/0"]["torch"] == "stage_blocks.0.shortcut.weight"

"""In-place ops in the generated forward (ModuleBuilder.overwritable): `F.relu(x, inplace=True)`
and `x += y` only where nothing else reads x, with the same outputs and gradients as Keras."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import convert_and_compare


def _residual_net(keras):
    inputs = keras.Input((15, 13, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    stem = keras.layers.ReLU(name="stem_relu")(x)  # read twice: by the block and the skip
    y = keras.layers.Conv2D(8, 3, padding="same", name="block_conv")(stem)
    y = keras.layers.BatchNormalization(name="block_bn")(y)
    y = keras.layers.ReLU(6.0, name="block_relu6")(y)
    y = keras.layers.Conv2D(8, 1, name="block_proj")(y)
    y = keras.layers.Add(name="add")([stem, y])  # proj output: fresh, used once
    y = keras.layers.Activation("relu", name="add_relu")(y)
    bn_shared = keras.layers.BatchNormalization(name="shared_bn")(y)
    z = keras.layers.Activation("relu", name="shared_relu")(bn_shared)  # bn_shared is read again below
    z = keras.layers.Add(name="add_shared")([z, bn_shared])
    z = keras.layers.GlobalAveragePooling2D(name="pool")(z)
    outputs = keras.layers.Dense(5, name="head")(z)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_in_place_ops_keep_keras_outputs(keras, tmp_path, training):
    result = convert_and_compare(_residual_net(keras), tmp_path, batch_size=4, training=training)
    source = result.source_code
    assert "F.relu(x, inplace=True)" in source
    assert "F.relu6(x, inplace=True)" in source
    assert " += " in source
    # The ReLU whose input is read twice is not in place (neither is the add of two reads).
    assert "torch.relu(shared_bn)" in source


def test_in_place_ops_keep_keras_gradients(keras, tmp_path):
    import tensorflow as tf

    model = _residual_net(keras)
    result = convert_and_compare(model, tmp_path, batch_size=4)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 15, 13, 3)).astype("float32")
    weight = rng.normal(size=(4, 5)).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x, training=True) * weight)
    keras_grads = dict(zip([v.path for v in model.trainable_weights],
                           tape.gradient(loss, model.trainable_weights)))

    module = result.module.train()
    torch_loss = (module(torch.from_numpy(x.transpose(0, 3, 1, 2))) * torch.from_numpy(weight)).sum()
    torch_loss.backward()  # raises if an in-place op overwrote a tensor autograd saved
    expected = keras_grads["stem/kernel"].numpy().transpose(3, 2, 0, 1)
    got = module.stem.weight.grad.numpy()
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()

"""The foundation acceptance CNN: Conv/BN/ReLU/pooling/Flatten/Dense on 33x35, stride-2 'same'."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import convert_and_compare


def _cnn(k):
    inp = k.Input((33, 35, 3))
    x = k.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(inp)
    x = k.layers.BatchNormalization()(x)
    x = k.layers.ReLU()(x)
    x = k.layers.Conv2D(12, 4, strides=2, padding="same")(x)  # even kernel: asymmetric padding
    x = k.layers.BatchNormalization(momentum=0.9, epsilon=1e-4)(x)
    x = k.layers.Activation("relu")(x)
    x = k.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = k.layers.AveragePooling2D(2, padding="same")(x)
    x = k.layers.Flatten()(x)
    x = k.layers.Dense(16, activation="relu")(x)
    return k.Model(inp, k.layers.Dense(10)(x))


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("batch_size", [1, 5])
def test_cnn_matches_tensorflow(keras, tmp_path, training, batch_size):
    if training and batch_size == 1:
        pytest.skip("batch statistics of a single sample with 1x1 maps are degenerate")
    result = convert_and_compare(_cnn(keras), tmp_path, training=training, batch_size=batch_size)
    forward = result.source_code.split("def forward")[1].split("def load_model")[0]
    assert ".permute(" not in forward and ".transpose(" not in forward


def test_cnn_from_tf_keras_h5_trains_like_keras2(tmp_path):
    import tf_keras

    convert_and_compare(_cnn(tf_keras), tmp_path, suffix=".h5", training=True, batch_size=4)


def test_converted_cnn_takes_a_training_step(keras, tmp_path):
    result = convert_and_compare(_cnn(keras), tmp_path)
    module = result.module.train()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((4, 3, 33, 35)).astype(np.float32))
    loss = torch.nn.functional.cross_entropy(module(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    optimizer.step()
    after = module.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any(k.endswith("weight") for k in changed)
    assert any(k.endswith("running_mean") for k in changed)  # BatchNorm statistics moved
    assert all(isinstance(p, torch.nn.Parameter) and p.requires_grad for p in module.parameters())

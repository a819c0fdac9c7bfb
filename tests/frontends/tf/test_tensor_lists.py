"""TensorLists (a Keras RNN's time loop in a SavedModel or tf.function) against TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import keras

import tf2torch


def _perturbed(layer, features: int):
    layer(np.zeros((1, 3, features), np.float32))
    rng = np.random.default_rng(0)
    layer.set_weights([w + rng.normal(0, 0.2, w.shape).astype(np.float32) for w in layer.get_weights()])
    return layer


@pytest.mark.parametrize(
    "make",
    [
        lambda: keras.layers.LSTM(3),
        lambda: keras.layers.GRU(4, return_sequences=True, go_backwards=True),  # its bias is split in the loop
        lambda: keras.layers.Bidirectional(keras.layers.SimpleRNN(2, return_sequences=True)),
    ],
    ids=["lstm", "gru_backwards", "bidirectional_rnn"],
)
def test_recurrent_time_loops_match_tensorflow(make):
    # Reading the inputs from, and writing the outputs to, TensorLists inside a While: before,
    # folding TensorListReserve crashed with TensorFlow's InvalidArgumentError.
    layer = _perturbed(make(), 4)
    fn = tf.function(lambda x: layer(x), input_signature=[tf.TensorSpec((None, None, 4), tf.float32)])
    result = tf2torch.convert(fn)
    for batch, steps in ((3, 7), (2, 5)):  # the batch and the number of steps are run-time sizes
        inputs = [np.random.default_rng(batch).standard_normal((batch, steps, 4)).astype(np.float32)]
        report = result.verify(inputs, tolerance=1e-5)
        assert report.outputs and report.ok, report.table()
    assert "torch.stack(" in result.source_code

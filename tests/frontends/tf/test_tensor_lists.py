"""Ops producing TensorLists (a Keras RNN's time loop in a SavedModel) are never constant-folded."""

from __future__ import annotations

import pytest

tf = pytest.importorskip("tensorflow")

import keras

import tf2torch


def test_a_tensor_list_is_named_as_unsupported_not_a_tensorflow_crash():
    # Folding TensorListReserve on constant inputs gave a variant tensor, whose .numpy() raised
    # InvalidArgumentError through convert() ("the model cannot be read" from the CLI).
    lstm = keras.layers.LSTM(3)
    fn = tf.function(lambda x: lstm(x), input_signature=[tf.TensorSpec((None, 5, 4), tf.float32)])
    with pytest.raises(tf2torch.ConversionError, match="TensorListReserve"):
        tf2torch.convert(fn)

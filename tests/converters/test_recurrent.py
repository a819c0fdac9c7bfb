"""SimpleRNN / LSTM / GRU / Bidirectional against TensorFlow: every option, eval and train."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tf2torch
from conftest import convert_and_compare, perturb_weights

STEPS, FEATURES = 9, 5


def _sequence_model(keras, layer, steps=STEPS, features=FEATURES):
    inp = keras.Input((steps, features))
    out = layer(inp)
    return keras.Model(inp, out)


LAYERS = {
    "lstm_sequences": lambda k: k.layers.LSTM(7, return_sequences=True),
    "lstm_last": lambda k: k.layers.LSTM(7),
    "lstm_no_bias": lambda k: k.layers.LSTM(6, use_bias=False, return_sequences=True),
    "lstm_relu_hard_sigmoid": lambda k: k.layers.LSTM(6, activation="relu", recurrent_activation="hard_sigmoid"),
    "lstm_go_backwards": lambda k: k.layers.LSTM(6, go_backwards=True, return_sequences=True),
    "lstm_go_backwards_last": lambda k: k.layers.LSTM(6, go_backwards=True),
    "lstm_return_state": lambda k: k.layers.LSTM(6, return_state=True),
    "lstm_return_state_sequences": lambda k: k.layers.LSTM(6, return_state=True, return_sequences=True),
    "lstm_custom_activation_loop": lambda k: k.layers.LSTM(5, activation="softsign", recurrent_activation="tanh", return_sequences=True),
    "gru_reset_after": lambda k: k.layers.GRU(7, return_sequences=True),
    "gru_reset_after_last": lambda k: k.layers.GRU(7),
    "gru_reset_before": lambda k: k.layers.GRU(6, reset_after=False, return_sequences=True),
    "gru_reset_before_no_bias": lambda k: k.layers.GRU(6, reset_after=False, use_bias=False),
    "gru_no_bias": lambda k: k.layers.GRU(6, use_bias=False, return_sequences=True),
    "gru_return_state": lambda k: k.layers.GRU(6, return_state=True, go_backwards=True),
    "gru_elu_activation": lambda k: k.layers.GRU(6, activation="elu", recurrent_activation="hard_sigmoid"),
    "simple_rnn_tanh": lambda k: k.layers.SimpleRNN(7, return_sequences=True),
    "simple_rnn_relu": lambda k: k.layers.SimpleRNN(7, activation="relu"),
    "simple_rnn_linear_loop": lambda k: k.layers.SimpleRNN(5, activation="linear", return_sequences=True),
    "simple_rnn_state_backwards": lambda k: k.layers.SimpleRNN(5, return_state=True, go_backwards=True, use_bias=False),
    "lstm_dropout_eval": lambda k: k.layers.LSTM(6, dropout=0.3, recurrent_dropout=0.2, return_sequences=True),
    "gru_dropout_eval": lambda k: k.layers.GRU(6, dropout=0.3, recurrent_dropout=0.2),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_recurrent_layer_matches_tensorflow(keras, tmp_path, name):
    model = _sequence_model(keras, LAYERS[name](keras))
    convert_and_compare(model, tmp_path, batch_size=3)


BIDIRECTIONAL = {
    "concat_sequences": ("concat", True, "LSTM"),
    "concat_last": ("concat", False, "LSTM"),
    "sum_sequences": ("sum", True, "GRU"),
    "mul_last": ("mul", False, "GRU"),
    "ave_sequences": ("ave", True, "SimpleRNN"),
    "none_sequences": (None, True, "LSTM"),
    "none_last": (None, False, "GRU"),
}


@pytest.mark.parametrize("name", list(BIDIRECTIONAL))
def test_bidirectional_merge_modes(keras, tmp_path, name):
    merge_mode, sequences, cls = BIDIRECTIONAL[name]
    inner = getattr(keras.layers, cls)(5, return_sequences=sequences)
    model = _sequence_model(keras, keras.layers.Bidirectional(inner, merge_mode=merge_mode))
    convert_and_compare(model, tmp_path)


@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_bidirectional_return_state(keras, tmp_path, cls):
    inner = getattr(keras.layers, cls)(5, return_state=True, return_sequences=True)
    inp = keras.Input((STEPS, FEATURES))
    outputs = keras.layers.Bidirectional(inner)(inp)
    convert_and_compare(keras.Model(inp, list(outputs)), tmp_path)


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "SimpleRNN", "GRU_reset_before"])
def test_initial_states_as_inputs(keras, tmp_path, cls):
    units = 6
    layer = keras.layers.GRU(units, reset_after=False) if cls == "GRU_reset_before" else getattr(keras.layers, cls)(units)
    n_states = 2 if cls == "LSTM" else 1
    inp = keras.Input((STEPS, FEATURES))
    states = [keras.Input((units,)) for _ in range(n_states)]
    out = layer(inp, initial_state=states)
    convert_and_compare(keras.Model([inp, *states], out), tmp_path)


def test_bidirectional_initial_states(keras, tmp_path):
    inp = keras.Input((STEPS, FEATURES))
    states = [keras.Input((4,)) for _ in range(4)]
    out = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True))(inp, initial_state=states)
    convert_and_compare(keras.Model([inp, *states], out), tmp_path)


KERAS2 = {
    "lstm_hard_sigmoid": lambda k: k.layers.LSTM(6, recurrent_activation="hard_sigmoid", return_sequences=True),
    "gru_v1_style": lambda k: k.layers.GRU(6, recurrent_activation="hard_sigmoid", reset_after=False),
    "gru_reset_after": lambda k: k.layers.GRU(6, return_sequences=True),
    "bidirectional_lstm": lambda k: k.layers.Bidirectional(k.layers.LSTM(4, return_sequences=True), merge_mode="sum"),
    "simple_rnn": lambda k: k.layers.SimpleRNN(5, go_backwards=True),
}


@pytest.mark.parametrize("name", list(KERAS2))
def test_keras2_h5_recurrent(tmp_path, name):
    import tf_keras

    model = _sequence_model(tf_keras, KERAS2[name](tf_keras))
    convert_and_compare(model, tmp_path, suffix=".h5")


def test_keras2_initial_state_inputs(tmp_path):
    import tf_keras

    inp = tf_keras.Input((STEPS, FEATURES))
    h, c = tf_keras.Input((4,)), tf_keras.Input((4,))
    out = tf_keras.layers.LSTM(4, return_sequences=True)(inp, initial_state=[h, c])
    convert_and_compare(tf_keras.Model([inp, h, c], out), tmp_path, suffix=".h5")


def test_exact_cases_use_torch_modules_with_frozen_second_bias(keras, tmp_path):
    inp = keras.Input((STEPS, FEATURES))
    x = keras.layers.LSTM(5, return_sequences=True, name="lstm")(inp)
    x = keras.layers.SimpleRNN(4, return_sequences=True, name="rnn")(x)
    x = keras.layers.GRU(3, name="gru")(x)
    result = convert_and_compare(keras.Model(inp, x), tmp_path)
    code = result.source_code
    assert "nn.LSTM(5, 5, batch_first=True)" in code and "nn.RNN(5, 4" in code and "nn.GRU(4, 3" in code
    params = dict(result.module.named_parameters())
    lstm_bias = next(p for n, p in params.items() if n.endswith("lstm.bias_hh_l0"))
    assert not lstm_bias.requires_grad and torch.count_nonzero(lstm_bias) == 0
    gru_bias = next(p for n, p in params.items() if n.endswith("gru.bias_hh_l0"))
    assert gru_bias.requires_grad  # GRU(reset_after=True) has a real recurrent bias


def test_training_mode_without_dropout_is_exact(keras, tmp_path):
    model = _sequence_model(keras, keras.layers.GRU(6, reset_after=False, return_sequences=True))
    convert_and_compare(model, tmp_path, training=True)


DROPOUT = {
    "lstm_input": lambda k: k.layers.LSTM(6, dropout=0.4),
    "gru_input": lambda k: k.layers.GRU(6, dropout=0.4),
    "lstm_recurrent_per_gate": lambda k: k.layers.LSTM(6, dropout=0.3, recurrent_dropout=0.4),
    "gru_reset_before_recurrent": lambda k: k.layers.GRU(6, reset_after=False, dropout=0.2, recurrent_dropout=0.4),
    "simple_rnn_recurrent": lambda k: k.layers.SimpleRNN(6, recurrent_dropout=0.4),
}


@pytest.mark.parametrize("name", list(DROPOUT))
def test_dropout_in_training_matches_statistically(keras, tmp_path, name):
    """Random streams differ: compare the mean and spread of many training-mode runs.
    (With recurrent_dropout Keras draws one mask per gate, inputs and states alike.)"""
    layer = DROPOUT[name](keras)
    model = _sequence_model(keras, layer)
    result = convert_and_compare(model, tmp_path)  # eval: exact
    x = np.random.default_rng(1).standard_normal((1, STEPS, FEATURES)).astype(np.float32)
    runs = 300
    keras_runs = np.stack([np.asarray(model(np.repeat(x, 50, 0), training=True)) for _ in range(runs // 50)]).reshape(runs, -1)
    module = result.module.train()
    torch.manual_seed(0)
    with torch.no_grad():
        torch_runs = np.stack([module(torch.from_numpy(np.repeat(x, 50, 0))).numpy() for _ in range(runs // 50)]).reshape(runs, -1)
    module.eval()
    eval_out = np.asarray(model(x, training=False)).ravel()
    assert np.abs(torch_runs - eval_out).max() > 1e-3, "dropout had no effect in train()"
    stderr = np.sqrt(keras_runs.var(0) / runs + torch_runs.var(0) / runs) + 1e-6
    assert np.all(np.abs(keras_runs.mean(0) - torch_runs.mean(0)) < 5 * stderr)
    np.testing.assert_allclose(torch_runs.std(0), keras_runs.std(0), rtol=0.35, atol=0.01)


def test_stateful_carries_detached_state_and_resets(keras, tmp_path):
    inp = keras.Input(batch_shape=(2, 4, FEATURES))
    model = keras.Model(inp, keras.layers.LSTM(5, stateful=True, return_sequences=True, name="lstm")(inp))
    perturb_weights(model)
    path = tmp_path / "stateful.keras"
    model.save(path)
    result = tf2torch.convert(str(path))
    rng = np.random.default_rng(3)
    chunks = [rng.standard_normal((2, 4, FEATURES)).astype(np.float32) for _ in range(3)]
    module = result.module
    for chunk in chunks:
        expected = np.asarray(model(chunk))
        out = module(torch.from_numpy(chunk)).detach().numpy()
        np.testing.assert_allclose(out, expected, atol=1e-5 * np.abs(expected).max())
    model.layers[-1].reset_states()
    module.reset_states()  # the generated model's own method
    expected = np.asarray(model(chunks[0]))
    np.testing.assert_allclose(module(torch.from_numpy(chunks[0])).detach().numpy(), expected, atol=1e-5)
    assert not any(s.requires_grad for s in module.lstm.states)


CELL_WRAPPERS = {
    "lstm_cell": lambda k: k.layers.RNN(k.layers.LSTMCell(5, recurrent_activation="hard_sigmoid"), return_sequences=True),
    "gru_cell_state": lambda k: k.layers.RNN(k.layers.GRUCell(5, reset_after=False), return_state=True, go_backwards=True),
    "simple_rnn_cell": lambda k: k.layers.RNN(k.layers.SimpleRNNCell(4, activation="relu")),
    "stacked_cells": lambda k: k.layers.RNN(
        k.layers.StackedRNNCells([k.layers.LSTMCell(6), k.layers.GRUCell(4), k.layers.SimpleRNNCell(3)]), return_sequences=True
    ),
    "stacked_cells_last": lambda k: k.layers.RNN(k.layers.StackedRNNCells([k.layers.GRUCell(4), k.layers.LSTMCell(3)])),
}


@pytest.mark.parametrize("name", list(CELL_WRAPPERS))
def test_rnn_wrapping_cells(keras, tmp_path, name):
    model = _sequence_model(keras, CELL_WRAPPERS[name](keras))
    convert_and_compare(model, tmp_path)


def test_keras2_rnn_with_stacked_cells(tmp_path):
    import tf_keras

    cells = tf_keras.layers.StackedRNNCells([tf_keras.layers.LSTMCell(4), tf_keras.layers.GRUCell(3)])
    model = _sequence_model(tf_keras, tf_keras.layers.RNN(cells, return_sequences=True))
    convert_and_compare(model, tmp_path, suffix=".h5")


TIME_DISTRIBUTED = {
    "dense": lambda k: (k.Input((7, 5)), k.layers.TimeDistributed(k.layers.Dense(3, activation="relu"))),
    "conv2d": lambda k: (k.Input((4, 9, 11, 2)), k.layers.TimeDistributed(k.layers.Conv2D(3, 3, strides=2, padding="same"))),
    "dense_on_dynamic_steps": lambda k: (k.Input((None, 5)), k.layers.TimeDistributed(k.layers.Dense(4))),
}


@pytest.mark.parametrize("name", list(TIME_DISTRIBUTED))
def test_time_distributed(keras, tmp_path, name):
    inp, layer = TIME_DISTRIBUTED[name](keras)
    convert_and_compare(keras.Model(inp, layer(inp)), tmp_path)


def test_keras2_time_distributed(tmp_path):
    import tf_keras

    inp = tf_keras.Input((6, 5))
    out = tf_keras.layers.TimeDistributed(tf_keras.layers.Dense(3))(inp)
    convert_and_compare(tf_keras.Model(inp, out), tmp_path, suffix=".h5")


CONV_LSTM = {
    "valid_last": lambda k: k.layers.ConvLSTM2D(4, 3),
    "same_sequences": lambda k: k.layers.ConvLSTM2D(3, (3, 2), padding="same", return_sequences=True, use_bias=False),
    "strided_backwards": lambda k: k.layers.ConvLSTM2D(3, 3, strides=2, go_backwards=True, return_sequences=True),
    "dilated_state_activations": lambda k: k.layers.ConvLSTM2D(
        2, 2, dilation_rate=2, return_state=True, activation="relu", recurrent_activation="hard_sigmoid"
    ),
}


@pytest.mark.parametrize("name", list(CONV_LSTM))
def test_conv_lstm2d(keras, tmp_path, name):
    inp = keras.Input((4, 9, 11, 2))
    out = CONV_LSTM[name](keras)(inp)
    convert_and_compare(keras.Model(inp, out), tmp_path)


@pytest.mark.parametrize("what", ["ConvLSTM2D_dropout", "StackedRNNCells_return_state"])
def test_unsupported_recurrent_options_are_named(keras, tmp_path, what):
    if what == "ConvLSTM2D_dropout":
        inp = keras.Input((3, 6, 6, 2))
        out = keras.layers.ConvLSTM2D(2, 3, dropout=0.2)(inp)
    else:
        inp = keras.Input((STEPS, FEATURES))
        cells = keras.layers.StackedRNNCells([keras.layers.LSTMCell(3), keras.layers.LSTMCell(2)])
        out = keras.layers.RNN(cells, return_state=True)(inp)[0]
    path = tmp_path / "m.keras"
    keras.Model(inp, out).save(path)
    with pytest.raises(tf2torch.ConversionError, match="dropout" if "dropout" in what else "StackedRNNCells"):
        tf2torch.convert(str(path))

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


@pytest.mark.parametrize("name", ["lstm_input", "gru_input", "lstm_recurrent_per_gate", "simple_rnn_recurrent"])
def test_dropout_keeps_torchs_kernel_for_inference(keras, tmp_path, name):
    """Dropout changes training only: the module is an nn.LSTM / nn.GRU / nn.RNN (torch's
    kernel, exact in eval) whose training path is the cell loop with Keras' masks (the
    statistical test above checks that path)."""
    result = convert_and_compare(_sequence_model(keras, DROPOUT[name](keras)), tmp_path)
    rnn = next(m for m in result.module.modules() if isinstance(m, torch.nn.RNNBase))
    assert type(rnn).__name__.startswith("Dropout") and rnn.dropout == 0.0
    assert "KerasRecurrentLoop" not in result.source_code


@pytest.mark.parametrize("dropout", [0.0, 0.3], ids=["plain", "dropout"])
def test_unread_final_states_are_not_assigned(keras, tmp_path, dropout):
    inp = keras.Input((STEPS, FEATURES))
    sequence, _, _ = keras.layers.LSTM(6, return_sequences=True, return_state=True, dropout=dropout)(inp)
    _, _, c_back = keras.layers.LSTM(5, return_state=True, go_backwards=True, name="back")(inp)
    result = convert_and_compare(keras.Model(inp, [sequence, c_back]), tmp_path)
    forward = result.source_code.split("    def forward(self, x")[-1]
    assert "_h = " not in forward and "lstm_c" not in forward, forward


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
    # (input shape without batch, layer)
    "valid_last": ((4, 9, 11, 2), lambda k: k.layers.ConvLSTM2D(4, 3)),
    "same_sequences": ((4, 9, 11, 2), lambda k: k.layers.ConvLSTM2D(3, (3, 2), padding="same", return_sequences=True,
                                                                    use_bias=False)),
    "strided_backwards": ((4, 9, 11, 2), lambda k: k.layers.ConvLSTM2D(3, 3, strides=2, go_backwards=True,
                                                                       return_sequences=True)),
    "dilated_state_activations": ((4, 9, 11, 2), lambda k: k.layers.ConvLSTM2D(
        2, 2, dilation_rate=2, return_state=True, activation="relu", recurrent_activation="hard_sigmoid"
    )),
    # TF's 'same' with strides: 10 rows, kernel 3, stride 2 pad (0, 1); 11 columns, kernel 4 pad (1, 2).
    "same_strided_asymmetric": ((4, 10, 11, 2), lambda k: k.layers.ConvLSTM2D(3, (3, 4), strides=2, padding="same",
                                                                              return_sequences=True)),
    "same_strided_symmetric": ((4, 9, 11, 2), lambda k: k.layers.ConvLSTM2D(3, 3, strides=2, padding="same",
                                                                            return_state=True)),
    "dropout_eval": ((4, 9, 11, 2), lambda k: k.layers.ConvLSTM2D(3, 3, dropout=0.3, recurrent_dropout=0.4,
                                                                  return_sequences=True)),
    "conv_lstm1d_same_strided": ((5, 10, 3), lambda k: k.layers.ConvLSTM1D(4, 4, strides=3, padding="same",
                                                                           return_sequences=True)),
    "conv_lstm1d_state_backwards": ((5, 10, 3), lambda k: k.layers.ConvLSTM1D(3, 3, return_state=True,
                                                                              go_backwards=True)),
    "conv_lstm3d_state": ((3, 5, 6, 4, 2), lambda k: k.layers.ConvLSTM3D(2, 2, return_state=True, padding="same")),
    "conv_lstm3d_strided_same": ((3, 5, 6, 7, 2), lambda k: k.layers.ConvLSTM3D(2, 3, strides=2, padding="same",
                                                                                return_sequences=True)),
}


@pytest.mark.parametrize("name", list(CONV_LSTM))
def test_conv_lstm(keras, tmp_path, name):
    shape, layer = CONV_LSTM[name]
    inp = keras.Input(shape)
    out = layer(keras)(inp)
    result = convert_and_compare(keras.Model(inp, list(out) if isinstance(out, (list, tuple)) else out), tmp_path)
    if "asymmetric" in name:
        assert "input_padding=(1, 2, 0, 1)" in result.source_code


def _frames(padding: str, shape=(3, 5, 7, 6, 2), seed=0) -> np.ndarray:
    """Frames with whole masked steps (right-, left-padded or holey in time) and, in the
    first sequence, a few masked positions inside one frame (Masking masks per position)."""
    data = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    steps = {"right": [(0, [3, 4]), (2, [1, 2, 3, 4])], "left": [(0, [0, 1]), (2, [0, 1, 2, 3])],
             "holey": [(0, [1, 3]), (2, [0, 2, 4])]}[padding]
    for row, masked in steps:
        data[row, masked] = 0.0
    data[1, 2, 1:3, 2:5] = 0.0
    return data


MASKED_CONV_LSTM = {
    "sequences": lambda k: k.layers.ConvLSTM2D(3, 3, padding="same", return_sequences=True),
    "last_state": lambda k: k.layers.ConvLSTM2D(3, (3, 2), padding="same", return_state=True),
    "backwards_sequences": lambda k: k.layers.ConvLSTM2D(2, 3, padding="same", go_backwards=True,
                                                         return_sequences=True, recurrent_activation="hard_sigmoid"),
    "zero_output_for_mask": lambda k: k.layers.ConvLSTM2D(3, 2, padding="same", return_sequences=True,
                                                          zero_output_for_mask=True),
}


@pytest.mark.parametrize("padding", ["right", "left", "holey"])
@pytest.mark.parametrize("name", list(MASKED_CONV_LSTM))
def test_conv_lstm2d_after_masking(keras, tmp_path, name, padding):
    """Masking on (batch, steps, h, w, c) gives a per-position mask (batch, steps, h, w):
    Keras carries each position's states over its masked steps."""
    inp = keras.Input((5, 7, 6, 2))
    out = MASKED_CONV_LSTM[name](keras)(keras.layers.Masking()(inp))
    model = keras.Model(inp, list(out) if isinstance(out, (list, tuple)) else out)
    result = convert_and_compare(model, tmp_path, inputs=[_frames(padding)])
    assert ".permute(" not in result.source_code  # the mask is computed on the channels-first frames


@pytest.mark.parametrize("rank", [1, 3])
def test_conv_lstm_1d_3d_after_masking(keras, tmp_path, rank):
    spatial = (7,) if rank == 1 else (5, 4, 3)
    inp = keras.Input((5,) + spatial + (2,))
    layer = getattr(keras.layers, f"ConvLSTM{rank}D")(3, 3, padding="same", return_sequences=True, go_backwards=True)
    data = np.random.default_rng(3).standard_normal((3, 5) + spatial + (2,)).astype(np.float32)
    data[0, 3:] = 0.0  # right-padded
    data[1, :2] = 0.0  # left-padded
    data[2, 1, 1:3] = 0.0  # a hole inside one frame
    convert_and_compare(keras.Model(inp, layer(keras.layers.Masking()(inp))), tmp_path, inputs=[data])


def test_conv_lstm2d_explicit_step_mask(keras, tmp_path):
    """A (batch, steps) mask passed as mask= (valid padding: the output is smaller)."""
    inp, mask = keras.Input((5, 7, 6, 2)), keras.Input((5,), dtype="bool")
    out = keras.layers.ConvLSTM2D(3, 3, return_sequences=True)(inp, mask=mask)
    steps = np.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 0, 1, 1, 0]], dtype=bool)
    convert_and_compare(keras.Model([inp, mask], out), tmp_path, inputs=[_frames("holey"), steps])


@pytest.mark.parametrize("case", ["1d", "2d", "2d_after_masking"])
def test_conv_lstm_initial_states(keras, tmp_path, case):
    """Initial states as inputs. After Masking, Keras 3 runs the recurrence unmasked (a call
    with two tensor arguments gets no implicit mask)."""
    shape, spatial = ((5, 9, 2), (7,)) if case == "1d" else ((5, 9, 8, 2), (7, 6))
    inp = keras.Input(shape)
    h, c = keras.Input(spatial + (3,)), keras.Input(spatial + (3,))
    layer = getattr(keras.layers, f"ConvLSTM{case[0]}D")(3, 3, return_sequences=True, return_state=True)
    out = layer(keras.layers.Masking()(inp) if "masking" in case else inp, initial_state=[h, c])
    rng = np.random.default_rng(1)
    data = [rng.standard_normal((3,) + s).astype(np.float32) for s in (shape, spatial + (3,), spatial + (3,))]
    if "masking" in case:
        data[0][0, 3:] = 0.0
    convert_and_compare(keras.Model([inp, h, c], list(out)), tmp_path, inputs=data)


def test_conv_lstm2d_stateful_carries_state_and_resets(keras, tmp_path):
    inp = keras.Input(batch_shape=(2, 3, 7, 6, 2))
    layer = keras.layers.ConvLSTM2D(3, 3, padding="same", stateful=True, return_sequences=True, name="conv_lstm")
    model = keras.Model(inp, layer(inp))
    perturb_weights(model)
    path = tmp_path / "stateful_conv_lstm.keras"
    model.save(path)
    module = tf2torch.convert(str(path)).module
    rng = np.random.default_rng(6)
    chunks = [rng.standard_normal((2, 3, 7, 6, 2)).astype(np.float32) for _ in range(3)]

    def torch_out(chunk):  # the module takes and gives channels-first frames
        out = module(torch.from_numpy(chunk).permute(0, 4, 1, 2, 3))
        return out.permute(0, 2, 3, 4, 1).detach().numpy()

    for chunk in chunks:
        expected = np.asarray(model(chunk))
        np.testing.assert_allclose(torch_out(chunk), expected, atol=1e-5 * np.abs(expected).max())
    layer.reset_states()
    module.reset_states()
    expected = np.asarray(model(chunks[1]))
    np.testing.assert_allclose(torch_out(chunks[1]), expected, atol=1e-5 * np.abs(expected).max())
    assert not any(s.requires_grad for s in module.conv_lstm.states)


@pytest.mark.parametrize("rates", [(0.3, 0.0), (0.0, 0.4), (0.25, 0.35)], ids=["dropout", "recurrent", "both"])
def test_conv_lstm2d_dropout_in_training_with_the_same_masks(keras, tmp_path, rates):
    """Training mode with Keras' own dropout masks injected on both sides: one mask per gate
    for the inputs and for the states, shared by every step. This proves where and how the
    masks apply (exact numbers); that torch draws them with the right rate is checked on the
    keep fraction of the masks it draws."""
    import tensorflow as tf

    dropout, recurrent_dropout = rates
    inp = keras.Input((4, 7, 6, 2))
    layer = keras.layers.ConvLSTM2D(3, 3, strides=(1, 2), padding="same", dropout=dropout,
                                    recurrent_dropout=recurrent_dropout, return_sequences=True, name="conv_lstm")
    model = keras.Model(inp, layer(inp))
    result = convert_and_compare(model, tmp_path)  # eval: exact, dropout off
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 7, 6, 2)).astype(np.float32)

    def draw(shape, rate):  # Keras layout: 4 gates x (batch, *spatial, channels)
        return [(rng.random(shape) >= rate).astype(np.float32) / (1 - rate) for _ in range(4)]

    input_masks = draw((3, 7, 6, 2), dropout) if dropout else None
    state_masks = draw((3, 7, 3, 3), recurrent_dropout) if recurrent_dropout else None
    if input_masks:
        layer.cell._dropout_mask = [tf.constant(m) for m in input_masks]
    if state_masks:
        layer.cell._recurrent_dropout_mask = [tf.constant(m) for m in state_masks]
    expected = np.asarray(model(x, training=True))
    module = result.module.train()
    conv_lstm = module.conv_lstm
    drawn = []

    def gate_masks(like, rate):
        masks = input_masks if rate == dropout and input_masks and not drawn else state_masks
        drawn.append(rate)
        return torch.from_numpy(np.stack(masks)).permute(0, 1, 4, 2, 3)  # channels-first

    conv_lstm.gate_masks = gate_masks
    with torch.no_grad():
        got = module(torch.from_numpy(x).permute(0, 4, 1, 2, 3)).permute(0, 2, 3, 4, 1).numpy()
    del conv_lstm.gate_masks
    assert drawn == [r for r in rates if r]
    np.testing.assert_allclose(got, expected, atol=1e-5 * np.abs(expected).max())
    eval_out = np.asarray(model(x, training=False))
    assert np.abs(got - eval_out).max() > 1e-3  # the masks changed the output
    drawn_masks = conv_lstm.gate_masks(torch.ones(200, 3, 7, 6), 0.3)  # the module's own draws
    assert drawn_masks.shape == (4, 200, 3, 7, 6)
    assert abs((drawn_masks == 0).float().mean().item() - 0.3) < 0.01
    assert torch.allclose(drawn_masks[drawn_masks != 0], torch.tensor(1 / 0.7))


def test_keras2_conv_lstm2d_after_masking(tmp_path):
    import tf_keras

    inp = tf_keras.Input((5, 7, 6, 2))
    x = tf_keras.layers.Masking()(inp)
    out = tf_keras.layers.ConvLSTM2D(3, 3, padding="same", return_sequences=True)(x)
    convert_and_compare(tf_keras.Model(inp, out), tmp_path, suffix=".h5", inputs=[_frames("holey")])


def test_per_position_mask_on_a_shrinking_conv_lstm_is_unsupported(keras, tmp_path):
    """Keras itself fails to apply a Masking mask when 'valid' padding shrinks the frames."""
    inp = keras.Input((3, 6, 6, 2))
    out = keras.layers.ConvLSTM2D(2, 3)(keras.layers.Masking()(inp))
    path = tmp_path / "m.keras"
    keras.Model(inp, out).save(path)
    with pytest.raises(tf2torch.ConversionError, match="per-position mask"):
        tf2torch.convert(str(path))


def _stacked_cells(k):
    return k.layers.StackedRNNCells([
        k.layers.LSTMCell(5, recurrent_activation="hard_sigmoid"), k.layers.GRUCell(4, reset_after=False),
        k.layers.SimpleRNNCell(3),
    ])


STACKED_STATES = {
    # (return_sequences, initial states as inputs, masked, go_backwards)
    "return_state_last": (False, False, False, False),
    "return_state_sequences_initial": (True, True, False, False),
    "initial_states_last": (False, True, False, False),
    "holey_mask_return_state": (True, False, True, False),
    "go_backwards_holey_mask": (True, False, True, True),
    "go_backwards_initial_last": (False, True, False, True),
    # Keras 3 ignores an implicit mask when initial states are passed (two tensor arguments).
    "holey_mask_ignored_with_initial_states": (True, True, True, False),
}


@pytest.mark.parametrize("name", list(STACKED_STATES))
def test_stacked_cells_states(keras, tmp_path, name):
    """RNN(StackedRNNCells): Keras' states are a list per cell ([h, c] for LSTMCell, h for the
    others): `initial_state=[[h1, c1], h2, h3]`, return_state gives `out, [h1, c1], h2, h3`."""
    sequences, with_initial, masked, backwards = STACKED_STATES[name]
    rng = np.random.default_rng(4)
    if masked:
        inp = keras.Input((STEPS,), dtype="int32")
        x = keras.layers.Embedding(13, FEATURES, mask_zero=True)(inp)
        data = [rng.integers(1, 13, (3, STEPS)) * (rng.random((3, STEPS)) > 0.35)]
    else:
        inp = keras.Input((STEPS, FEATURES))
        x = inp
        data = [rng.standard_normal((3, STEPS, FEATURES)).astype(np.float32)]
    h1, c1, h2, h3 = keras.Input((5,)), keras.Input((5,)), keras.Input((4,)), keras.Input((3,))
    layer = keras.layers.RNN(_stacked_cells(keras), return_state=True, return_sequences=sequences, go_backwards=backwards)
    out = layer(x, initial_state=[[h1, c1], h2, h3]) if with_initial else layer(x)
    inputs = [inp, h1, c1, h2, h3] if with_initial else [inp]
    if with_initial:
        data += [rng.standard_normal((3, n)).astype(np.float32) for n in (5, 5, 4, 3)]
    convert_and_compare(keras.Model(inputs, keras.tree.flatten(out)), tmp_path, inputs=data)


def test_keras2_stacked_cells_states(tmp_path):
    import tf_keras

    inp = tf_keras.Input((STEPS, FEATURES))
    h1, c1, h2 = tf_keras.Input((4,)), tf_keras.Input((4,)), tf_keras.Input((3,))
    cells = tf_keras.layers.StackedRNNCells([tf_keras.layers.LSTMCell(4), tf_keras.layers.GRUCell(3)])
    out = tf_keras.layers.RNN(cells, return_state=True)(inp, initial_state=[[h1, c1], h2])
    outputs = [out[0], *out[1], out[2]]  # out, [h1, c1], h2
    convert_and_compare(tf_keras.Model([inp, h1, c1, h2], outputs), tmp_path, suffix=".h5")


def test_stacked_cells_stateful_carries_state_and_resets(keras, tmp_path):
    inp = keras.Input(batch_shape=(2, 4, FEATURES))
    layer = keras.layers.RNN(_stacked_cells(keras), stateful=True, return_sequences=True, name="rnn")
    model = keras.Model(inp, layer(inp))
    perturb_weights(model)
    path = tmp_path / "stateful_stacked.keras"
    model.save(path)
    module = tf2torch.convert(str(path)).module
    rng = np.random.default_rng(5)
    chunks = [rng.standard_normal((2, 4, FEATURES)).astype(np.float32) for _ in range(3)]
    for chunk in chunks:  # each chunk continues from the states the previous one left
        expected = np.asarray(model(chunk))
        np.testing.assert_allclose(module(torch.from_numpy(chunk)).detach().numpy(), expected,
                                   atol=1e-5 * np.abs(expected).max())
    for state in keras.tree.flatten(layer.states):  # RNN.reset_states() fails on nested states (Keras 3.15)
        state.assign(np.zeros(state.shape, np.float32))
    module.reset_states()
    expected = np.asarray(model(chunks[1]))
    np.testing.assert_allclose(module(torch.from_numpy(chunks[1])).detach().numpy(), expected,
                               atol=1e-5 * np.abs(expected).max())


def test_conv_lstm_channels_first_is_unsupported(keras, tmp_path):
    inp = keras.Input((3, 2, 6, 6))
    out = keras.layers.ConvLSTM2D(2, 3, data_format="channels_first")(inp)
    path = tmp_path / "m.keras"
    keras.Model(inp, out).save(path)
    with pytest.raises(tf2torch.ConversionError, match="channels_first"):
        tf2torch.convert(str(path))


# -- Bidirectional GRU with a Keras mask: one packed nn.GRU(bidirectional=True) --------------

BIGRU_STEPS, BIGRU_VOCAB = 13, 31
BIGRU_PADDINGS = {  # batch 4, an odd length; every padding has a full-length row
    "right": [[5, 3, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], list(range(1, 14)), [7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
              [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 0, 0]],
    "holey": [[0, 3, 8, 0, 9, 0, 0, 1, 0, 0, 0, 0, 4], list(range(1, 14)), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7],
              [2, 4, 0, 8, 10, 12, 14, 16, 18, 20, 22, 0, 0]],
    "none": [list(range(1, 14)), list(range(13, 0, -1)), list(range(5, 18)), list(range(2, 28, 2))],
}


def _bigru_tagger(keras, reset_after: bool, mask: bool = True):
    inp = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(BIGRU_VOCAB, 6, mask_zero=mask)(inp)
    gru = keras.layers.GRU(5, reset_after=reset_after, return_sequences=True)
    x = keras.layers.Bidirectional(gru, name="bigru")(x)
    return keras.Model(inp, keras.layers.Dense(3)(x))


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("padding", [*BIGRU_PADDINGS, "unmasked"])
@pytest.mark.parametrize("reset_after", [True, False], ids=["reset_after", "reset_before"])
def test_masked_bidirectional_gru_matches_tensorflow(keras, tmp_path, reset_after, padding, training):
    """The BiGRU tagger shape: right-padded ids run packed sequences, holey ones the step loop,
    unpadded ids (mask all True) packed sequences of full length; without mask_zero (zeros
    are ordinary ids) a plain nn.GRU(bidirectional=True); reset_after=False is the KerasGRU
    loop."""
    model = _bigru_tagger(keras, reset_after, mask=padding != "unmasked")
    ids = np.asarray(BIGRU_PADDINGS["right" if padding == "unmasked" else padding], dtype=np.int32)
    result = convert_and_compare(model, tmp_path, inputs=[ids], training=training)
    if reset_after:
        module = "nn.GRU" if padding == "unmasked" else "MaskedGRU"
        expected = f"{module}(6, 5, batch_first=True, bidirectional=True"
        assert expected in result.source_code, result.source_code


def test_masked_bidirectional_gru_final_states_with_initial_states(tmp_path):
    """tf.keras (Keras 3 drops the mask of a call with initial_state=): both directions'
    final states come from each sequence's last real step."""
    import tf_keras

    inp = tf_keras.Input((None,), dtype="int32")
    states_in = [tf_keras.Input((5,)), tf_keras.Input((5,))]
    x = tf_keras.layers.Embedding(BIGRU_VOCAB, 6, mask_zero=True)(inp)
    gru = tf_keras.layers.GRU(5, return_state=True)
    out, h_fwd, h_bwd = tf_keras.layers.Bidirectional(gru, merge_mode="sum")(x, initial_state=states_in)
    rng = np.random.default_rng(3)
    states = [rng.standard_normal((4, 5)).astype(np.float32) for _ in states_in]
    ids = np.asarray(BIGRU_PADDINGS["right"], dtype=np.int32)
    model = tf_keras.Model([inp, *states_in], [out, h_fwd, h_bwd])
    convert_and_compare(model, tmp_path, suffix=".h5", inputs=[ids, *states])


def test_masked_bidirectional_gru_gradients_match_gradient_tape(keras, tmp_path):
    """Training through the packed kernel: the gradients of both directions' kernels equal
    TensorFlow's (right-padded ids, so the packed path runs)."""
    import tensorflow as tf

    model = _bigru_tagger(keras, reset_after=True)
    ids = np.asarray(BIGRU_PADDINGS["right"], dtype=np.int32)
    result = convert_and_compare(model, tmp_path, inputs=[ids])
    weight = np.random.default_rng(2).standard_normal((4, BIGRU_STEPS, 3)).astype(np.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(ids, training=True) * weight)
    layer = model.get_layer("bigru")
    kernels = [layer.forward_layer.cell.kernel, layer.backward_layer.cell.kernel]
    keras_grads = tape.gradient(loss, kernels)

    module = result.module.train()
    loss = (module(torch.from_numpy(ids)) * torch.from_numpy(weight)).sum()
    loss.backward()
    params = dict(module.named_parameters())
    for suffix, keras_grad in zip(["weight_ih_l0", "weight_ih_l0_reverse"], keras_grads, strict=True):
        z, r, h = np.split(np.asarray(keras_grad), 3, axis=-1)  # Keras gates z, r, h -> torch r, z, n
        expected = np.concatenate([r, z, h], axis=-1).T
        got = next(p.grad for n, p in params.items() if n.endswith("bigru." + suffix)).numpy()
        assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max(), suffix

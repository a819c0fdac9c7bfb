"""Keras masks (Embedding(mask_zero), Masking) through every mask-aware layer, against TF,
with right-padded, left-padded and holey masks."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import convert_and_compare

VOCAB, STEPS = 23, 11
PADDINGS = {
    "right": [[3, 4, 5, 6, 0, 0, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]],
    "left": [[0, 0, 0, 0, 0, 0, 0, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]],
    "holey": [[3, 0, 5, 0, 0, 6, 7, 0, 8, 0, 0], [0, 2, 3, 0, 5, 6, 0, 8, 9, 10, 0], [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]],
}


def _ids(padding: str) -> np.ndarray:
    return np.asarray(PADDINGS[padding], dtype=np.int32)


def _embedded(keras, layer, dim=6):
    inp = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, dim, mask_zero=True)(inp)
    return keras.Model(inp, layer(x))


MASKED_LAYERS = {
    "lstm_sequences": lambda k: k.layers.LSTM(5, return_sequences=True),
    "lstm_last": lambda k: k.layers.LSTM(5),
    "lstm_return_state": lambda k: k.layers.LSTM(5, return_state=True, return_sequences=True),
    "gru_last": lambda k: k.layers.GRU(5, use_bias=False),
    "gru_reset_before_state": lambda k: k.layers.GRU(5, reset_after=False, return_state=True),
    "simple_rnn_backwards": lambda k: k.layers.SimpleRNN(5, go_backwards=True, return_sequences=True),
    "bidirectional_sequences": lambda k: k.layers.Bidirectional(k.layers.LSTM(4, return_sequences=True)),
    "bidirectional_last": lambda k: k.layers.Bidirectional(k.layers.GRU(4), merge_mode="sum"),
    "bidirectional_lstm_state": lambda k: k.layers.Bidirectional(
        k.layers.LSTM(3, return_state=True, return_sequences=True), merge_mode="mul"
    ),
    "bidirectional_rnn_last_none": lambda k: k.layers.Bidirectional(k.layers.SimpleRNN(3), merge_mode=None),
    "global_average_pooling": lambda k: k.layers.GlobalAveragePooling1D(),
}


@pytest.mark.parametrize("padding", list(PADDINGS))
@pytest.mark.parametrize("name", list(MASKED_LAYERS))
def test_masked_layer_matches_tensorflow(keras, tmp_path, name, padding):
    model = _embedded(keras, MASKED_LAYERS[name](keras))
    convert_and_compare(model, tmp_path, inputs=[_ids(padding)])


@pytest.mark.parametrize("padding", list(PADDINGS))
def test_mask_flows_through_dense_dropout_and_stacked_rnns(keras, tmp_path, padding):
    def stack(x):
        x = keras.layers.Dense(7, activation="tanh")(x)
        x = keras.layers.Dropout(0.2)(x)
        x = keras.layers.GRU(6, return_sequences=True)(x)
        x = keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True), merge_mode="ave")(x)
        return keras.layers.GlobalAveragePooling1D()(x)

    convert_and_compare(_embedded(keras, stack), tmp_path, inputs=[_ids(padding)])


@pytest.mark.parametrize("padding", list(PADDINGS))
def test_masking_layer_zeroes_and_masks(keras, tmp_path, padding):
    inp = keras.Input((STEPS, 4))
    x = keras.layers.Masking(mask_value=0.5)(inp)
    seq = keras.layers.LSTM(5, return_sequences=True)(x)
    model = keras.Model(inp, [x, seq])
    data = np.random.default_rng(0).standard_normal((3, STEPS, 4)).astype(np.float32)
    data[np.asarray(PADDINGS[padding]) == 0] = 0.5
    convert_and_compare(model, tmp_path, inputs=[data])


@pytest.mark.parametrize("merge", ["Add", "Concatenate"])
def test_merged_masks(keras, tmp_path, merge):
    a_in = keras.Input((None,), dtype="int32")
    b_in = keras.Input((None,), dtype="int32")
    a = keras.layers.Embedding(VOCAB, 4, mask_zero=True)(a_in)
    b = keras.layers.Embedding(VOCAB, 4, mask_zero=True)(b_in)
    x = getattr(keras.layers, merge)()([a, b])
    out = keras.layers.LSTM(5)(x)
    model = keras.Model([a_in, b_in], out)
    convert_and_compare(model, tmp_path, inputs=[_ids("right"), _ids("holey")])


def test_softmax_with_explicit_mask(keras, tmp_path):
    scores = keras.Input((5, 7))
    mask = keras.Input((5, 7), dtype="bool")
    out = keras.layers.Softmax(axis=-1)(scores, mask=mask)
    model = keras.Model([scores, mask], out)
    rng = np.random.default_rng(2)
    mask_values = rng.random((3, 5, 7)) > 0.4
    mask_values[0, 0] = False  # a fully masked row: Keras 3 gives zeros
    convert_and_compare(model, tmp_path, inputs=[rng.standard_normal((3, 5, 7)).astype(np.float32), mask_values])


@pytest.mark.parametrize("padding", list(PADDINGS))
def test_keras2_implicit_mask_propagation(tmp_path, padding):
    """tf_keras writes no mask tensors into the config: the importer propagates them."""
    import tf_keras

    inp = tf_keras.Input((None,), dtype="int32")
    x = tf_keras.layers.Embedding(VOCAB, 6, mask_zero=True)(inp)
    x = tf_keras.layers.Dense(5)(x)
    x = tf_keras.layers.Bidirectional(tf_keras.layers.GRU(4, return_sequences=True))(x)
    x = tf_keras.layers.LSTM(3, return_sequences=True, recurrent_activation="hard_sigmoid")(x)
    x = tf_keras.layers.GlobalAveragePooling1D()(x)
    model = tf_keras.Model(inp, x)
    convert_and_compare(model, tmp_path, suffix=".h5", inputs=[_ids(padding)])


def test_keras3_sequential_implicit_mask(keras, tmp_path):
    model = keras.Sequential([
        keras.Input((None,), dtype="int32"),
        keras.layers.Embedding(VOCAB, 6, mask_zero=True),
        keras.layers.LSTM(5, return_sequences=True),
        keras.layers.GlobalAveragePooling1D(),
    ])
    convert_and_compare(model, tmp_path, inputs=[_ids("holey")])


def test_mask_is_computed_once_and_not_padding_idx(keras, tmp_path):
    result = convert_and_compare(_embedded(keras, keras.layers.LSTM(4)), tmp_path, inputs=[_ids("left")])
    assert "padding_idx" not in result.source_code
    assert "!= 0" in result.source_code


EXPORTED = {
    "lstm_sequences": lambda k: k.layers.LSTM(5, return_sequences=True),
    "lstm_final_states": lambda k: k.layers.LSTM(5, return_state=True),
    "bidirectional_gru_last": lambda k: k.layers.Bidirectional(k.layers.GRU(4)),
}


@pytest.mark.parametrize("name", list(EXPORTED))
def test_torch_export_of_masked_rnn_with_dynamic_batch(keras, tmp_path, name):
    """torch.export.export works on masked RNNs (the traced graph runs the exact step loop,
    with no branch on the mask's values); the exported program, run on another batch size,
    matches TensorFlow on right-, left- and holey-padded rows at once."""
    import torch

    layer = EXPORTED[name](keras)
    inp = keras.Input((STEPS,), dtype="int32")
    out = layer(keras.layers.Embedding(VOCAB, 6, mask_zero=True)(inp))
    model = keras.Model(inp, list(out) if isinstance(out, (list, tuple)) else out)
    result = convert_and_compare(model, tmp_path, inputs=[_ids("right")])
    batch = torch.export.Dim("batch", min=2, max=64)
    example = torch.from_numpy(_ids("left").astype(np.int64))
    program = torch.export.export(result.module.eval(), (example,), dynamic_shapes=({0: batch},))
    ids = np.concatenate([_ids("right"), _ids("left"), _ids("holey")])  # batch 9, not the traced 3
    got = program.module()(torch.from_numpy(ids.astype(np.int64)))
    expected = model(ids)
    got = got if isinstance(got, (list, tuple)) else [got]
    expected = expected if isinstance(expected, (list, tuple)) else [expected]
    for g, e in zip(got, expected, strict=True):
        e = np.asarray(e)
        np.testing.assert_allclose(g.detach().numpy(), e, rtol=0, atol=1e-5 * np.abs(e).max())


@pytest.mark.parametrize("padding", ["left", "holey"])
@pytest.mark.parametrize("case", ["keras3", "keras2", "keras3_bidirectional"])
def test_masked_rnn_with_initial_states(keras, tmp_path, case, padding):
    """Keras 3 fills `mask` from the input only for calls with one tensor argument: with
    initial_state= the recurrence runs unmasked, yet the mask still reaches the pooling after
    it. tf_keras uses the mask."""
    if case == "keras2":
        import tf_keras as keras
    inp = keras.Input((STEPS,), dtype="int32")
    n_states = 4 if "bidirectional" in case else 2
    states_in = [keras.Input((5,)) for _ in range(n_states)]
    x = keras.layers.Embedding(VOCAB, 6, mask_zero=True)(inp)
    lstm = keras.layers.LSTM(5, return_sequences=True)
    x = (keras.layers.Bidirectional(lstm) if "bidirectional" in case else lstm)(x, initial_state=states_in)
    out = keras.layers.GlobalAveragePooling1D()(x)
    rng = np.random.default_rng(8)
    states = [rng.standard_normal((3, 5)).astype(np.float32) for _ in range(n_states)]
    convert_and_compare(keras.Model([inp, *states_in], out), tmp_path, suffix=".h5" if case == "keras2" else ".keras",
                        inputs=[_ids(padding), *states])

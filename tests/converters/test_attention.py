"""Attention and transformer parts against TensorFlow: MultiHeadAttention, GroupedQueryAttention,
Attention, AdditiveAttention, EinsumDense, RMS/Unit/LayerNormalization, RepeatVector,
positional embeddings, and 1D conv/pool/upsample/crop layers on (batch, steps, channels)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tf2torch
from conftest import convert_and_compare
from tf2torch.errors import UnsupportedFeature

RNG = np.random.default_rng(7)


def _x(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _bool_mask(batch, t, s, full_row=True):
    mask = np.random.default_rng(3).random((batch, t, s)) > 0.4
    if full_row:
        mask[0, 1] = False  # one fully masked query row: Keras' two semantics differ there
    else:
        mask[:, :, 0] = True
    return mask


# -- MultiHeadAttention ------------------------------------------------------------------

MHA_CASES = {
    "cross_key_value_dims": ({"num_heads": 3, "key_dim": 4, "value_dim": 5}, (5, 8), (7, 6), {}),
    "output_shape_int": ({"num_heads": 2, "key_dim": 3, "output_shape": 11}, (5, 8), (5, 8), {}),
    "output_shape_2d": ({"num_heads": 2, "key_dim": 3, "output_shape": (2, 3)}, (5, 8), (6, 8), {}),
    "no_bias": ({"num_heads": 2, "key_dim": 7, "use_bias": False}, (5, 8), (9, 4), {}),
    "causal": ({"num_heads": 2, "key_dim": 3}, (7, 8), (7, 8), {"use_causal_mask": True}),
    "causal_with_dropout_eval": ({"num_heads": 2, "key_dim": 3, "dropout": 0.3}, (7, 8), (7, 8), {"use_causal_mask": True}),
    "attention_axes_2d": ({"num_heads": 2, "key_dim": 3, "attention_axes": (1, 2)}, (4, 5, 6), (4, 5, 6), {}),
    "attention_axes_last": ({"num_heads": 2, "key_dim": 3, "attention_axes": (2,)}, (4, 5, 6), (4, 3, 6), {}),
}


@pytest.mark.parametrize("case", list(MHA_CASES), ids=str)
def test_multi_head_attention(keras, tmp_path, case):
    kwargs, q_shape, v_shape, call = MHA_CASES[case]
    q = keras.Input(q_shape)
    v = keras.Input(v_shape)
    y = keras.layers.MultiHeadAttention(**kwargs, name="mha")(q, v, **call)
    result = convert_and_compare(keras.Model([q, v], y), tmp_path)
    assert "self.mha = MultiHeadAttention(" in result.source_code


def test_multi_head_attention_separate_key(keras, tmp_path):
    q, v, k = keras.Input((5, 8)), keras.Input((6, 4)), keras.Input((6, 3))
    y = keras.layers.MultiHeadAttention(2, 3, name="mha")(q, v, key=k)
    convert_and_compare(keras.Model([q, v, k], y), tmp_path)


@pytest.mark.parametrize("dropout", [0.0, 0.25], ids=["sdpa_path", "softmax_path"])
@pytest.mark.parametrize("scores", [False, True], ids=["output", "with_scores"])
def test_multi_head_attention_mask_with_fully_masked_row(keras, tmp_path, dropout, scores):
    q = keras.Input((5, 8))
    m = keras.Input((5, 5), dtype="bool")
    out = keras.layers.MultiHeadAttention(2, 3, dropout=dropout, name="mha")(
        q, q, attention_mask=m, return_attention_scores=scores
    )
    model = keras.Model([q, m], list(out) if scores else out)
    convert_and_compare(model, tmp_path, inputs=[_x(3, 5, 8), _bool_mask(3, 5, 5)])


def test_multi_head_attention_mask_and_causal(keras, tmp_path):
    q = keras.Input((6, 8))
    m = keras.Input((6, 6), dtype="bool")
    y = keras.layers.MultiHeadAttention(2, 3, name="mha")(q, q, attention_mask=m, use_causal_mask=True)
    convert_and_compare(keras.Model([q, m], y), tmp_path, inputs=[_x(3, 6, 8), _bool_mask(3, 6, 6, full_row=False)])


@pytest.mark.parametrize("padding", ["right", "left", "holey"])
def test_multi_head_attention_implicit_embedding_mask(keras, tmp_path, padding):
    ids_in = keras.Input((9,), dtype="int32")
    x = keras.layers.Embedding(30, 8, mask_zero=True)(ids_in)
    y = keras.layers.MultiHeadAttention(2, 4, name="mha")(x, x)
    y = keras.layers.Dense(3)(y)
    ids = np.random.default_rng(1).integers(1, 30, (4, 9)).astype("int32")
    if padding == "right":
        ids[1, 6:] = 0
        ids[2, 2:] = 0
    elif padding == "left":
        ids[1, :4] = 0
        ids[3, :7] = 0
    else:
        ids[0, [1, 4, 5]] = 0
        ids[2, ::2] = 0
    convert_and_compare(keras.Model(ids_in, y), tmp_path, inputs=[ids])


def test_multi_head_attention_keyword_call_keeps_implicit_masks(keras, tmp_path):
    ids_q, ids_v = keras.Input((6,), dtype="int32"), keras.Input((8,), dtype="int32")
    q = keras.layers.Embedding(30, 8, mask_zero=True)(ids_q)
    v = keras.layers.Embedding(30, 6, mask_zero=True)(ids_v)
    y = keras.layers.MultiHeadAttention(2, 4, dropout=0.1, name="mha")(query=q, value=v)
    rng = np.random.default_rng(8)
    a, c = rng.integers(1, 30, (3, 6)).astype("int32"), rng.integers(1, 30, (3, 8)).astype("int32")
    a[0, 4:] = 0
    c[1, :5] = 0
    c[2, 1::2] = 0
    result = convert_and_compare(keras.Model([ids_q, ids_v], y), tmp_path, inputs=[a, c])
    assert "query_mask=" in result.source_code and "value_mask=" in result.source_code


def test_multi_head_attention_keras2_h5(tmp_path):
    import tf_keras

    q, v = tf_keras.Input((5, 8)), tf_keras.Input((7, 6))
    m = tf_keras.Input((5, 7), dtype="bool")
    y = tf_keras.layers.MultiHeadAttention(3, 4, value_dim=2, output_shape=(5,), name="mha")(q, v, attention_mask=m)
    model = tf_keras.Model([q, v, m], y)
    mask = _bool_mask(3, 5, 7)
    convert_and_compare(model, tmp_path, suffix=".h5", inputs=[_x(3, 5, 8), _x(3, 7, 6), mask])


def test_multi_head_attention_training_without_dropout_matches(keras, tmp_path):
    q = keras.Input((5, 8))
    y = keras.layers.MultiHeadAttention(2, 3, name="mha")(q, q)
    convert_and_compare(keras.Model(q, y), tmp_path, training=True)


def test_multi_head_attention_training_dropout_is_unbiased(keras, tmp_path):
    """Dropout on the probabilities: averaged over many training passes the output tends to
    the eval output (the output projection is linear); a single pass differs from it."""
    q = keras.Input((4, 6))
    y = keras.layers.MultiHeadAttention(2, 3, dropout=0.3, name="mha")(q, q)
    model = keras.Model(q, y)
    result = convert_and_compare(model, tmp_path)
    x = _x(2, 4, 6)
    expected = np.asarray(model(x, training=False))
    module = result.module.train()
    torch.manual_seed(0)
    with torch.no_grad():  # 3000 copies of the batch in one pass: independent dropout masks
        runs = module(torch.from_numpy(np.tile(x, (3000, 1, 1)))).unflatten(0, (3000, 2)).numpy()
    module.eval()
    assert np.abs(runs[0] - expected).max() > 1e-3
    scale = np.abs(expected).max()
    assert np.abs(runs.mean(0) - expected).max() < 0.05 * scale


GATED_MHA = {
    # (layer kwargs, query shape, value shape, call kwargs, file suffix)
    "value_dim_cross": ({"num_heads": 3, "key_dim": 4, "value_dim": 5}, (5, 8), (7, 6), {}, ".keras"),
    "no_bias_output_shape": ({"num_heads": 2, "key_dim": 3, "use_bias": False, "output_shape": 7}, (5, 8), (6, 8), {}, ".keras"),
    "attention_axes_2d": ({"num_heads": 2, "key_dim": 3, "attention_axes": (1, 2)}, (4, 5, 6), (4, 5, 6), {}, ".keras"),
    "causal_with_scores": ({"num_heads": 2, "key_dim": 3, "value_dim": 4}, (7, 8), (7, 8),
                           {"use_causal_mask": True, "return_attention_scores": True}, ".keras"),
    "legacy_h5": ({"num_heads": 3, "key_dim": 2, "value_dim": 5}, (5, 8), (6, 4), {}, ".h5"),
}


@pytest.mark.parametrize("case", list(GATED_MHA), ids=str)
def test_multi_head_attention_use_gate(keras, tmp_path, case):
    """use_gate=True: sigmoid(EinsumDense(query)) multiplies each head's output before the
    output projection (Keras 3.15 multi_head_attention.py)."""
    kwargs, q_shape, v_shape, call, suffix = GATED_MHA[case]
    q, v = keras.Input(q_shape), keras.Input(v_shape)
    y = keras.layers.MultiHeadAttention(**kwargs, use_gate=True, name="mha")(q, v, **call)
    result = convert_and_compare(keras.Model([q, v], list(y) if isinstance(y, tuple) else y), tmp_path, suffix=suffix)
    assert "use_gate=True" in result.source_code


@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "no_bias"])
def test_grouped_query_attention_use_gate(keras, tmp_path, use_bias):
    q = keras.Input((6, 10))
    y = keras.layers.GroupQueryAttention(3, 6, 2, use_gate=True, use_bias=use_bias, name="gqa")(q, q, use_causal_mask=True)
    result = convert_and_compare(keras.Model(q, y), tmp_path)
    assert "use_gate=True" in result.source_code


def test_multi_head_attention_gate_in_training_mode(keras, tmp_path):
    """Without dropout, training mode gives the same numbers as TF's training mode."""
    q = keras.Input((5, 8))
    y = keras.layers.MultiHeadAttention(2, 3, use_gate=True, name="mha")(q, q)
    convert_and_compare(keras.Model(q, y), tmp_path, training=True)


def test_grouped_query_attention_with_mask(keras, tmp_path):
    q = keras.Input((6, 10))
    m = keras.Input((6, 6), dtype="bool")
    y = keras.layers.GroupQueryAttention(head_dim=4, num_query_heads=6, num_key_value_heads=3)(q, q, attention_mask=m)
    convert_and_compare(keras.Model([q, m], y), tmp_path, inputs=[_x(3, 6, 10), _bool_mask(3, 6, 6)])


@pytest.mark.parametrize("case", ["plain", "causal", "dropout_eval"])
def test_grouped_query_attention(keras, tmp_path, case):
    q = keras.Input((6, 10))
    v = keras.Input((7, 10))
    kwargs = {"dropout": 0.2} if case == "dropout_eval" else {}
    layer = keras.layers.GroupQueryAttention(head_dim=3, num_query_heads=4, num_key_value_heads=2, **kwargs)
    if case == "causal":
        y = layer(q, q, use_causal_mask=True)
        model = keras.Model(q, y)
    else:
        model = keras.Model([q, v], layer(q, v))
    convert_and_compare(model, tmp_path)


# -- Attention, AdditiveAttention --------------------------------------------------------

DOT_CASES = {
    "dot": {},
    "dot_scaled": {"use_scale": True},
    "concat": {"score_mode": "concat"},
    "concat_scaled": {"score_mode": "concat", "use_scale": True},
}


@pytest.mark.parametrize("case", list(DOT_CASES), ids=str)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_attention_layer(keras, tmp_path, case, causal):
    q, v, k = keras.Input((5, 6)), keras.Input((7, 6)), keras.Input((7, 6))
    if causal:
        y = keras.layers.Attention(**DOT_CASES[case], name="att")([q, q], use_causal_mask=True)
        model = keras.Model(q, y)
    else:
        y = keras.layers.Attention(**DOT_CASES[case], name="att")([q, v, k])
        model = keras.Model([q, v, k], y)
    convert_and_compare(model, tmp_path)


@pytest.mark.parametrize("use_scale", [True, False], ids=["scaled", "unscaled"])
def test_additive_attention(keras, tmp_path, use_scale):
    q, v = keras.Input((5, 6)), keras.Input((7, 6))
    y, s = keras.layers.AdditiveAttention(use_scale=use_scale, name="att")([q, v], return_attention_scores=True)
    convert_and_compare(keras.Model([q, v], [y, s]), tmp_path)


@pytest.mark.parametrize("score_mode", ["dot", "concat"])
def test_attention_layer_keras2(tmp_path, score_mode):
    import tf_keras

    q, v = tf_keras.Input((5, 6)), tf_keras.Input((7, 6))
    y = tf_keras.layers.Attention(use_scale=True, score_mode=score_mode, name="att")([q, v])
    a = tf_keras.layers.AdditiveAttention(name="add_att")([q, v])
    convert_and_compare(tf_keras.Model([q, v], [y, a]), tmp_path, suffix=".h5")


def test_attention_training_dropout_is_unbiased(keras, tmp_path):
    q, v = keras.Input((4, 6)), keras.Input((5, 6))
    model = keras.Model([q, v], keras.layers.Attention(dropout=0.4, name="att")([q, v]))
    result = convert_and_compare(model, tmp_path)
    xs = [_x(2, 4, 6), _x(2, 5, 6)]
    expected = np.asarray(model(xs, training=False))
    module = result.module.train()
    torch.manual_seed(0)
    with torch.no_grad():  # 3000 copies of the batch in one pass: independent dropout masks
        tiled = [torch.from_numpy(np.tile(a, (3000, 1, 1))) for a in xs]
        runs = module(*tiled).unflatten(0, (3000, 2)).numpy()
    module.eval()
    assert np.abs(runs[0] - expected).max() > 1e-3
    assert np.abs(runs.mean(0) - expected).max() < 0.05 * np.abs(expected).max()


def test_attention_with_masks(keras, tmp_path):
    ids_q, ids_v = keras.Input((6,), dtype="int32"), keras.Input((8,), dtype="int32")
    emb = keras.layers.Embedding(20, 5, mask_zero=True)
    y = keras.layers.Attention(use_scale=True, name="att")([emb(ids_q), emb(ids_v)])
    rng = np.random.default_rng(2)
    a, c = rng.integers(1, 20, (3, 6)).astype("int32"), rng.integers(1, 20, (3, 8)).astype("int32")
    a[1, 4:] = 0
    c[0, :3] = 0
    c[2, 5:] = 0
    convert_and_compare(keras.Model([ids_q, ids_v], y), tmp_path, inputs=[a, c])


# -- EinsumDense, normalizations, small layers ------------------------------------------

EINSUM_CASES = {
    "dense": ("ab,bc->ac", (7,), (5,), None),
    "sequence_bias": ("abc,cd->abd", (6, 7), (None, 5), "d"),
    "heads": ("abc,cde->abde", (6, 7), (None, 3, 4), "de"),
    "bias_one_axis": ("abc,cde->abde", (6, 7), (None, 3, 4), "e"),
    "ellipsis": ("...b,bc->...c", (4, 5, 7), (3,), "c"),
    "contract_two": ("abcd,cde->abe", (4, 3, 5), (None, 6), "e"),
}


@pytest.mark.parametrize("case", list(EINSUM_CASES), ids=str)
def test_einsum_dense(keras, tmp_path, case):
    equation, in_shape, out_shape, bias = EINSUM_CASES[case]
    x = keras.Input(in_shape)
    y = keras.layers.EinsumDense(equation, output_shape=out_shape, bias_axes=bias, activation="relu")(x)
    convert_and_compare(keras.Model(x, y), tmp_path)


def test_einsum_dense_keras2(tmp_path):
    import tf_keras

    x = tf_keras.Input((6, 7))
    y = tf_keras.layers.EinsumDense("abc,cde->abde", output_shape=(None, 3, 4), bias_axes="de")(x)
    convert_and_compare(tf_keras.Model(x, y), tmp_path, suffix=".h5")


@pytest.mark.parametrize("axis", [-1, (-2, -1)], ids=["last", "last_two"])
def test_rms_normalization(keras, tmp_path, axis):
    x = keras.Input((5, 7))
    y = keras.layers.RMSNormalization(axis=axis, epsilon=1e-4)(keras.layers.Dense(7)(x))
    convert_and_compare(keras.Model(x, y), tmp_path)


def test_rms_normalization_non_trailing_is_unsupported(keras, tmp_path):
    x = keras.Input((5, 7))
    model = keras.Model(x, keras.layers.RMSNormalization(axis=1)(x))
    model.save(tmp_path / "m.keras")
    with pytest.raises(UnsupportedFeature, match="RMSNormalization over axes"):
        tf2torch.convert(str(tmp_path / "m.keras"))


@pytest.mark.parametrize("axis", [-1, 1, (1, 2)], ids=["last", "steps", "both"])
def test_unit_normalization(keras, tmp_path, axis):
    x = keras.Input((5, 7))
    convert_and_compare(keras.Model(x, keras.layers.UnitNormalization(axis=axis)(x)), tmp_path)


def test_unit_normalization_keras2(tmp_path):
    import tf_keras

    x = tf_keras.Input((5, 7))
    convert_and_compare(tf_keras.Model(x, tf_keras.layers.UnitNormalization(axis=-1)(x)), tmp_path, suffix=".h5")


@pytest.mark.parametrize("axis", [(1, 2), (1, 3), [2, 3]], ids=str)
def test_layer_normalization_several_axes(keras, tmp_path, axis):
    x = keras.Input((4, 5, 6))
    y = keras.layers.LayerNormalization(axis=axis, epsilon=1e-4)(x)
    convert_and_compare(keras.Model(x, y), tmp_path)


def test_repeat_vector(keras, tmp_path):
    x = keras.Input((7,))
    y = keras.layers.RepeatVector(5)(keras.layers.Dense(3)(x))
    y = keras.layers.Dense(2)(y)
    convert_and_compare(keras.Model(x, y), tmp_path)


def test_positional_embedding_of_a_range(keras, tmp_path):
    """Token embedding + Embedding(positions) where the positions are a model input."""
    ids = keras.Input((None,), dtype="int32")
    pos = keras.Input((None,), dtype="int32")
    x = keras.layers.Add()([keras.layers.Embedding(40, 8)(ids), keras.layers.Embedding(16, 8)(pos)])
    model = keras.Model([ids, pos], keras.layers.Dense(3)(x))
    rng = np.random.default_rng(4)
    inputs = [rng.integers(0, 40, (3, 11)).astype("int32"), np.tile(np.arange(11, dtype="int32"), (3, 1))]
    convert_and_compare(model, tmp_path, inputs=inputs)


# -- 1D layers on (batch, steps, channels) ----------------------------------------------

SEQ_1D = {
    "conv1d_causal": lambda L: L.Conv1D(5, 3, padding="causal", dilation_rate=2),
    "conv1d_same_strided": lambda L: L.Conv1D(5, 4, strides=2, padding="same"),
    "maxpool1d": lambda L: L.MaxPooling1D(3, strides=2, padding="same"),
    "avgpool1d": lambda L: L.AveragePooling1D(2),
    "upsampling1d": lambda L: L.UpSampling1D(3),
    "cropping1d": lambda L: L.Cropping1D((2, 1)),
    "global_max_1d": lambda L: L.GlobalMaxPooling1D(keepdims=True),
}


@pytest.mark.parametrize("case", list(SEQ_1D), ids=str)
def test_sequence_1d_layers(keras, tmp_path, case):
    x = keras.Input((13, 6))
    y = SEQ_1D[case](keras.layers)(keras.layers.Dense(6)(x))
    y = keras.layers.Dense(4)(y)  # back in (batch, steps, features)
    result = convert_and_compare(keras.Model(x, y), tmp_path)
    assert result.graph.outputs[0].perm is None

"""Run-time shapes in the TF frontend: shape values (tf.shape, tf.size, arithmetic, casts) feeding
Reshape / Range / Tile / Fill / BroadcastTo / Slice / Gather. Each case has a dynamic batch and
sequence length and is checked against TensorFlow at two sizes with the same converted module;
one also goes through torch.export with dynamic dims."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
import torch
from tf_frontend_helpers import assert_matches, forward_source

tf = pytest.importorskip("tensorflow")

import tf2torch

RNG = np.random.default_rng(1)
SEQ = (None, None, 6)  # (batch, steps, features), batch and steps known only at run time
SIZES = ((3, 7), (2, 4))  # (batch, steps) pairs every case is checked at


def _const(*shape):
    return tf.constant(RNG.standard_normal(shape).astype(np.float32))


POS = tf.Variable(RNG.standard_normal((20, 6)).astype(np.float32), name="position_table")
CLS = tf.Variable(RNG.standard_normal((1, 6)).astype(np.float32), name="cls_token")
W66 = _const(6, 6)


def _split_heads(x):
    b, s = tf.shape(x)[0], tf.shape(x)[1]
    return tf.transpose(tf.reshape(x, [b, s, 2, 3]), [0, 2, 1, 3])


def _attention(x):
    q, k, v = _split_heads(x), _split_heads(tf.matmul(x, W66)), _split_heads(x * 2.0)
    scores = tf.matmul(q, k, transpose_b=True) / tf.sqrt(tf.cast(tf.shape(q)[-1], tf.float32))
    out = tf.matmul(tf.nn.softmax(scores), v)
    return tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [tf.shape(x)[0], -1, 6])


def _causal(x):
    n = tf.shape(x)[1]
    i, j = tf.range(n)[:, None], tf.range(n)[None, :]
    mask = tf.cast(i >= j, tf.float32)
    return tf.matmul(mask, x) / tf.cast(tf.range(1, n + 1), tf.float32)[:, None]


def _center_crop(x):
    """An augmentation-layer pattern: a size through float arithmetic and back to int."""
    steps = tf.shape(x)[1]
    kept = tf.cast(tf.cast(steps, tf.float32) * 0.7, tf.int32)
    start = (steps - kept) // 2
    return x[:, start:start + kept]


def _cache_update(x):
    """A KV-cache write (keras.ops.slice_update -> XlaDynamicUpdateSlice) at a run-time position."""
    import keras

    position = tf.shape(x)[1] - 3
    return keras.ops.slice_update(tf.zeros([tf.shape(x)[0], 20, 6]), [0, position, 0], x[:, :2] * 2.0)


CASES = {
    "slice_update_runtime_position": _cache_update,
    "center_crop_float_size": _center_crop,
    "position_embedding_gather_range": lambda x: x + tf.gather(POS, tf.range(tf.shape(x)[1])),
    "position_table_sliced": lambda x: x + POS[: tf.shape(x)[1]],
    "reshape_split_merge_heads": _attention,
    "reshape_flatten_steps": lambda x: tf.reshape(x, [tf.shape(x)[0], tf.shape(x)[1] * 6])[:, :, None] * 2.0,
    "tile_cls_token_concat": lambda x: tf.concat([tf.tile(CLS[None], [tf.shape(x)[0], 1, 1]), x], axis=1),
    "broadcast_to_shape": lambda x: x + tf.broadcast_to(_const(1, 1, 6), tf.shape(x)),
    "broadcast_to_batch": lambda x: tf.concat([tf.broadcast_to(CLS, [tf.shape(x)[0], 1, 6]), x], axis=1),
    "fill_zeros_ones": lambda x: tf.concat(
        [tf.zeros([tf.shape(x)[0], 2, 6]), x, tf.ones(tf.shape(x)), tf.fill([tf.shape(x)[0], tf.shape(x)[1], 6], 0.5)], 1),
    "range_start_delta": lambda x: x * tf.cast(tf.range(1, tf.shape(x)[1] * 2, 2), tf.float32)[:, None],
    "slice_runtime_size": lambda x: tf.slice(x, [0, 1, 0], [-1, tf.shape(x)[1] - 2, 3]),
    "strided_slice_runtime_index": lambda x: x[:, tf.shape(x)[1] - 1] + x[:, tf.shape(x)[1] // 2],
    "size_and_cast_mean": lambda x: tf.reduce_sum(x, axis=[1, 2]) / tf.cast(tf.size(x) // tf.shape(x)[0], tf.float32),
    "cast_steps_scale": lambda x: x * tf.math.rsqrt(tf.cast(tf.shape(x)[1], tf.float32)) + tf.cast(tf.shape(x)[1], tf.float32),
    "causal_mask_from_range": _causal,
    "gather_batch_dims": lambda x: tf.gather(x, tf.argsort(x[:, :, 0], axis=1), axis=1, batch_dims=1),
    "rank_static": lambda x: x * tf.cast(tf.rank(x), tf.float32),
    "shape_n_reduce": lambda x: tf.reduce_max(x, axis=1) * tf.cast(tf.reduce_prod(tf.shape(x)[1:]), tf.float32),
}


def _inputs(batch: int, steps: int) -> list[np.ndarray]:
    return [RNG.standard_normal((batch, steps, 6)).astype(np.float32)]


def _convert(body):
    return tf2torch.convert(tf.function(body, input_signature=[tf.TensorSpec(SEQ, tf.float32)]))


@pytest.mark.parametrize("case", sorted(CASES))
def test_runtime_shapes_match_tf_at_two_sizes(case):
    result = _convert(CASES[case])
    for batch, steps in SIZES:
        assert_matches(result, inputs=_inputs(batch, steps))


def test_keras_dense_on_sequences_becomes_linear_and_exports_with_dynamic_dims():
    """A Dense on (batch, steps, features) lowers to Tensordot (Shape/Prod/Reshape/MatMul);
    it comes back as one nn.Linear, and with a position embedding indexed by
    tf.range(tf.shape(x)[1]) the module exports with a dynamic batch and sequence length."""
    import keras

    dense = keras.layers.Dense(6, name="proj")
    dense.build((None, None, 5))
    dense.kernel.assign(RNG.standard_normal((5, 6)).astype(np.float32))
    dense.bias.assign(RNG.standard_normal(6).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec((None, None, 5), tf.float32)])
    def fn(x):
        return dense(x) + tf.gather(POS, tf.range(tf.shape(x)[1]))

    result = tf2torch.convert(fn)
    body = forward_source(result.source_code)
    assert "nn.Linear(5, 6)" in result.source_code
    assert "reshape" not in body and "+ 0" not in body
    assert "torch.arange(x.shape[1]" in body or "arange(x_1.shape[1]" in body
    batch, steps = torch.export.Dim("batch"), torch.export.Dim("steps", max=20)
    example = torch.randn(3, 7, 5)
    exported = torch.export.export(result.module, (example,), dynamic_shapes=({0: batch, 1: steps},))
    for shape in ((2, 11, 5), (4, 3, 5)):
        x = RNG.standard_normal(shape).astype(np.float32)
        expected = fn(tf.constant(x)).numpy()
        got = exported.module()(torch.from_numpy(x)).detach().numpy()
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-5 * np.abs(expected).max())


def test_reshape_reads_runtime_sizes_not_constants():
    result = _convert(CASES["reshape_split_merge_heads"])
    body = forward_source(result.source_code)
    assert ".shape[0]" in body or "reshape(-1" in body
    assert "reshape(3" not in body and "reshape(7" not in body  # no traced size baked in


def test_keras_multi_head_attention_einsums_become_sdpa(tmp_path):
    """Keras' MultiHeadAttention lowers to einsum -> scale -> softmax -> einsum on (batch, steps,
    heads, depth): one F.scaled_dot_product_attention between four nn.Linear projections, exact
    at two sizes; model.py lints clean."""
    import subprocess
    import sys
    from pathlib import Path

    import keras

    mha = keras.layers.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=4, name="attention")
    mha(np.zeros((1, 4, 6), np.float32), np.zeros((1, 5, 6), np.float32))
    for w in mha.weights:
        w.assign(RNG.standard_normal(w.shape).astype(np.float32) * 0.5)

    @tf.function(input_signature=[tf.TensorSpec((None, None, 6), tf.float32)])
    def fn(x):
        return mha(x, x[:, ::-1] * 2.0)

    result = tf2torch.convert(fn)
    body = forward_source(result.source_code)
    assert "F.scaled_dot_product_attention(" in body and "softmax" not in body
    assert result.source_code.count("nn.Linear(") == 4 and "torch.einsum" not in body  # EinsumDense projections
    for batch, steps in SIZES:
        assert_matches(result, inputs=_inputs(batch, steps))
    result.save(tmp_path / "out")
    ruff = Path(sys.executable).with_name("ruff")
    if ruff.exists():
        done = subprocess.run([str(ruff), "check", "--isolated", str(tmp_path / "out" / "model.py")],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout


def test_vit_style_patch_embedding_with_runtime_batch():
    """Patches (ExtractImagePatches) reshaped with tf.shape(images)[0], projected by a Keras Dense
    (Tensordot), a class token broadcast to the batch and a position table indexed by a range."""
    import keras

    proj = keras.layers.Dense(8, name="projection")
    proj.build((None, None, 36))
    for w in proj.weights:
        w.assign(RNG.standard_normal(w.shape).astype(np.float32) * 0.3)
    cls_token = tf.Variable(RNG.standard_normal((1, 1, 8)).astype(np.float32), name="cls")
    positions = tf.Variable(RNG.standard_normal((13, 8)).astype(np.float32), name="pos")

    @tf.function(input_signature=[tf.TensorSpec((None, 9, 12, 4), tf.float32)])
    def fn(images):
        batch = tf.shape(images)[0]
        patches = tf.image.extract_patches(images, [1, 3, 3, 1], [1, 3, 3, 1], [1, 1, 1, 1], "VALID")
        tokens = proj(tf.reshape(patches, [batch, -1, patches.shape[-1]]))
        tokens = tf.concat([tf.broadcast_to(cls_token, [batch, 1, 8]), tokens], axis=1)
        return tokens + tf.gather(positions, tf.range(tf.shape(tokens)[1]))

    result = tf2torch.convert(fn)
    assert "nn.Linear(36, 8)" in result.source_code
    for batch in (3, 2):
        assert_matches(result, inputs=[RNG.standard_normal((batch, 9, 12, 4)).astype(np.float32)])


def test_float_size_arithmetic_truncates_like_tensorflow():
    """int(float32(90) * float32(0.7)) is 63 in TensorFlow but int(90 * 0.7) is 62 in Python's
    float64: float arithmetic on sizes must run in float32, or the crop is off by one."""
    result = _convert(_center_crop)
    for steps in (90, 11):
        assert_matches(result, inputs=_inputs(2, steps))

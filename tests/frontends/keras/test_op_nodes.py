"""Raw TensorFlow calls (tf.keras 2 TFOpLambda / SlicingOpLambda in .h5) and keras.ops calls
(Keras 3 op entries in .keras) inside functional models, compared with TensorFlow's output.

Every case starts from a Conv2D on an odd-sized image, so the op sees a rank-4 tensor that
the converted model holds channels-first: the layout pass must keep the op exact."""

from __future__ import annotations

import pytest

import tf2torch
from conftest import convert_and_compare

# -- tf.keras 2 (.h5): each case maps (tf, x, raw) to the model's outputs: x is a conv's NHWC (N, 7, 9, 8)
# output; raw the model input (N, 7, 9, 6), for discontinuous ops (floor, comparisons), whose result
# a last-bit difference of a computed input could flip.


def _tf_elementwise(tf, x, raw):
    y = tf.nn.relu(x) * 2.0 + 1.0
    return [y, 0.5 * x - 0.25, x / 3.0, tf.math.floordiv(raw, 0.7), tf.math.floormod(raw, 1.5), x**2,
            tf.math.squared_difference(x, y), tf.maximum(x, 0.1), tf.minimum(x, y), tf.abs(x) + x * [0.5] * 8]


def _tf_unary(tf, x, raw):
    a = tf.abs(x) + 1.0
    return [tf.exp(-a), tf.sqrt(a), tf.math.log(a), tf.math.rsqrt(a), tf.math.reciprocal(a), tf.sin(x),
            tf.cos(x), tf.tanh(x), tf.sigmoid(x), tf.floor(raw), tf.math.ceil(raw), tf.round(raw * 3.0),
            tf.math.erf(x), tf.sign(raw), tf.square(x), -x, tf.math.log1p(a), tf.math.expm1(x), tf.math.erfc(x),
            tf.tan(0.5 * x), tf.asin(0.9 * tf.tanh(x)), tf.acos(0.9 * tf.tanh(x)), tf.atan(x), tf.sinh(x), tf.cosh(x),
            tf.asinh(x), tf.acosh(a), tf.atanh(0.9 * tf.tanh(x)),
            tf.cast(tf.logical_not(tf.math.is_finite(tf.math.log(raw))), tf.float32),
            tf.cast(tf.math.is_nan(tf.sqrt(raw)), tf.float32)]


def _tf_compare_where(tf, x, raw):
    y = tf.nn.relu(raw)
    positive = raw > 0.2
    return [tf.where(positive, raw, 0.1 * x[..., :6]), tf.where(raw <= y, y, -1.0), tf.cast(tf.equal(y, 0.0), tf.float32),
            tf.cast(tf.logical_and(positive, tf.not_equal(raw, 1.0)), tf.float32), tf.clip_by_value(x, -0.5, 0.3)]


def _tf_activations(tf, x, raw):
    return [tf.nn.relu6(x * 4.0), tf.nn.elu(x), tf.nn.selu(x), tf.nn.gelu(x), tf.nn.gelu(x, approximate=True),
            tf.nn.softplus(x), tf.nn.softsign(x), tf.nn.silu(x), tf.nn.leaky_relu(x, alpha=0.3),
            tf.nn.softmax(x, axis=1), tf.nn.softmax(x), tf.nn.log_softmax(x, axis=2)]


def _tf_reductions(tf, x, raw):
    return [tf.reduce_mean(x, axis=[1, 2]), tf.reduce_sum(x, axis=[1, 2], keepdims=True), tf.reduce_max(x, axis=-1),
            tf.reduce_min(x, axis=2), tf.reduce_prod(tf.sigmoid(x) + 0.5, axis=1), tf.reduce_mean(x),
            tf.reduce_max(x, axis=[1, 2]), tf.cast(tf.reduce_any(raw > 1.0, axis=3), tf.float32),
            tf.reduce_sum(x, axis=[1, 3])]


def _tf_shapes(tf, x, raw):
    flat = tf.reshape(x, [-1, 63, 8])
    return [flat, tf.transpose(x, [0, 3, 1, 2]), tf.expand_dims(x, 1), tf.squeeze(x[:, :1], axis=1),
            tf.concat([x, tf.nn.relu(x)], axis=-1), tf.concat([x, x[:, :2]], axis=1),
            tf.stack([x, 2.0 * x], axis=1), *tf.split(x, [3, 5], axis=3), *tf.split(x, [2, 5], axis=1),
            *tf.split(x, 2, axis=-1), tf.transpose(flat, [0, 2, 1])]


def _tf_slicing(tf, x, raw):
    pooled = tf.reduce_mean(x, axis=[1, 2])
    return [pooled[:, :4], x[..., None, 1:5:2], x[:, 1:-1, ::2, 3], x[:, None], x[:, 2], x[..., -3:],
            x[:, :, 4:], x[:, ::3, 1:8:2]]


def _tf_linalg(tf, x, raw):
    flat = tf.reshape(x, [-1, 63, 8])
    return [tf.matmul(flat, flat, transpose_b=True), tf.linalg.matmul(flat, flat, transpose_a=True)]


def _tf_images(tf, x, raw):
    return [tf.image.resize(x, (5, 4)), tf.image.resize(x, (11, 13)), tf.image.resize(x, (11, 13), method="nearest"),
            tf.image.resize(x, (4, 3), method="nearest"), tf.nn.depth_to_space(x, 2),
            tf.nn.space_to_depth(x[:, :6, :8], 2)]


def _tf_cast_one_hot(tf, x, raw):
    ids = tf.cast(tf.clip_by_value(tf.abs(raw[:, 0, 0, 0]) * 2.0, 0.0, 3.0), tf.int32)
    return [tf.one_hot(ids, 4), tf.one_hot(ids, 5, on_value=2.0, off_value=-1.0), tf.cast(raw * 4.0, tf.int32),
            x * tf.expand_dims(tf.one_hot(ids, 8), 1)[:, :, None]]


TF_CASES = {
    "elementwise": _tf_elementwise, "unary": _tf_unary, "compare_where_clip": _tf_compare_where,
    "activations": _tf_activations, "reductions": _tf_reductions, "shapes": _tf_shapes, "slicing": _tf_slicing,
    "matmul": _tf_linalg, "images": _tf_images, "cast_one_hot": _tf_cast_one_hot,
}


@pytest.mark.parametrize("case", list(TF_CASES))
def test_tf_op_lambda_matches_tensorflow(case, tmp_path):
    import tensorflow as tf
    import tf_keras

    inp = tf_keras.Input((7, 9, 6))
    x = tf_keras.layers.Conv2D(8, 3, padding="same")(inp)
    model = tf_keras.Model(inp, TF_CASES[case](tf, x, inp))
    convert_and_compare(model, tmp_path, suffix=".h5")


def test_axis_arguments_are_rewritten_instead_of_permuting(tmp_path):
    """On channels-first maps, axis arguments move to torch's dims: no runtime permute."""
    import tensorflow as tf
    import tf_keras

    inp = tf_keras.Input((7, 9, 6))
    x = tf_keras.layers.Conv2D(8, 3, padding="same")(inp)
    left, right = tf.split(x, [3, 5], axis=3)
    y = tf.concat([tf.nn.softmax(right, axis=-1), left], axis=-1)
    outputs = [tf.reduce_mean(y, axis=[1, 2]), tf.reduce_sum(y, axis=3), y[:, 1:-1, ::2, 3], y[:, 2],
               tf.squeeze(y[:, :, 4:5], axis=2), tf.reduce_max(y, axis=-1, keepdims=True)]
    result = convert_and_compare(tf_keras.Model(inp, outputs), tmp_path, suffix=".h5")
    forward = result.source_code.split("def forward")[1]
    assert ".permute(" not in forward.split("return")[0].replace("permute(0, 2, 1)", ""), forward


def test_einsum_and_transpose_read_channels_first_operands_directly(keras, tmp_path):
    inp = keras.Input((7, 9, 6))
    x = keras.layers.Conv2D(8, 3, padding="same")(inp)
    pooled = keras.ops.mean(x, axis=[1, 2])
    outputs = [keras.ops.einsum("bhwc,bc->bhw", x, pooled), keras.ops.transpose(x, (0, 3, 1, 2)),
               keras.ops.transpose(x, (0, 2, 1, 3))]
    result = convert_and_compare(keras.Model(inp, outputs), tmp_path)
    forward = result.source_code.split("def forward")[1]
    assert "torch.einsum(\"bchw,bc->bhw\"" in forward
    assert forward.count(".permute(") == 1, forward  # (0, 3, 1, 2) of NHWC is the NCHW tensor itself


# -- Keras 3 (.keras): the same ops through keras.ops ----------------------------------------


def _k3_elementwise(ops, x, raw):
    y = ops.relu(x) * 2.0 + 1.0
    return [y, 0.5 * x - 0.25, x / 3.0, ops.floor_divide(raw, 0.7), ops.mod(raw, 1.5), ops.power(x, 2),
            ops.maximum(x, 0.1), ops.minimum(x, y), ops.abs(x) + x * ops.convert_to_numpy([0.5] * 8)]


def _k3_unary(ops, x, raw):
    a = ops.abs(x) + 1.0
    return [ops.exp(-a), ops.sqrt(a), ops.log(a), ops.rsqrt(a), ops.reciprocal(a), ops.sin(x), ops.cos(x),
            ops.tanh(x), ops.sigmoid(x), ops.floor(raw), ops.ceil(raw), ops.round(raw * 3.0), ops.erf(x),
            ops.sign(raw), ops.square(x), ops.negative(x), ops.log1p(a), ops.expm1(x), ops.tan(0.5 * x),
            ops.arcsin(0.9 * ops.tanh(x)), ops.arccos(0.9 * ops.tanh(x)), ops.arctan(x), ops.sinh(x), ops.cosh(x),
            ops.arcsinh(x), ops.arccosh(a), ops.arctanh(0.9 * ops.tanh(x)),
            ops.cast(ops.isnan(ops.sqrt(raw)), "float32"), ops.cast(ops.isinf(ops.log(ops.abs(raw) * 0.0)), "float32")]


def _k3_compare_where(ops, x, raw):
    y = ops.relu(raw)
    return [ops.where(raw > 0.2, raw, 0.1 * x[..., :6]), ops.where(ops.less_equal(raw, y), y, -1.0),
            ops.cast(ops.equal(y, 0.0), "float32"), ops.clip(x, -0.5, 0.3)]


def _k3_activations(ops, x, raw):
    return [ops.relu6(x * 4.0), ops.elu(x, alpha=0.7), ops.selu(x), ops.gelu(x), ops.gelu(x, approximate=False),
            ops.softplus(x), ops.softsign(x), ops.silu(x), ops.leaky_relu(x, negative_slope=0.3),
            ops.softmax(x, axis=1), ops.log_softmax(x, axis=2)]


def _k3_reductions(ops, x, raw):
    return [ops.mean(x, axis=[1, 2]), ops.sum(x, axis=(1, 2), keepdims=True), ops.max(x, axis=-1),
            # A whole-tensor mean of positive values: the mean of raw conv outputs sits near 0, where
            # float32 summation order alone moves it by 1e-5 of itself (a flaky relative error).
            ops.min(x, axis=2), ops.prod(ops.sigmoid(x) + 0.5, axis=1), ops.mean(ops.sigmoid(x)),
            ops.sum(x, axis=[1, 3])]


def _k3_shapes(ops, x, raw):
    flat = ops.reshape(x, (-1, 63, 8))
    return [flat, ops.transpose(x, (0, 3, 1, 2)), ops.expand_dims(x, 1), ops.squeeze(x[:, :1], axis=1),
            ops.concatenate([x, ops.relu(x)], axis=-1), ops.concatenate([x, x[:, :2]], axis=1),
            ops.stack([x, 2.0 * x], axis=1), *ops.split(x, [3], axis=3), *ops.split(x, 2, axis=-1),
            ops.transpose(flat, (0, 2, 1))]


def _k3_slicing(ops, x, raw):
    pooled = ops.mean(x, axis=[1, 2])
    return [pooled[:, :4], x[..., None, 1:5:2], x[:, 1:-1, ::2, 3], x[:, None], x[:, 2], x[..., -3:], x[:, ::3, 1:8:2]]


def _k3_linalg(ops, x, raw):
    flat = ops.reshape(x, (-1, 63, 8))
    pooled = ops.mean(x, axis=[1, 2])
    return [ops.matmul(flat, ops.transpose(flat, (0, 2, 1))), ops.einsum("bhwc,bc->bhw", x, pooled),
            ops.einsum("bij,bkj->bik", flat, flat)]


def _k3_images(ops, x, raw):
    return [ops.image.resize(x, (5, 4)), ops.image.resize(x, (11, 13)),
            ops.image.resize(x, (11, 13), interpolation="nearest")]


def _k3_cast_one_hot(ops, x, raw):
    ids = ops.cast(ops.clip(ops.abs(raw[:, 0, 0, 0]) * 2.0, 0.0, 3.0), "int32")
    return [ops.one_hot(ids, 4), ops.cast(raw * 4.0, "int32")]


K3_CASES = {
    "elementwise": _k3_elementwise, "unary": _k3_unary, "compare_where_clip": _k3_compare_where,
    "activations": _k3_activations, "reductions": _k3_reductions, "shapes": _k3_shapes, "slicing": _k3_slicing,
    "matmul_einsum": _k3_linalg, "images": _k3_images, "cast_one_hot": _k3_cast_one_hot,
}


@pytest.mark.parametrize("case", list(K3_CASES))
def test_keras_ops_match_tensorflow(case, keras, tmp_path):
    inp = keras.Input((7, 9, 6))
    x = keras.layers.Conv2D(8, 3, padding="same")(inp)
    model = keras.Model(inp, K3_CASES[case](keras.ops, x, inp))
    convert_and_compare(model, tmp_path)


# -- errors ------------------------------------------------------------------------------------


def test_unknown_ops_are_all_listed_by_name(tmp_path):
    import tensorflow as tf
    import tf_keras

    inp = tf_keras.Input((5, 4))
    x = tf.math.cumsum(inp, axis=1)
    y = tf.math.bessel_i0(x)
    path = tmp_path / "unknown_ops.h5"
    tf_keras.Model(inp, tf.nn.relu(y)).save(path)
    # With TensorFlow, functions outside the table are traced: cumsum converts, BesselI0 is named.
    with pytest.raises(tf2torch.ConversionError, match=r"tf\.math\.bessel_i0.*BesselI0"):
        tf2torch.convert(str(path))
    # Without it, every one is listed at once, with the way out.
    from tf2torch.frontends.keras import importer

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(importer, "tensorflow_available", lambda: False)
        with pytest.raises(tf2torch.UnsupportedLayers) as info:
            tf2torch.convert(str(path))
    message = str(info.value)
    assert "tf.math.cumsum" in message and "tf.math.bessel_i0" in message and "traced" in message


def test_unsupported_argument_names_the_op(keras, tmp_path):
    inp = keras.Input((7, 9, 3))
    out = keras.ops.image.resize(inp, (5, 5), interpolation="bicubic")
    path = tmp_path / "bicubic.keras"
    keras.Model(inp, out).save(path)
    with pytest.raises(tf2torch.ConversionError, match=r"keras\.ops\.Resize with method 'bicubic'"):
        tf2torch.convert(str(path))


def test_an_argument_the_op_table_does_not_know_is_refused(keras, tmp_path):
    """ops.max(x, initial=...) changes the result: never silently dropped."""
    inp = keras.Input((4, 5))
    path = tmp_path / "initial.keras"
    keras.Model(inp, keras.ops.max(inp, axis=1, initial=0.5)).save(path)
    with pytest.raises(tf2torch.ConversionError, match=r"keras\.ops\.Max with initial"):
        tf2torch.convert(str(path))


def test_unknown_arguments_are_collected_for_refusal():
    from tf2torch.frontends.keras.layer_calls import LayerCall, LayerEntry
    from tf2torch.frontends.keras.op_calls import bind_op_call, op_spec

    config = {"name": "sum", "axis": 1, "keepdims": False, "where": [1, 0], "dtype": None}
    entry = LayerEntry("ops.Sum", "sum", config, [], {})
    call = bind_op_call(entry, op_spec(entry), LayerCall([], args=[None]), [], {})
    assert call.unknown == ["where"] and call.args["axis"] == 1
    tf_entry = LayerEntry("TFOpLambda", "tf.math.reduce_sum", {"function": "math.reduce_sum"}, [], {})
    tf_call = LayerCall([], kwargs={"axis": 2, "name": None, "future_flag": True})
    assert bind_op_call(tf_entry, op_spec(tf_entry), tf_call, [], {}).unknown == ["future_flag"]

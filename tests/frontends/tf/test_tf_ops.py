"""Op coverage of the TF frontend: each case is a tf.function over TF ops with non-default
arguments and odd sizes, converted op by op and compared with TensorFlow's own output."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
from tf_frontend_helpers import assert_matches, forward_source

tf = pytest.importorskip("tensorflow")

import tf2torch
from tf2torch.errors import ConversionError
from tf2torch.frontends.tf.importer import UnsupportedOps

RNG = np.random.default_rng(0)


def _const(*shape):
    return tf.constant(RNG.standard_normal(shape).astype(np.float32))


W35 = _const(3, 5)
K = _const(3, 3, 5, 7)
DK = _const(3, 3, 5, 2)
K3 = _const(2, 3, 3, 5, 4)
KT = _const(3, 3, 4, 5)  # transposed conv: (kh, kw, out, in)
B7 = _const(7)
IMG = (None, 11, 9, 5)
VEC = (None, 3, 5)

CASES = {
    # arithmetic and comparisons (a run-time tensor against constants and scalars)
    "add_sub_mul_div": (VEC, lambda x: (x + 1.5) * W35[0] - x / 3.0),
    "pow_square_sqrt": (VEC, lambda x: tf.sqrt(tf.square(x) + 1.0) ** 1.5),
    "maximum_minimum": (VEC, lambda x: tf.maximum(tf.minimum(x, 0.7), -0.2 * x)),
    "floordiv_mod": (VEC, lambda x: tf.math.floordiv(x * 4.0, 1.5) + tf.math.floormod(x * 4.0, 1.5)),
    "squared_difference": (VEC, lambda x: tf.math.squared_difference(x, W35[1])),
    "comparison_select": (VEC, lambda x: tf.where(x > 0.3, x, tf.where(x <= -0.5, -x, 0.25))),
    "logical": (VEC, lambda x: tf.cast(tf.logical_or(x > 1.0, tf.logical_and(x < 0.5, x > -0.5)), tf.float32)),
    "unary_math": (VEC, lambda x: tf.sin(x) + tf.cos(x) * tf.exp(-tf.abs(x)) + tf.math.log1p(tf.abs(x)) + tf.tanh(x)),
    "rsqrt_reciprocal": (VEC, lambda x: tf.math.rsqrt(tf.abs(x) + 1.0) + tf.math.reciprocal(tf.abs(x) + 2.0)),
    "floor_ceil_round_sign": (VEC, lambda x: tf.floor(x * 3) + tf.math.ceil(x * 2) + tf.round(x * 5) + tf.sign(x)),
    "erf": (VEC, lambda x: tf.math.erf(x)),
    "add_n": (VEC, lambda x: tf.add_n([x, 2.0 * x, tf.sin(x)])),
    "gelu_exact": (VEC, lambda x: tf.nn.gelu(x * 2.0, approximate=False)),
    "gelu_tanh": (VEC, lambda x: tf.nn.gelu(x * 2.0, approximate=True)),
    "clip_by_value": (VEC, lambda x: tf.clip_by_value(x, -0.3, 0.6)),
    # activations
    "relu6_leaky_elu_selu": (VEC, lambda x: tf.nn.relu6(x * 4) + tf.nn.leaky_relu(x, 0.13) + tf.nn.elu(x) + tf.nn.selu(x)),
    "sigmoid_softplus_softsign": (VEC, lambda x: tf.sigmoid(x) + tf.nn.softplus(x) + tf.nn.softsign(x)),
    "softmax": (VEC, lambda x: tf.nn.softmax(x * 2.0)),
    "log_softmax": (VEC, lambda x: tf.nn.log_softmax(x)),
    # reductions
    "reduce_sum_keepdims": (VEC, lambda x: x - tf.reduce_sum(x, axis=-1, keepdims=True)),
    "reduce_mean_axis1": (VEC, lambda x: tf.reduce_mean(x, axis=1)),
    "reduce_max_min_prod": (VEC, lambda x: tf.reduce_max(x, axis=2) + tf.reduce_min(x, axis=2) + tf.reduce_prod(x, axis=2)),
    "reduce_all_axes": (VEC, lambda x: tf.reduce_sum(x, axis=[1, 2])),
    "argmax_argmin": (VEC, lambda x: tf.cast(tf.argmax(x, axis=2) + tf.argmin(x, axis=1)[:, :1], tf.float32)),
    "cumsum_exclusive_reverse": (VEC, lambda x: tf.cumsum(x, axis=2, exclusive=True, reverse=True)),
    "top_k": (VEC, lambda x: tf.math.top_k(x, k=2).values),
    # linear algebra
    "matmul_dense": ((None, 5), lambda x: tf.matmul(x, tf.transpose(W35)) + B7[:3]),
    "matmul_transpose_b": ((None, 5), lambda x: tf.matmul(x, W35, transpose_b=True)),
    "batch_matmul": (VEC, lambda x: tf.matmul(x, x, transpose_b=True)),
    "einsum": (VEC, lambda x: tf.einsum("bij,bkj->bik", x, x * 2.0)),
    # shapes and indexing
    "reshape_dynamic_batch": (VEC, lambda x: tf.reshape(x, [tf.shape(x)[0], 5, 3])),
    "reshape_flatten": (VEC, lambda x: tf.reshape(x, [-1, 15])),
    "transpose": (VEC, lambda x: tf.transpose(x, [0, 2, 1])),
    "transpose_pair_folded": (VEC, lambda x: tf.transpose(tf.transpose(x, [0, 2, 1]) * 2.0, [0, 2, 1])),
    "expand_squeeze": (VEC, lambda x: tf.squeeze(tf.expand_dims(x, 2), axis=2) + tf.expand_dims(x[:, 0], 1)),
    "concat_stack_unstack": (VEC, lambda x: tf.concat([x, tf.stack(tf.unstack(x, axis=1), axis=1)], axis=2)),
    "split_splitv": (VEC, lambda x: tf.concat(tf.split(x, [2, -1], axis=2)[::-1], axis=2)
                      + tf.concat(tf.split(x, 3, axis=1)[::-1], axis=1)),
    "slice": (VEC, lambda x: tf.slice(x, [0, 1, 1], [-1, 2, 3])),
    "strided_slice": (VEC, lambda x: x[:, ::2, 1:4] * x[:, -1:, :3]),
    "strided_slice_shrink_newaxis": (VEC, lambda x: x[:, 1, tf.newaxis, ...] + x[..., 2:3]),
    "gather": (VEC, lambda x: tf.gather(x, [4, 0, 2, 2], axis=2)),
    "gather_nd": (VEC, lambda x: tf.gather_nd(x, [[0, 1], [1, 2]], batch_dims=0)[tf.newaxis] + x[:1, :2, :]),
    "tile": (VEC, lambda x: tf.tile(x, [1, 2, 3])),
    "pad_constant": (VEC, lambda x: tf.pad(x, [[0, 0], [1, 2], [0, 3]], constant_values=0.5)),
    "mirror_pad_symmetric": (VEC, lambda x: tf.pad(x, [[0, 0], [2, 1], [0, 3]], mode="SYMMETRIC")),
    "mirror_pad_reflect": (VEC, lambda x: tf.pad(x, [[0, 0], [1, 1], [2, 1]], mode="REFLECT")),
    "fill_zeros_like": (VEC, lambda x: tf.fill(tf.shape(x)[:1], 2.0)[:, None, None] * x + tf.ones_like(x)),
    "one_hot": ((None, 4), lambda x: tf.one_hot(tf.cast(tf.abs(x) * 2, tf.int32) % 3, 3, on_value=2.0, off_value=-1.0)),
    "range_folded": (VEC, lambda x: x * tf.cast(tf.range(5), tf.float32)),
    "where_nonzero": (VEC, lambda x: tf.cast(tf.where(x > 0.5), tf.float32)),
    "cast_int": (VEC, lambda x: tf.cast(tf.cast(x * 3.0, tf.int32), tf.float32)),
    # NHWC image ops
    "conv2d_same_stride2_bias": (IMG, lambda x: tf.nn.bias_add(tf.nn.conv2d(x, K, 2, "SAME"), B7)),
    "conv2d_valid_dilated": (IMG, lambda x: tf.nn.conv2d(x, K, 1, "VALID", dilations=2)),
    "conv2d_explicit_padding": (IMG, lambda x: tf.nn.conv2d(x, K, 1, [[0, 0], [1, 2], [2, 0], [0, 0]])),
    "depthwise_conv2d": (IMG, lambda x: tf.nn.depthwise_conv2d(x, DK, [1, 2, 2, 1], "SAME")),
    "conv3d": ((None, 5, 6, 7, 5), lambda x: tf.nn.conv3d(x, K3, [1, 1, 2, 1, 1], "SAME")),
    "conv2d_transpose": (IMG, lambda x: tf.nn.conv2d_transpose(
        x[..., :5], KT, tf.stack([tf.shape(x)[0], 22, 18, 4]), 2, "SAME")),
    "max_pool_same": (IMG, lambda x: tf.nn.max_pool2d(x, 3, 2, "SAME")),
    "avg_pool_same": (IMG, lambda x: tf.nn.avg_pool2d(x, 3, 2, "SAME")),
    "avg_pool_valid": (IMG, lambda x: tf.nn.avg_pool2d(x, [2, 3], [2, 1], "VALID")),
    "global_mean": (IMG, lambda x: tf.reduce_mean(x, axis=[1, 2])),
    "fused_batch_norm": (IMG, lambda x: tf.compat.v1.nn.fused_batch_norm(
        x, _const(5) + 1.0, _const(5), _const(5), tf.abs(_const(5)) + 0.5, epsilon=0.01, is_training=False)[0]),
    "resize_bilinear": (IMG, lambda x: tf.image.resize(x, [15, 7], method="bilinear")),
    "resize_nearest": (IMG, lambda x: tf.image.resize(x, [22, 18], method="nearest")),
    "resize_bicubic_half_pixel": (IMG, lambda x: tf.image.resize(x, [15, 7], method="bicubic")),
    "resize_bicubic_align_corners": (IMG, lambda x: tf.compat.v1.image.resize_bicubic(x, [14, 20], align_corners=True)),
    "resize_bilinear_legacy": (IMG, lambda x: tf.compat.v1.image.resize_bilinear(x, [7, 13])),
    "resize_nearest_align_corners": (IMG, lambda x: tf.compat.v1.image.resize_nearest_neighbor(x, [20, 17],
                                                                                                 align_corners=True)),
    "resize_area": (IMG, lambda x: tf.image.resize(x, [5, 4], method="area")),
    "scale_and_translate_antialias": (IMG, lambda x: tf.image.resize(x, [6, 5], method="mitchellcubic", antialias=True)),
    "extract_image_patches_valid": (IMG, lambda x: tf.image.extract_patches(x, [1, 3, 2, 1], [1, 2, 3, 1], [1, 1, 1, 1],
                                                                            "VALID")),
    "extract_image_patches_same_rates": (IMG, lambda x: tf.image.extract_patches(x, [1, 2, 3, 1], [1, 3, 2, 1],
                                                                                 [1, 2, 1, 1], "SAME")),
    "depth_to_space_after_conv": (IMG, lambda x: tf.nn.depth_to_space(tf.nn.conv2d(x, _const(1, 1, 5, 12), 1, "SAME"), 2)),
    "space_to_depth": ((None, 10, 6, 3), lambda x: tf.nn.space_to_depth(x, 2) * 2.0),
    "unsorted_segment_sum_runtime_ids": ((None, 7), lambda x: tf.math.unsorted_segment_sum(
        x, tf.cast(tf.abs(x[:, 0]) * 2, tf.int32) % 4, 4)),
    "unsorted_segment_max_min_prod": (VEC, lambda x: tf.concat([
        tf.math.unsorted_segment_max(tf.transpose(x, [1, 0, 2]), [2, 0, 2], 4),
        tf.math.unsorted_segment_min(tf.transpose(x, [1, 0, 2]), [1, 1, 0], 3),
        tf.math.unsorted_segment_prod(tf.transpose(x, [1, 0, 2]), [0, 2, 2], 3)], axis=0)),
    "segment_mean_sum_sorted": (VEC, lambda x: tf.concat([
        tf.math.segment_mean(tf.transpose(x, [1, 0, 2]), [0, 0, 2]),
        tf.math.segment_sum(tf.transpose(x, [1, 0, 2]), [0, 1, 1])], axis=0)),
    "roll_two_axes": (VEC, lambda x: tf.roll(x, shift=[1, -2], axis=[1, 2])),
    "reverse_and_negative_stride": (VEC, lambda x: tf.reverse(x, [1]) + x[:, ::-1, ::-2][:, :, :1]),
    "band_part": ((None, 5, 5), lambda x: tf.linalg.band_part(x, 1, 2) + tf.linalg.band_part(x, -1, 0)),
    "bucketize_atan2": (VEC, lambda x: tf.cast(tf.raw_ops.Bucketize(input=x, boundaries=[-0.5, 0.0, 0.7]), tf.float32)
                        + tf.atan2(x, 1.0 - x)),
    "tensor_scatter_add_duplicates": (VEC, lambda x: tf.tensor_scatter_nd_add(x, [[0, 1, 2], [0, 1, 2], [1, 2, 4]],
                                                                               x[0, :3, 0] * 2.0)),
    "scatter_nd_into_zeros": (VEC, lambda x: tf.scatter_nd([[1, 0], [3, 2], [1, 0]], x[0, :3, :2] + 1.0, [5, 4, 2])[None]
                              + x[:, :1, :1, None] + x[:, :1, None, :2]),
    "in_top_k": (VEC, lambda x: tf.cast(tf.math.in_top_k(tf.cast(tf.abs(x[:, 0, 0]) * 3, tf.int32) % 5, x[:, 0], 2),
                                        tf.float32)),
    "image_pad_then_conv": (IMG, lambda x: tf.nn.conv2d(tf.pad(x, [[0, 0], [1, 1], [2, 0], [0, 0]]), K, 1, "VALID")),
    "channel_scale_broadcast": (IMG, lambda x: tf.nn.relu(x * _const(5) + _const(1, 1, 5))),
    "flatten_after_conv": (IMG, lambda x: tf.reshape(tf.nn.conv2d(x, K, 3, "VALID"), [-1, 3 * 3 * 7])),
    # control flow
    "while_loop": (VEC, lambda x: tf.while_loop(lambda i, y: i < 4, lambda i, y: (i + 1, tf.sin(y) * 1.5 + x),
                                                [tf.constant(0), x])[1]),
    "cond": (VEC, lambda x: tf.cond(tf.reduce_sum(x) > 0.0, lambda: x * 2.0, lambda: tf.cos(x))),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_tf_op(case):
    shape, body = CASES[case]
    fn = tf.function(body, input_signature=[tf.TensorSpec(shape, tf.float32)])
    result = tf2torch.convert(fn)
    assert_matches(result, batch_sizes=(3, 2))


@pytest.mark.parametrize("case", ["conv2d_same_stride2_bias", "depthwise_conv2d", "max_pool_same", "global_mean",
                                  "channel_scale_broadcast", "fused_batch_norm", "transpose_pair_folded"])
def test_image_ops_have_no_runtime_permute(case):
    shape, body = CASES[case]
    fn = tf.function(body, input_signature=[tf.TensorSpec(shape, tf.float32)])
    result = tf2torch.convert(fn)
    assert "permute" not in forward_source(result.source_code)


@pytest.mark.parametrize("case", ["gelu_exact", "gelu_tanh"])
def test_gelu_subgraph_is_folded(case):
    shape, body = CASES[case]
    result = tf2torch.convert(tf.function(body, input_signature=[tf.TensorSpec(shape, tf.float32)]))
    assert "F.gelu(" in result.source_code
    assert "erfc" not in result.source_code and "tanh(" not in forward_source(result.source_code).replace("\"tanh\"", "")


def test_conv_bias_is_folded_into_conv():
    shape, body = CASES["conv2d_same_stride2_bias"]
    result = tf2torch.convert(tf.function(body, input_signature=[tf.TensorSpec(shape, tf.float32)]))
    assert "nn.Conv2d(5, 7, kernel_size=3, stride=2" in result.source_code
    assert "bias=False" not in result.source_code


def test_unsupported_ops_are_all_listed():
    @tf.function(input_signature=[tf.TensorSpec((None, 3, 3), tf.float32)])
    def fn(x):
        return tf.math.digamma(x)[:, 0, 0] + tf.math.bessel_i0e(x)[:, 0, 0] + tf.math.lgamma(x)[:, 0, 0]

    with pytest.raises(UnsupportedOps) as info:
        tf2torch.convert(fn)
    message = str(info.value)
    for op in ("Digamma", "BesselI0e", "Lgamma"):
        assert op in message


def test_unsupported_option_is_a_clear_error():
    @tf.function(input_signature=[tf.TensorSpec((None, 5, 5, 3), tf.float32)])
    def fn(x):
        return tf.nn.bias_add(x, tf.ones(5), data_format="NCHW")

    with pytest.raises(tf2torch.ConversionError, match="BiasAdd with data_format NCHW"):
        tf2torch.convert(fn)


def test_tf_resize_without_torch_equivalent_uses_tf_weights():
    shape, body = CASES["resize_bicubic_half_pixel"]
    result = tf2torch.convert(tf.function(body, input_signature=[tf.TensorSpec(shape, tf.float32)]))
    body_text = forward_source(result.source_code)
    assert "interpolate" not in body_text and " @ x @ " in body_text


DILATED = {
    "conv2d_same": (IMG, lambda keras: keras.layers.Conv2D(4, 3, dilation_rate=2, padding="same")),
    "conv2d_valid_mixed_rates": (IMG, lambda keras: keras.layers.Conv2D(3, (3, 2), dilation_rate=(2, 3))),
    "depthwise_same": (IMG, lambda keras: keras.layers.DepthwiseConv2D(3, dilation_rate=2, padding="same")),
    "conv1d_causal": ((None, 9, 5), lambda keras: keras.layers.Conv1D(3, 3, dilation_rate=2, padding="causal")),
}


@pytest.mark.parametrize("case", sorted(DILATED))
def test_dilated_keras_convolution_is_one_convolution(case):
    """TF writes a dilated conv as SpaceToBatchND -> conv -> BatchToSpaceND: one dilated conv."""
    import keras

    shape, make = DILATED[case]
    layer = make(keras)
    layer.build(shape)
    for w in layer.weights:
        w.assign(RNG.standard_normal(w.shape).astype(np.float32))
    result = tf2torch.convert(tf.function(lambda x: layer(x), input_signature=[tf.TensorSpec(shape, tf.float32)]))
    assert "dilation=" in result.source_code
    if len(shape) == 4:
        assert "permute" not in forward_source(result.source_code)
    assert_matches(result, batch_sizes=(3, 2))


def _sliding_window(x):
    """Gemma's sliding-window mask: a band as wide as `min(steps, window - 1)`, known at run time."""
    band = tf.minimum(tf.shape(x)[1], 2)
    return tf.linalg.band_part(x, band, tf.shape(x)[2] // 2)


def test_band_part_with_run_time_bounds_matches_at_several_sizes():
    fn = tf.function(_sliding_window, input_signature=[tf.TensorSpec((None, None, None), tf.float32)])
    result = tf2torch.convert(fn)
    assert "torch.tril(" in result.source_code and "torch.triu(" in result.source_code
    rng = np.random.default_rng(0)
    for shape in ((3, 7, 9), (2, 1, 3), (2, 5, 4)):  # the band narrower and wider than the matrix
        assert_matches(result, inputs=[rng.standard_normal(shape).astype("float32")])


def test_band_part_with_a_run_time_bound_that_may_be_negative_is_refused():
    fn = tf.function(lambda x: tf.linalg.band_part(x, tf.shape(x)[1] - 3, 0),
                     input_signature=[tf.TensorSpec((None, None, None), tf.float32)])
    with pytest.raises(ConversionError, match="MatrixBandPart.*may be negative"):
        tf2torch.convert(fn)

"""A sweep of keras.ops lowered by TensorFlow: each call (representative, non-default arguments,
odd sizes) is traced with tf.function, converted op by op through the TF frontend and compared
with TensorFlow's output at two batch sizes (marked slow: the direct op tests are in test_tf_ops.py). What does not convert yet is listed in
EXPECTED_UNSUPPORTED with the reason: such an op must fail with a clear ConversionError (never
a wrong result), and the test fails when one starts working, so the list stays exact.

Run this file as a script for the count: `python tests/frontends/tf/test_keras_ops_sweep.py`.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "tensorflow":
    pytest.skip("the sweep traces keras.ops with the TensorFlow backend", allow_module_level=True)

import tf2torch

ops = keras.ops
RNG = np.random.default_rng(7)
SEQ = (None, 5, 7)
IMG = (None, 9, 11, 4)


def _w(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


W75, W77, W3 = _w(7, 5), _w(7, 7), _w(7)
K = _w(3, 3, 4, 6)
DK = _w(3, 3, 4, 2)
PK = _w(1, 1, 8, 5)
KT = _w(3, 3, 5, 4)  # conv_transpose kernel (h, w, out, in)
IDS = np.array([0, 0, 1, 3, 3], np.int32)  # sorted segment ids over the 5 steps


def _ints(x, n=4):
    return ops.cast(ops.abs(x) * 3, "int32") % n


def _steps_first(x):
    return ops.transpose(x, (1, 0, 2))  # (steps, batch, features): segment ops work on axis 0


# name -> (input shape, function of the input)
SWEEP = {
    # elementwise math
    "abs": (SEQ, lambda x: ops.abs(x)),
    "add": (SEQ, lambda x: ops.add(x, W3)),
    "arccos": (SEQ, lambda x: ops.arccos(ops.tanh(x))),
    "arccosh": (SEQ, lambda x: ops.arccosh(ops.abs(x) + 1.5)),
    "arcsin": (SEQ, lambda x: ops.arcsin(ops.tanh(x))),
    "arcsinh": (SEQ, lambda x: ops.arcsinh(x)),
    "arctan": (SEQ, lambda x: ops.arctan(x)),
    "arctan2": (SEQ, lambda x: ops.arctan2(x, x[:, ::-1] + 0.3)),
    "arctanh": (SEQ, lambda x: ops.arctanh(ops.tanh(x) * 0.9)),
    "cbrt": (SEQ, lambda x: ops.cbrt(x)),
    "ceil": (SEQ, lambda x: ops.ceil(x * 3)),
    "clip": (SEQ, lambda x: ops.clip(x, -0.4, 0.9)),
    "cos": (SEQ, lambda x: ops.cos(x)),
    "cosh": (SEQ, lambda x: ops.cosh(x)),
    "deg2rad": (SEQ, lambda x: ops.deg2rad(x * 90.0)),
    "divide": (SEQ, lambda x: ops.divide(x, ops.abs(x) + 0.5)),
    "divide_no_nan": (SEQ, lambda x: ops.divide_no_nan(x, ops.relu(x))),
    "erf": (SEQ, lambda x: ops.erf(x)),
    "erfinv": (SEQ, lambda x: ops.erfinv(ops.tanh(x) * 0.9)),
    "exp": (SEQ, lambda x: ops.exp(x)),
    "exp2": (SEQ, lambda x: ops.exp2(x)),
    "expm1": (SEQ, lambda x: ops.expm1(x)),
    "floor": (SEQ, lambda x: ops.floor(x * 3)),
    "floor_divide": (SEQ, lambda x: ops.floor_divide(x * 5, 1.5)),
    "fmod": (SEQ, lambda x: ops.fmod(x * 5, 1.5)),
    "hypot": (SEQ, lambda x: ops.hypot(x, x * 2.0 + 1.0)),
    "log": (SEQ, lambda x: ops.log(ops.abs(x) + 0.1)),
    "log10": (SEQ, lambda x: ops.log10(ops.abs(x) + 0.1)),
    "log1p": (SEQ, lambda x: ops.log1p(ops.abs(x))),
    "log2": (SEQ, lambda x: ops.log2(ops.abs(x) + 0.1)),
    "logaddexp": (SEQ, lambda x: ops.logaddexp(x, x * 0.5)),
    "maximum": (SEQ, lambda x: ops.maximum(x, W3)),
    "minimum": (SEQ, lambda x: ops.minimum(x, 0.2)),
    "mod": (SEQ, lambda x: ops.mod(x * 5, 1.5)),
    "multiply": (SEQ, lambda x: ops.multiply(x, W3)),
    "nan_to_num": (SEQ, lambda x: ops.nan_to_num(ops.log(x), nan=0.5, neginf=-2.0)),
    "negative": (SEQ, lambda x: ops.negative(x)),
    "power": (SEQ, lambda x: ops.power(ops.abs(x), 1.7)),
    "reciprocal": (SEQ, lambda x: ops.reciprocal(ops.abs(x) + 1.0)),
    "round": (SEQ, lambda x: ops.round(x * 3)),
    "rsqrt": (SEQ, lambda x: ops.rsqrt(ops.abs(x) + 0.5)),
    "sign": (SEQ, lambda x: ops.sign(x)),
    "sin": (SEQ, lambda x: ops.sin(x)),
    "sinh": (SEQ, lambda x: ops.sinh(x)),
    "sqrt": (SEQ, lambda x: ops.sqrt(ops.abs(x))),
    "square": (SEQ, lambda x: ops.square(x)),
    "subtract": (SEQ, lambda x: ops.subtract(1.0, x)),
    "tan": (SEQ, lambda x: ops.tan(x * 0.5)),
    "tanh": (SEQ, lambda x: ops.tanh(x)),
    "trunc": (SEQ, lambda x: ops.trunc(x * 3)),
    "true_divide": (SEQ, lambda x: ops.true_divide(x, 3.0)),
    "where": (SEQ, lambda x: ops.where(x > 0.2, x, -x * 2.0)),
    "comparisons": (SEQ, lambda x: ops.cast(ops.logical_and(ops.greater_equal(x, -0.5), ops.less(x, 0.5)), "float32")
                    + ops.cast(ops.logical_or(ops.equal(ops.round(x), 0.0), ops.not_equal(x, x)), "float32")),
    "logical_xor": (SEQ, lambda x: ops.cast(ops.logical_xor(x > 0, x > 0.5), "float32")),
    "isnan_isinf_isfinite": (SEQ, lambda x: ops.cast(ops.isfinite(ops.log(x)), "float32")
                             + ops.cast(ops.isnan(ops.log(x)), "float32")),
    # activations (keras.ops.nn)
    "celu": (SEQ, lambda x: ops.celu(x, alpha=0.7)),
    "elu": (SEQ, lambda x: ops.elu(x, alpha=0.5)),
    "gelu_exact": (SEQ, lambda x: ops.gelu(x, approximate=False)),
    "gelu_tanh": (SEQ, lambda x: ops.gelu(x)),
    "glu": (SEQ, lambda x: ops.glu(x[..., :6])),
    "hard_sigmoid": (SEQ, lambda x: ops.hard_sigmoid(x * 3)),
    "hard_silu": (SEQ, lambda x: ops.hard_silu(x * 3)),
    "hard_tanh": (SEQ, lambda x: ops.hard_tanh(x * 2)),
    "leaky_relu": (SEQ, lambda x: ops.leaky_relu(x, negative_slope=0.15)),
    "log_sigmoid": (SEQ, lambda x: ops.log_sigmoid(x)),
    "log_softmax": (SEQ, lambda x: ops.log_softmax(x, axis=1)),
    "relu": (SEQ, lambda x: ops.relu(x)),
    "relu6": (SEQ, lambda x: ops.relu6(x * 4)),
    "selu": (SEQ, lambda x: ops.selu(x)),
    "sigmoid": (SEQ, lambda x: ops.sigmoid(x)),
    "silu": (SEQ, lambda x: ops.silu(x)),
    "soft_shrink": (SEQ, lambda x: ops.soft_shrink(x, 0.3)),
    "softmax": (SEQ, lambda x: ops.softmax(x, axis=-1)),
    "softplus": (SEQ, lambda x: ops.softplus(x)),
    "softsign": (SEQ, lambda x: ops.softsign(x)),
    "sparse_plus": (SEQ, lambda x: ops.sparse_plus(x)),
    "squareplus": (SEQ, lambda x: ops.squareplus(x, b=2)),
    "tanh_shrink": (SEQ, lambda x: ops.tanh_shrink(x)),
    "threshold": (SEQ, lambda x: ops.threshold(x, 0.2, -1.0)),
    # reductions and scans
    "all_any": (SEQ, lambda x: ops.cast(ops.all(x > -1.0, axis=1), "float32") + ops.cast(ops.any(x > 1.0, axis=1), "float32")),
    "amax_amin": (SEQ, lambda x: ops.amax(x, axis=1) - ops.amin(x, axis=1)),
    "argmax_argmin": (SEQ, lambda x: ops.cast(ops.argmax(x, axis=-1) + ops.argmin(x, axis=1)[:, :1], "float32")),
    "argsort": (SEQ, lambda x: ops.cast(ops.argsort(x, axis=-1), "float32")),
    "count_nonzero": (SEQ, lambda x: ops.cast(ops.count_nonzero(ops.relu(x), axis=1), "float32")),
    "cumprod": (SEQ, lambda x: ops.cumprod(x * 0.5 + 1.0, axis=1)),
    "cumsum": (SEQ, lambda x: ops.cumsum(x, axis=-1)),
    "logsumexp": (SEQ, lambda x: ops.logsumexp(x, axis=-1, keepdims=True)),
    "max_min": (SEQ, lambda x: ops.max(x, axis=(1, 2)) + ops.min(x, axis=-1, keepdims=True)[:, 0, 0]),
    "mean": (SEQ, lambda x: ops.mean(x, axis=1, keepdims=True)),
    "median": (SEQ, lambda x: ops.median(x, axis=-1)),
    "moments": (SEQ, lambda x: ops.concatenate(ops.moments(x, axes=[1], keepdims=False), axis=-1)),
    "norm": (SEQ, lambda x: ops.norm(x, axis=-1)),
    "prod": (SEQ, lambda x: ops.prod(x, axis=1)),
    "sort": (SEQ, lambda x: ops.sort(x, axis=-1)),
    "std_var": (SEQ, lambda x: ops.std(x, axis=-1) + ops.var(x, axis=1)[:, :5]),
    "sum": (SEQ, lambda x: ops.sum(x, axis=[0, 2])),
    "top_k": (SEQ, lambda x: ops.top_k(x, 3)[0]),
    "average_weighted": (SEQ, lambda x: ops.average(x, axis=-1, weights=W3)),
    # linear algebra
    "dot": (SEQ, lambda x: ops.dot(x, W75)),
    "einsum_bilinear": (SEQ, lambda x: ops.einsum("bsi,ij,btj->bst", x, W77, x)),
    "matmul": (SEQ, lambda x: ops.matmul(x, ops.transpose(x, (0, 2, 1)))),
    "outer": ((None, 7), lambda x: ops.outer(x[0], W3)[None] + x[:, :, None]),
    "tensordot": (SEQ, lambda x: ops.tensordot(x, W75, axes=1)),
    "trace": (SEQ, lambda x: ops.trace(x[:, :, :5], axis1=1, axis2=2)),
    "tril_triu": (SEQ, lambda x: ops.tril(x, k=1) + ops.triu(x, k=-1)),
    "vdot_inner": (SEQ, lambda x: ops.inner(x, W3)),
    "cross": ((None, 5, 3), lambda x: ops.cross(x, x[:, ::-1])),
    "diagonal": (SEQ, lambda x: ops.diagonal(x, axis1=1, axis2=2)),
    "det": ((None, 3, 3), lambda x: ops.linalg.det(x)),
    # shapes and indexing
    "append": (SEQ, lambda x: ops.append(x, x[:, :2], axis=1)),
    "broadcast_to": (SEQ, lambda x: ops.broadcast_to(W3, ops.shape(x)) + x),
    "concatenate": (SEQ, lambda x: ops.concatenate([x, x * 2], axis=-1)),
    "diff": (SEQ, lambda x: ops.diff(x, axis=1)),
    "expand_dims_squeeze": (SEQ, lambda x: ops.squeeze(ops.expand_dims(x, 2), axis=2)),
    "flip": (SEQ, lambda x: ops.flip(x, axis=1)),
    "full_like_ones_zeros_like": (SEQ, lambda x: ops.full_like(x, 0.3) + ops.ones_like(x) + ops.zeros_like(x)),
    "hstack_vstack": (SEQ, lambda x: ops.hstack([x, x]) + 1.0),
    "moveaxis": (SEQ, lambda x: ops.moveaxis(x, 1, -1)),
    "pad": (SEQ, lambda x: ops.pad(x, [[0, 0], [1, 2], [0, 3]], constant_values=0.5)),
    "pad_reflect": (SEQ, lambda x: ops.pad(x, [[0, 0], [1, 2], [2, 1]], mode="reflect")),
    "pad_symmetric": (SEQ, lambda x: ops.pad(x, [[0, 0], [1, 2], [2, 1]], mode="symmetric")),
    "ravel_reshape": (SEQ, lambda x: ops.reshape(x, (-1, 7, 5))),
    "repeat": (SEQ, lambda x: ops.repeat(x, 2, axis=1)),
    "roll": (SEQ, lambda x: ops.roll(x, shift=2, axis=1) + ops.roll(x, shift=-3, axis=-1)),
    "rot90": (SEQ, lambda x: ops.rot90(x[:, :, :5], k=1, axes=(1, 2))),
    "slice": (SEQ, lambda x: ops.slice(x, (0, 1, 2), (ops.shape(x)[0], 3, 4))),
    "split": (SEQ, lambda x: ops.split(x, [2, 4], axis=-1)[1]),
    "stack_unstack": (SEQ, lambda x: ops.stack(ops.unstack(x, axis=1)[::-1], axis=1)),
    "swapaxes": (SEQ, lambda x: ops.swapaxes(x, 1, 2)),
    "take": (SEQ, lambda x: ops.take(x, np.array([4, 0, 2, 2]), axis=2)),
    "take_along_axis": (SEQ, lambda x: ops.take_along_axis(x, ops.argsort(x, axis=-1), axis=-1)),
    "tile": (SEQ, lambda x: ops.tile(x, (1, 2, 3))),
    "transpose": (SEQ, lambda x: ops.transpose(x, (0, 2, 1))),
    "one_hot": (SEQ, lambda x: ops.one_hot(_ints(x[:, :, 0]), 4)),
    "multi_hot": (SEQ, lambda x: ops.multi_hot(_ints(x[:, :, :3]), 4)),
    "arange_shape": (SEQ, lambda x: x * ops.cast(ops.arange(7), "float32")),
    "eye_tri": (SEQ, lambda x: ops.matmul(x, ops.eye(7) * 2.0) + ops.tri(5, 7)),
    "linspace": (SEQ, lambda x: x * ops.linspace(0.5, 2.0, 7)),
    "get_item": (SEQ, lambda x: x[:, 1:4, ::2] * x[:, -1:, :4]),
    "scatter_update": (SEQ, lambda x: ops.scatter_update(x, [[0, 1, 2]], [5.0])),
    "slice_update": (SEQ, lambda x: ops.slice_update(x, (0, 1, 2), ops.ones_like(x[:, :2, :3]))),
    "segment_sum": (SEQ, lambda x: ops.segment_sum(_steps_first(x), IDS, sorted=True)),
    "segment_max": (SEQ, lambda x: ops.segment_max(_steps_first(x), IDS, sorted=True)),
    "segment_sum_unsorted": (SEQ, lambda x: ops.segment_sum(_steps_first(x), IDS[::-1], num_segments=5)),
    "segment_max_unsorted": (SEQ, lambda x: ops.segment_max(_steps_first(x), IDS[::-1], num_segments=5)),
    "rearrange": (SEQ, lambda x: ops.rearrange(x, "b s f -> b f s")),
    "searchsorted": (SEQ, lambda x: ops.cast(ops.searchsorted(np.linspace(-2, 2, 9).astype(np.float32),
                                                               ops.reshape(x, (-1,))), "float32")),
    "unravel_index_digitize": (SEQ, lambda x: ops.cast(ops.digitize(x, np.array([-1.0, 0.0, 1.0], np.float32)), "float32")),
    "extract_sequences": ((None, 20), lambda x: ops.extract_sequences(x, 6, 3)),
    # neural network ops
    "conv_same_strided": (IMG, lambda x: ops.conv(x, K, strides=2, padding="same")),
    "conv_dilated": (IMG, lambda x: ops.conv(x, K, dilation_rate=2)),
    "conv1d": (SEQ, lambda x: ops.conv(x, _w(3, 7, 4), padding="same")),
    "depthwise_conv": (IMG, lambda x: ops.depthwise_conv(x, DK, strides=1, padding="same")),
    "separable_conv": (IMG, lambda x: ops.separable_conv(x, DK, PK, padding="same")),
    "conv_transpose": ((None, 5, 6, 4), lambda x: ops.conv_transpose(x, KT, strides=2, padding="same")),
    "max_pool": (IMG, lambda x: ops.max_pool(x, 3, strides=2, padding="same")),
    "average_pool": (IMG, lambda x: ops.average_pool(x, (2, 3), strides=(2, 1))),
    "adaptive_average_pool": (IMG, lambda x: ops.adaptive_average_pool(x, (3, 4))),
    "batch_normalization": (SEQ, lambda x: ops.batch_normalization(x, W3, ops.abs(W3) + 0.5, axis=-1, offset=W3,
                                                                   scale=W3 * 2, epsilon=1e-3)),
    "layer_normalization": (SEQ, lambda x: ops.layer_normalization(x, gamma=W3, beta=W3 * 0.1, epsilon=1e-4)),
    "rms_normalization": (SEQ, lambda x: ops.rms_normalization(x, scale=W3, epsilon=1e-5)),
    "normalize": (SEQ, lambda x: ops.normalize(x, axis=-1)),
    "dot_product_attention": ((None, 5, 2, 4), lambda x: ops.dot_product_attention(x, x * 0.5, x)),
    "dot_product_attention_causal": ((None, 5, 2, 4), lambda x: ops.dot_product_attention(x, x, x * 2.0, is_causal=True)),
    "psnr": (SEQ, lambda x: ops.psnr(ops.sigmoid(x), ops.sigmoid(x * 1.1), 1.0)[None] + x[:, 0, 0]),
    "depth_to_space": ((None, 3, 5, 8), lambda x: ops.depth_to_space(x, 2)),
    "space_to_depth": ((None, 6, 10, 3), lambda x: ops.space_to_depth(x, 2)),
    # image ops
    "resize_bilinear": (IMG, lambda x: ops.image.resize(x, (13, 7), interpolation="bilinear")),
    "resize_nearest": (IMG, lambda x: ops.image.resize(x, (19, 23), interpolation="nearest")),
    "resize_bicubic": (IMG, lambda x: ops.image.resize(x, (13, 17), interpolation="bicubic")),
    "resize_bilinear_antialias": (IMG, lambda x: ops.image.resize(x, (5, 6), interpolation="bilinear", antialias=True)),
    "resize_lanczos3": (IMG, lambda x: ops.image.resize(x, (13, 17), interpolation="lanczos3")),
    "resize_crop_to_aspect_ratio": (IMG, lambda x: ops.image.resize(x, (8, 8), crop_to_aspect_ratio=True)),
    "extract_patches": (IMG, lambda x: ops.image.extract_patches(x, 3, strides=(2, 3))),
    "extract_patches_same": (IMG, lambda x: ops.image.extract_patches(x, (2, 3), padding="same")),
    "rgb_to_grayscale": (IMG, lambda x: ops.image.rgb_to_grayscale(x[..., :3])),
    "rgb_to_hsv": (IMG, lambda x: ops.image.rgb_to_hsv(ops.sigmoid(x[..., :3]))),
    "affine_transform": (IMG, lambda x: ops.image.affine_transform(x, np.array([[1.1, 0.1, -1, 0.05, 0.9, 1, 0, 0]],
                                                                               np.float32))),
    # control flow and misc
    "cond": (SEQ, lambda x: ops.cond(ops.sum(x) > 0, lambda: x * 2.0, lambda: ops.sin(x))),
    "fori_loop": (SEQ, lambda x: ops.fori_loop(0, 3, lambda i, v: ops.sin(v) + x, x)),
    "stop_gradient": (SEQ, lambda x: ops.stop_gradient(x) * 2.0),
    "cast_saturate": (SEQ, lambda x: ops.cast(ops.saturate_cast(x * 300.0, "uint8"), "float32")),
    "fft_real": ((None, 8), lambda x: ops.rfft(x)[0]),
    "fft2": ((None, 5, 6), lambda x: ops.fft2((x, ops.zeros_like(x)))[1]),
    "irfft": ((None, 3, 7), lambda x: ops.irfft((x, x * 0.5), fft_length=11)),
    "in_top_k": (SEQ, lambda x: ops.cast(ops.in_top_k(_ints(x[:, 0, :1])[:, 0], x[:, 0], 2), "float32")),
}

EXPECTED_UNSUPPORTED = {
    "affine_transform": "ImageProjectiveTransformV3: no converter yet (grid_sample with TF's fill modes)",
    "argmax_argmin": "Bitcast: Keras' NaN-aware argmax reads float bits as ints",
    "extract_sequences": "frame(): a strided slice whose bounds are a run-time tensor, not a shape value",
    "median": "a reshape to a shape computed by tensor ops (not shape arithmetic)",
    "rgb_to_hsv": "RGBToHSV: no converter yet",
}


def _inputs(shape, batch: int) -> list[np.ndarray]:
    return [np.random.default_rng(batch).standard_normal((batch,) + tuple(shape[1:])).astype(np.float32)]


def convert_case(name: str):
    shape, body = SWEEP[name]
    fn = tf.function(body, input_signature=[tf.TensorSpec(shape, tf.float32)])
    return tf2torch.convert(fn), shape


def check_case(name: str) -> None:
    result, shape = convert_case(name)
    for batch in (3, 2):
        report = result.verify(_inputs(shape, batch), tolerance=1e-5)
        assert report.outputs, "verification compared nothing"
        assert report.ok, report.table()


@pytest.mark.slow  # about 180 conversions: run with `make test-all` (or -m slow)
@pytest.mark.parametrize("name", sorted(SWEEP))
def test_keras_op(name):
    if name not in EXPECTED_UNSUPPORTED:
        check_case(name)
        return
    try:
        convert_case(name)
    except tf2torch.ConversionError:
        return  # refused with a clear error, as listed
    pytest.fail(f"keras.ops case {name!r} converts now: remove it from EXPECTED_UNSUPPORTED and check it")


def test_expected_unsupported_names_are_sweep_cases():
    assert set(EXPECTED_UNSUPPORTED) <= set(SWEEP)


if __name__ == "__main__":  # coverage count: supported / total, and every failure's first line
    supported, failures = 0, {}
    for case in sorted(SWEEP):
        try:
            check_case(case)
            supported += 1
        except Exception as exc:  # noqa: BLE001  (a count, not a test)
            detail = sorted(getattr(exc, "ops", {})) or str(exc).strip().splitlines()[0][:150]
            failures[case] = f"{type(exc).__name__}: {detail}"
    for case, why in failures.items():
        print(f"{case}: {why}")
    print(f"supported {supported}/{len(SWEEP)}")
    sys.exit(0)

"""Merge layers, Rescaling and Identity against TensorFlow's output."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import convert_and_compare

MERGES = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]
SHAPES = {"2d": (11,), "3d": (23, 5), "4d": (13, 17, 3), "5d": (5, 7, 9, 3)}
CASES = [(m, s, n) for m in MERGES for s in SHAPES for n in ((2,) if m == "Subtract" else (2, 3))]


@pytest.mark.parametrize("merge,shape_id,n", CASES, ids=[f"{m}-{s}-{n}in" for m, s, n in CASES])
def test_elementwise_merge(keras, tmp_path, merge, shape_id, n):
    shape = SHAPES[shape_id]
    inputs = [keras.Input(shape) for _ in range(n)]
    out = getattr(keras.layers, merge)()(inputs)
    convert_and_compare(keras.Model(inputs, out), tmp_path)


@pytest.mark.parametrize("merge", MERGES)
def test_merge_of_conv_and_input(keras, tmp_path, merge):
    """One operand NCHW from a conv, the other the raw (NCHW) input."""
    inp = keras.Input((13, 17, 3))
    x = keras.layers.Conv2D(3, 3, padding="same")(inp)
    out = getattr(keras.layers, merge)()([x, inp])
    convert_and_compare(keras.Model(inp, out), tmp_path)


@pytest.mark.parametrize("merge", ["Add", "Multiply", "Maximum"])
def test_merge_mixed_layouts(keras, tmp_path, merge):
    """A conv output (NCHW) merged with a Dense output (Keras layout) on the same 4D shape."""
    inp = keras.Input((13, 17, 3))
    a = keras.layers.Conv2D(4, 3, padding="same")(inp)
    b = keras.layers.Dense(4)(inp)
    out = getattr(keras.layers, merge)()([a, b])
    out = keras.layers.Conv2D(2, 1)(out)
    convert_and_compare(keras.Model(inp, out), tmp_path)


def test_subtract_three_inputs_rejected_by_keras(keras):
    with pytest.raises(ValueError):
        keras.layers.Subtract()([keras.Input((4,)) for _ in range(3)])


CONCAT_CASES = {
    "4d_last": ((13, 17, 3), (13, 17, 5), -1),
    "4d_axis3": ((13, 17, 3), (13, 17, 2), 3),
    "4d_axis1": ((13, 17, 3), (4, 17, 3), 1),
    "4d_axis2": ((13, 17, 3), (13, 6, 3), 2),
    "4d_axis_minus3": ((13, 17, 3), (2, 17, 3), -3),
    "3d_last": ((23, 5), (23, 2), -1),
    "3d_axis1": ((23, 5), (7, 5), 1),
    "2d": ((11,), (4,), -1),
    "5d_last": ((5, 7, 9, 3), (5, 7, 9, 2), -1),
    "5d_axis2": ((5, 7, 9, 3), (5, 3, 9, 3), 2),
}


@pytest.mark.parametrize("case", list(CONCAT_CASES.values()), ids=list(CONCAT_CASES))
def test_concatenate(keras, tmp_path, case):
    s1, s2, axis = case
    a, b = keras.Input(s1), keras.Input(s2)
    out = keras.layers.Concatenate(axis=axis)([a, b])
    convert_and_compare(keras.Model([a, b], out), tmp_path)


@pytest.mark.parametrize("axis", [-1, 1, 2], ids=["last", "axis1", "axis2"])
def test_concatenate_after_conv(keras, tmp_path, axis):
    inp = keras.Input((13, 17, 3))
    a = keras.layers.Conv2D(4, 3, padding="same")(inp)
    b = keras.layers.Conv2D(4, 3, padding="same")(inp)
    c = keras.layers.Conv2D(4, 1)(inp)
    out = keras.layers.Concatenate(axis=axis)([a, b, c])
    out = keras.layers.Conv2D(2, 3)(out)
    convert_and_compare(keras.Model(inp, out), tmp_path)


DOT_CASES = {
    "2d_axes1": ((11,), (11,), 1, False),
    "2d_axes1_normalize": ((11,), (11,), 1, True),
    "3d_axes1": ((23, 5), (23, 4), 1, False),
    "3d_axes2": ((23, 5), (7, 5), 2, False),
    "3d_axes_1_2": ((23, 5), (4, 23), (1, 2), False),
    "3d_axes_2_1": ((23, 5), (5, 6), (2, 1), False),
    "3d_axes_1_2_normalize": ((23, 5), (4, 23), (1, 2), True),
    "3d_axes1_normalize": ((23, 5), (23, 4), 1, True),
    "3d_axes_neg": ((23, 5), (6, 5), -1, True),
}


@pytest.mark.parametrize("case", list(DOT_CASES.values()), ids=list(DOT_CASES))
def test_dot(keras, tmp_path, case):
    s1, s2, axes, normalize = case
    a, b = keras.Input(s1), keras.Input(s2)
    out = keras.layers.Dot(axes=axes, normalize=normalize)([a, b])
    convert_and_compare(keras.Model([a, b], out), tmp_path)


RESCALE_CASES = {
    "scale": ((13, 17, 3), {"scale": 1 / 255.0}),
    "scale_offset": ((13, 17, 3), {"scale": 0.5, "offset": -1.0}),
    "offset_only": ((23, 5), {"scale": 1.0, "offset": 2.5}),
    "per_channel_4d": ((13, 17, 3), {"scale": [0.5, 2.0, -1.0], "offset": [0.1, -0.2, 0.3]}),
    "per_channel_scale_only_3d": ((23, 5), {"scale": [1.0, 2.0, 3.0, 4.0, 5.0]}),
    "per_channel_offset_2d": ((4,), {"scale": 2.0, "offset": [1.0, 2.0, 3.0, 4.0]}),
    "per_channel_5d": ((5, 7, 9, 3), {"scale": [0.5, 2.0, -1.0], "offset": 0.25}),
}


@pytest.mark.parametrize("case", list(RESCALE_CASES.values()), ids=list(RESCALE_CASES))
def test_rescaling(keras, tmp_path, case):
    shape, kwargs = case
    inp = keras.Input(shape)
    out = keras.layers.Rescaling(**kwargs)(inp)
    convert_and_compare(keras.Model(inp, out), tmp_path)


def test_rescaling_per_channel_after_conv(keras, tmp_path):
    inp = keras.Input((13, 17, 3))
    x = keras.layers.Conv2D(4, 3)(inp)
    x = keras.layers.Rescaling([1.0, -2.0, 0.5, 3.0], offset=[0.0, 1.0, 2.0, 3.0])(x)
    convert_and_compare(keras.Model(inp, x), tmp_path)


def test_rescaling_int_input(keras, tmp_path):
    inp = keras.Input((13, 17, 3), dtype="uint8")
    out = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    x = np.random.default_rng(0).integers(0, 256, (3, 13, 17, 3)).astype(np.uint8)
    convert_and_compare(keras.Model(inp, out), tmp_path, inputs=[x])


@pytest.mark.parametrize("shape", [(13, 17, 3), (23, 5)], ids=["4d", "3d"])
def test_identity(keras, tmp_path, shape):
    inp = keras.Input(shape)
    x = keras.layers.Identity()(inp)
    x = keras.layers.Dense(3)(x)
    x = keras.layers.Identity()(x)
    convert_and_compare(keras.Model(inp, x), tmp_path)


def test_k2_merges_h5(tmp_path):
    import tf_keras

    a, b, c = (tf_keras.Input((13, 17, 3)) for _ in range(3))
    x = tf_keras.layers.Add()([a, b, c])
    y = tf_keras.layers.Concatenate(axis=1)([x, tf_keras.layers.Maximum()([a, b])])
    z = tf_keras.layers.Average()([a, c])
    out = tf_keras.layers.Concatenate(axis=1)([y, z])
    convert_and_compare(tf_keras.Model([a, b, c], out), tmp_path, suffix=".h5")

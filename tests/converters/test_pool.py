"""Pooling layers against TensorFlow: valid/same, strides != pool size, asymmetric 'same', global pooling."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import convert_and_compare

# (id, Keras class name, layer kwargs, input shape without batch)
POOL_CASES = [
    # 1D
    ("max1d_default", "MaxPooling1D", {}, (23, 4)),
    ("max1d_p3_s2_valid", "MaxPooling1D", {"pool_size": 3, "strides": 2}, (23, 4)),
    ("max1d_p2_same_odd", "MaxPooling1D", {"pool_size": 2, "padding": "same"}, (23, 4)),
    ("max1d_p3_s2_same", "MaxPooling1D", {"pool_size": 3, "strides": 2, "padding": "same"}, (22, 4)),
    ("avg1d_p3_s2_valid", "AveragePooling1D", {"pool_size": 3, "strides": 2}, (23, 4)),
    ("avg1d_p2_same_odd", "AveragePooling1D", {"pool_size": 2, "padding": "same"}, (23, 4)),
    ("avg1d_p3_s1_same", "AveragePooling1D", {"pool_size": 3, "strides": 1, "padding": "same"}, (23, 4)),
    ("avg1d_p4_s3_same", "AveragePooling1D", {"pool_size": 4, "strides": 3, "padding": "same"}, (23, 4)),
    # 2D
    ("max2d_default_odd", "MaxPooling2D", {}, (13, 17, 3)),
    ("max2d_p3_s2_valid", "MaxPooling2D", {"pool_size": 3, "strides": 2}, (13, 17, 3)),
    ("max2d_p2x3_s1x2_valid", "MaxPooling2D", {"pool_size": (2, 3), "strides": (1, 2)}, (13, 17, 3)),
    ("max2d_p2_same_odd", "MaxPooling2D", {"pool_size": 2, "padding": "same"}, (13, 17, 3)),
    ("max2d_p3_s2_same_odd", "MaxPooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}, (13, 17, 3)),
    ("max2d_p3_s2_same_even", "MaxPooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}, (12, 16, 3)),
    ("max2d_p3_s1_same", "MaxPooling2D", {"pool_size": 3, "strides": 1, "padding": "same"}, (13, 17, 3)),
    ("avg2d_p3_s2_valid", "AveragePooling2D", {"pool_size": 3, "strides": 2}, (13, 17, 3)),
    ("avg2d_p2_same_odd", "AveragePooling2D", {"pool_size": 2, "padding": "same"}, (13, 17, 3)),
    ("avg2d_p3_s2_same_odd", "AveragePooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}, (13, 17, 3)),
    ("avg2d_p3_s2_same_even", "AveragePooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}, (12, 16, 3)),
    ("avg2d_p3_s1_same", "AveragePooling2D", {"pool_size": 3, "strides": 1, "padding": "same"}, (13, 17, 3)),
    (
        "avg2d_p2x3_s3x1_same",
        "AveragePooling2D",
        {"pool_size": (2, 3), "strides": (3, 1), "padding": "same"},
        (13, 17, 3),
    ),
    ("avg2d_p4_s1_same", "AveragePooling2D", {"pool_size": 4, "strides": 1, "padding": "same"}, (13, 17, 3)),
    # 3D
    ("max3d_default", "MaxPooling3D", {}, (9, 11, 7, 2)),
    ("max3d_p3_s2_same", "MaxPooling3D", {"pool_size": 3, "strides": 2, "padding": "same"}, (9, 11, 7, 2)),
    ("max3d_p2_same", "MaxPooling3D", {"pool_size": 2, "padding": "same"}, (9, 11, 7, 2)),
    ("avg3d_p3_s2_valid", "AveragePooling3D", {"pool_size": 3, "strides": 2}, (9, 11, 7, 2)),
    ("avg3d_p2_same", "AveragePooling3D", {"pool_size": 2, "padding": "same"}, (9, 11, 7, 2)),
    (
        "avg3d_p2x3x2_s1x2x3_same",
        "AveragePooling3D",
        {"pool_size": (2, 3, 2), "strides": (1, 2, 3), "padding": "same"},
        (9, 11, 7, 2),
    ),
]


@pytest.mark.parametrize(("cls", "kwargs", "shape"), [c[1:] for c in POOL_CASES], ids=[c[0] for c in POOL_CASES])
def test_pool_layer(keras, tmp_path, cls, kwargs, shape):
    layer = getattr(keras.layers, cls)(**kwargs)
    inp = keras.Input(shape)
    model = keras.Model(inp, layer(inp))
    convert_and_compare(model, tmp_path, batch_size=3)


def test_conv_then_avg_pool_same(keras, tmp_path):
    """A pooled conv feature map: negative values make a wrongly counted padding visible."""
    inp = keras.Input((13, 17, 3))
    x = keras.layers.Conv2D(5, 3, strides=2, padding="same")(inp)
    out = keras.layers.AveragePooling2D(2, padding="same")(x)
    convert_and_compare(keras.Model(inp, out), tmp_path, batch_size=2)


GLOBAL_CASES = [
    (f"{cls}_{'keep' if keepdims else 'drop'}", cls, keepdims, shape)
    for cls, shape in [
        ("GlobalAveragePooling1D", (23, 4)),
        ("GlobalAveragePooling2D", (13, 17, 3)),
        ("GlobalAveragePooling3D", (9, 11, 7, 2)),
        ("GlobalMaxPooling1D", (23, 4)),
        ("GlobalMaxPooling2D", (13, 17, 3)),
        ("GlobalMaxPooling3D", (9, 11, 7, 2)),
    ]
    for keepdims in (False, True)
]


@pytest.mark.parametrize(("cls", "keepdims", "shape"), [c[1:] for c in GLOBAL_CASES], ids=[c[0] for c in GLOBAL_CASES])
def test_global_pool_layer(keras, tmp_path, cls, keepdims, shape):
    layer = getattr(keras.layers, cls)(keepdims=keepdims)
    inp = keras.Input(shape)
    model = keras.Model(inp, layer(inp))
    convert_and_compare(model, tmp_path, batch_size=3)


@pytest.mark.parametrize("keepdims", [False, True], ids=["drop", "keep"])
def test_global_avg_pool_then_dense(keras, tmp_path, keepdims):
    """Global pooling output consumed by a Dense (keepdims output stays channels-last for Keras)."""
    inp = keras.Input((13, 17, 3))
    x = keras.layers.Conv2D(4, 3)(inp)
    x = keras.layers.GlobalAveragePooling2D(keepdims=keepdims)(x)
    out = keras.layers.Dense(5)(x)
    convert_and_compare(keras.Model(inp, out), tmp_path, batch_size=3)


# Spatial sizes unknown at conversion time: 'same' padding is computed at run time.
DYNAMIC_CASES = [
    ("max2d_p3_s2_same", "MaxPooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}, (None, None, 3)),
    ("avg2d_p2_same", "AveragePooling2D", {"pool_size": 2, "padding": "same"}, (None, None, 3)),
    ("avg2d_p3_s1_same", "AveragePooling2D", {"pool_size": 3, "strides": 1, "padding": "same"}, (None, None, 3)),
    ("avg1d_p3_s2_same", "AveragePooling1D", {"pool_size": 3, "strides": 2, "padding": "same"}, (None, 3)),
    ("max2d_p3_s2_valid", "MaxPooling2D", {"pool_size": 3, "strides": 2}, (None, None, 3)),
    ("gap2d_keep", "GlobalAveragePooling2D", {"keepdims": True}, (None, None, 3)),
]


@pytest.mark.parametrize(("cls", "kwargs", "shape"), [c[1:] for c in DYNAMIC_CASES], ids=[c[0] for c in DYNAMIC_CASES])
def test_pool_layer_dynamic_size(keras, tmp_path, cls, kwargs, shape):
    layer = getattr(keras.layers, cls)(**kwargs)
    inp = keras.Input(shape)
    model = keras.Model(inp, layer(inp))
    data_shape = (2, 13, 16, 3) if len(shape) == 3 else (2, 23, 3)
    x = np.random.default_rng(1).normal(size=data_shape).astype(np.float32)
    convert_and_compare(model, tmp_path, inputs=[x])


@pytest.mark.parametrize(
    "layer, shape, size",
    [
        ("AdaptiveAveragePooling1D", (23, 3), 5),
        ("AdaptiveMaxPooling1D", (23, 3), 7),
        ("AdaptiveAveragePooling2D", (13, 17, 3), (4, 5)),
        ("AdaptiveMaxPooling2D", (13, 17, 3), 3),
        ("AdaptiveAveragePooling3D", (5, 7, 9, 2), (2, 3, 4)),
        ("AdaptiveMaxPooling3D", (5, 7, 9, 2), 2),
    ],
)
def test_adaptive_pooling(keras, tmp_path, layer, shape, size):
    inp = keras.Input(shape)
    model = keras.Model(inp, getattr(keras.layers, layer)(size)(inp))
    x = np.random.default_rng(0).standard_normal((3,) + shape).astype(np.float32)
    convert_and_compare(model, tmp_path, inputs=[x])


def test_adaptive_pooling_channels_first(keras, tmp_path):
    inp = keras.Input((3, 13, 17))
    model = keras.Model(inp, keras.layers.AdaptiveAveragePooling2D((5, 4), data_format="channels_first")(inp))
    x = np.random.default_rng(0).standard_normal((2, 3, 13, 17)).astype(np.float32)
    convert_and_compare(model, tmp_path, inputs=[x])

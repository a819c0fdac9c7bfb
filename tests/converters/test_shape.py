"""Shape layers against TensorFlow: padding, cropping, upsampling, Flatten, Reshape, Permute."""

from __future__ import annotations

import pytest

from conftest import convert_and_compare

# (id, Keras class name, layer kwargs, input shape without batch)
SHAPE_CASES = [
    ("zeropad1d_int", "ZeroPadding1D", {"padding": 2}, (23, 4)),
    ("zeropad1d_asym", "ZeroPadding1D", {"padding": (1, 3)}, (23, 4)),
    ("zeropad2d_int", "ZeroPadding2D", {"padding": 2}, (13, 17, 3)),
    ("zeropad2d_pair", "ZeroPadding2D", {"padding": (1, 3)}, (13, 17, 3)),
    ("zeropad2d_asym", "ZeroPadding2D", {"padding": ((0, 2), (3, 1))}, (13, 17, 3)),
    ("zeropad3d_asym", "ZeroPadding3D", {"padding": ((1, 0), (0, 2), (2, 1))}, (9, 11, 7, 2)),
    ("crop1d_asym", "Cropping1D", {"cropping": (2, 5)}, (23, 4)),
    ("crop1d_left_only", "Cropping1D", {"cropping": (3, 0)}, (23, 4)),
    ("crop2d_int", "Cropping2D", {"cropping": 2}, (13, 17, 3)),
    ("crop2d_pair", "Cropping2D", {"cropping": (1, 4)}, (13, 17, 3)),
    ("crop2d_asym", "Cropping2D", {"cropping": ((0, 3), (4, 1))}, (13, 17, 3)),
    ("crop3d_asym", "Cropping3D", {"cropping": ((1, 2), (0, 3), (2, 0))}, (9, 11, 7, 2)),
    ("upsample1d_3", "UpSampling1D", {"size": 3}, (23, 4)),
    ("upsample2d_nearest_2x3", "UpSampling2D", {"size": (2, 3)}, (13, 17, 3)),
    ("upsample2d_nearest_3", "UpSampling2D", {"size": 3}, (13, 17, 3)),
    ("upsample2d_bilinear_2x3", "UpSampling2D", {"size": (2, 3), "interpolation": "bilinear"}, (13, 17, 3)),
    ("upsample2d_bilinear_3x2", "UpSampling2D", {"size": (3, 2), "interpolation": "bilinear"}, (13, 17, 3)),
    ("upsample3d_1x2x3", "UpSampling3D", {"size": (1, 2, 3)}, (9, 11, 7, 2)),
    ("flatten_output_4d", "Flatten", {}, (13, 17, 3)),
    ("flatten_output_3d", "Flatten", {}, (23, 4)),
    ("reshape_4d_to_3d", "Reshape", {"target_shape": (17, 39)}, (13, 17, 3)),
    ("reshape_4d_minus1", "Reshape", {"target_shape": (-1, 3)}, (13, 17, 3)),
    ("reshape_3d_to_4d", "Reshape", {"target_shape": (23, 2, 2)}, (23, 4)),
    ("reshape_3d_to_4d_minus1", "Reshape", {"target_shape": (-1, 23, 2)}, (23, 4)),
    ("permute_4d", "Permute", {"dims": (2, 1, 3)}, (13, 17, 3)),
    ("permute_4d_channels_first", "Permute", {"dims": (3, 1, 2)}, (13, 17, 3)),
    ("permute_3d", "Permute", {"dims": (2, 1)}, (23, 4)),
]


@pytest.mark.parametrize(("cls", "kwargs", "shape"), [c[1:] for c in SHAPE_CASES], ids=[c[0] for c in SHAPE_CASES])
def test_shape_layer(keras, tmp_path, cls, kwargs, shape):
    layer = getattr(keras.layers, cls)(**kwargs)
    inp = keras.Input(shape)
    model = keras.Model(inp, layer(inp))
    convert_and_compare(model, tmp_path, batch_size=3)


# The same layers after a conv: their input is a channels-first tensor in the torch graph.
AFTER_CONV_CASES = [
    ("zeropad2d_asym", "ZeroPadding2D", {"padding": ((0, 2), (3, 1))}),
    ("crop2d_asym", "Cropping2D", {"cropping": ((0, 3), (4, 1))}),
    ("upsample2d_bilinear_2x3", "UpSampling2D", {"size": (2, 3), "interpolation": "bilinear"}),
    ("flatten", "Flatten", {}),
    ("reshape", "Reshape", {"target_shape": (-1, 5)}),
    ("permute", "Permute", {"dims": (3, 2, 1)}),
]


@pytest.mark.parametrize(("cls", "kwargs"), [c[1:] for c in AFTER_CONV_CASES], ids=[c[0] for c in AFTER_CONV_CASES])
def test_shape_layer_after_conv(keras, tmp_path, cls, kwargs):
    inp = keras.Input((13, 17, 3))
    x = keras.layers.Conv2D(5, 3, padding="same")(inp)
    model = keras.Model(inp, getattr(keras.layers, cls)(**kwargs)(x))
    convert_and_compare(model, tmp_path, batch_size=3)


def _forward_source(source: str) -> str:
    return source.split("def forward", 1)[1].split("\ndef ", 1)[0]


@pytest.mark.parametrize("shape", [(13, 17, 3), (9, 11, 7, 2), (23, 4)], ids=["conv2d", "conv3d", "conv1d"])
def test_flatten_dense_absorbs_order(keras, tmp_path, shape):
    """Flatten of a channels-first map feeding a Dense: the Dense rows are reordered, no permute."""
    rank = len(shape) - 1
    conv = {1: keras.layers.Conv1D, 2: keras.layers.Conv2D, 3: keras.layers.Conv3D}[rank]
    inp = keras.Input(shape)
    x = conv(4, 3, strides=2)(inp)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(7, activation="relu")(x)
    result = convert_and_compare(keras.Model(inp, out), tmp_path, batch_size=3)
    # 1D inputs enter in the Keras (N, L, C) layout, so a permute before the conv is expected.
    after_conv = _forward_source(result.source_code).split("self.conv", 1)[1]
    assert ".permute(" not in after_conv, result.source_code


def test_flatten_dense_through_activation(keras, tmp_path):
    """The feature order passes through an elementwise op between Flatten and Dense."""
    inp = keras.Input((13, 17, 3))
    x = keras.layers.Conv2D(4, 3, strides=2)(inp)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Activation("tanh")(x)
    out = keras.layers.Dense(6)(x)
    result = convert_and_compare(keras.Model(inp, out), tmp_path, batch_size=3)
    assert ".permute(" not in _forward_source(result.source_code), result.source_code


def test_flatten_two_consumers(keras, tmp_path):
    """A flatten that is both a model output and a Dense input must keep the Keras order."""
    inp = keras.Input((13, 17, 3))
    x = keras.layers.Conv2D(4, 3, strides=2)(inp)
    flat = keras.layers.Flatten()(x)
    out = keras.layers.Dense(6)(flat)
    convert_and_compare(keras.Model(inp, [flat, out]), tmp_path, batch_size=3)


@pytest.mark.parametrize("suffix", [".keras", ".h5"], ids=["keras", "h5"])
def test_sequential_conv_pool_flatten_dense(keras, tmp_path, suffix):
    model = keras.Sequential(
        [
            keras.Input((13, 17, 3)),
            keras.layers.ZeroPadding2D(((1, 0), (0, 2))),
            keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2, padding="same"),
            keras.layers.Cropping2D(((1, 0), (0, 1))),
            keras.layers.Flatten(),
            keras.layers.Dense(5),
        ]
    )
    result = convert_and_compare(model, tmp_path, batch_size=4, suffix=suffix)
    assert ".permute(" not in _forward_source(result.source_code), result.source_code


@pytest.mark.parametrize("mode", ["bicubic", "lanczos3", "area"])
def test_upsampling_unsupported_interpolation(keras, tmp_path, mode):
    import tf2torch
    from tf2torch.errors import UnsupportedFeature

    inp = keras.Input((13, 17, 3))
    model = keras.Model(inp, keras.layers.UpSampling2D((2, 3), interpolation=mode)(inp))
    path = tmp_path / "model.keras"
    model.save(str(path))
    with pytest.raises(UnsupportedFeature, match=f"interpolation='{mode}'"):
        tf2torch.convert(str(path))


# 1D layers after a Conv1D: the torch graph holds (N, C, L) there.
AFTER_CONV1D_CASES = [
    ("zeropad1d_asym", "ZeroPadding1D", {"padding": (3, 1)}),
    ("crop1d_asym", "Cropping1D", {"cropping": (1, 4)}),
    ("upsample1d_3", "UpSampling1D", {"size": 3}),
    ("flatten", "Flatten", {}),
    ("reshape", "Reshape", {"target_shape": (-1, 2)}),
    ("permute", "Permute", {"dims": (2, 1)}),
]


@pytest.mark.parametrize(("cls", "kwargs"), [c[1:] for c in AFTER_CONV1D_CASES], ids=[c[0] for c in AFTER_CONV1D_CASES])
def test_shape_layer_after_conv1d(keras, tmp_path, cls, kwargs):
    inp = keras.Input((23, 3))
    x = keras.layers.Conv1D(4, 3, strides=2, padding="same")(inp)
    model = keras.Model(inp, getattr(keras.layers, cls)(**kwargs)(x))
    convert_and_compare(model, tmp_path, batch_size=3)


@pytest.mark.parametrize(
    ("cls", "kwargs", "shape"),
    [
        ("Reshape", {"target_shape": (13, 17, 3)}, (13 * 17 * 3,)),
        ("Reshape", {"target_shape": (-1, 17, 3)}, (13, 51)),
        ("Permute", {"dims": (2, 1, 3)}, (13, 17, 3)),
        ("Permute", {"dims": (3, 2, 1)}, (13, 17, 3)),
    ],
    ids=["reshape_flat", "reshape_minus1", "permute_hw", "permute_cwh"],
)
def test_shape_layer_before_conv(keras, tmp_path, cls, kwargs, shape):
    """A Keras-layout result feeding a conv: the layout pass must permute it to channels-first."""
    inp = keras.Input(shape)
    x = getattr(keras.layers, cls)(**kwargs)(inp)
    out = keras.layers.Conv2D(4, 3, strides=2, padding="same")(x)
    convert_and_compare(keras.Model(inp, out), tmp_path, batch_size=3)

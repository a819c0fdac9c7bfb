"""fold_zero_padding: a ZeroPadding layer feeding only a conv becomes the conv's padding."""

from __future__ import annotations

import pytest

from conftest import convert_and_compare


@pytest.mark.parametrize(
    ("padding", "conv_padding", "folded"),
    [
        ((3, 3), "valid", True),       # ResNet's conv1_pad
        ((1, 2), "same", True),        # adds to the conv's own symmetric padding
        (((0, 1), (0, 1)), "valid", True),  # asymmetric: symmetric padding + output crop
        (((0, 3), (0, 1)), "valid", False),  # more than a stride extra at the end: the F.pad stays
    ],
    ids=["symmetric", "plus_same", "asymmetric", "asymmetric_wide"],
)
def test_zero_padding_folds_into_conv(keras, tmp_path, padding, conv_padding, folded):
    inputs = keras.Input((17, 15, 3))
    x = keras.layers.ZeroPadding2D(padding, name="pad")(inputs)
    x = keras.layers.Conv2D(5, 5 if conv_padding == "same" else 7, strides=2, padding=conv_padding, name="conv")(x)
    outputs = keras.layers.ReLU(name="relu")(x)
    result = convert_and_compare(keras.Model(inputs, outputs), tmp_path, batch_size=3)
    assert ("F.pad(" not in result.source_code) == folded
    assert ("CroppedConv2d" in result.source_code) == (padding == ((0, 1), (0, 1)))  # not TF 'same' padding


def test_zero_padding_read_twice_is_kept(keras, tmp_path):
    inputs = keras.Input((9, 11, 2))
    padded = keras.layers.ZeroPadding2D(2, name="pad")(inputs)
    x = keras.layers.Conv2D(2, 5, name="conv")(padded)
    skip = keras.layers.Cropping2D(2, name="crop")(padded)
    outputs = keras.layers.Add(name="add")([x, skip])
    result = convert_and_compare(keras.Model(inputs, outputs), tmp_path, batch_size=2)
    assert "F.pad(" in result.source_code

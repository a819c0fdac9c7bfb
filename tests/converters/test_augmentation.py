"""Random augmentation layers: exact identities in eval (against TensorFlow), RandomFlip
flips in train(), the others stay documented identities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import convert_and_compare

SHAPE = (13, 11, 3)


def _inputs(batch=3, seed=0):
    return [np.random.default_rng(seed).uniform(0.0, 1.0, (batch,) + SHAPE).astype(np.float32)]


def _keras3_augmentations(keras):
    layers = keras.layers
    vr = {"value_range": (0, 1)}
    return {
        "RandomFlip": layers.RandomFlip("horizontal"),
        "RandomRotation": layers.RandomRotation(0.2, fill_mode="constant"),
        "RandomZoom": layers.RandomZoom(0.3, 0.2),
        "RandomContrast": layers.RandomContrast(0.4),
        "RandomTranslation": layers.RandomTranslation(0.2, 0.1),
        "RandomBrightness": layers.RandomBrightness(0.2, **vr),
        "RandomCrop": layers.RandomCrop(*SHAPE[:2]),
        "Solarization": layers.Solarization(0.5, 0.5, **vr),
        "RandomErasing": layers.RandomErasing(),
        "RandomGaussianBlur": layers.RandomGaussianBlur(),
        "RandomPerspective": layers.RandomPerspective(),
        "RandomShear": layers.RandomShear(0.2, 0.2),
        "RandomElasticTransform": layers.RandomElasticTransform(),
        "RandomColorJitter": layers.RandomColorJitter(brightness_factor=0.2, **vr),
        "RandAugment": layers.RandAugment(**vr),
        "AugMix": layers.AugMix(**vr),
        "CutMix": layers.CutMix(),
        "MixUp": layers.MixUp(),
        "RandomGrayscale": layers.RandomGrayscale(),
        "RandomHue": layers.RandomHue(0.2, **vr),
        "RandomSaturation": layers.RandomSaturation(0.2, **vr),
        "RandomSharpness": layers.RandomSharpness(0.2, **vr),
        "RandomPosterization": layers.RandomPosterization(4, **vr),
        "RandomInvert": layers.RandomInvert(**vr),
        "RandomColorDegeneration": layers.RandomColorDegeneration(0.2, **vr),
    }


def test_keras3_augmentations_are_exact_identities_in_eval(keras, tmp_path):
    """Every Keras 3 augmentation layer, chained between two convolutions."""
    augmentations = _keras3_augmentations(keras)
    inp = keras.Input(SHAPE)
    x = keras.layers.Conv2D(3, 1, name="before")(inp)
    for layer in augmentations.values():
        x = layer(x)
    model = keras.Model(inp, keras.layers.Conv2D(2, 3, name="after")(x))
    result = convert_and_compare(model, tmp_path, inputs=_inputs())
    assert "Keras RandomRotation: random, in training only; an identity here" in result.source_code
    assert len([n for n in result.graph.notes if "only in training" in n]) == len(augmentations) - 1  # not RandomFlip


@pytest.mark.parametrize("name", ["RandomFlip", "RandomRotation", "RandomZoom", "RandomContrast"])
def test_keras3_augmentation_before_dense(keras, tmp_path, name):
    inp = keras.Input(SHAPE)
    x = _keras3_augmentations(keras)[name](inp)
    model = keras.Model(inp, keras.layers.Dense(4)(keras.layers.Flatten()(x)))
    convert_and_compare(model, tmp_path, inputs=_inputs(batch=2))


def test_tf_keras_augmentations_h5(tmp_path):
    import tf_keras

    layers = tf_keras.layers
    inp = tf_keras.Input(SHAPE)
    x = layers.Conv2D(3, 1)(inp)
    for layer in (layers.RandomFlip("vertical"), layers.RandomRotation(0.3), layers.RandomZoom(0.2),
                  layers.RandomContrast(0.5), layers.RandomTranslation(0.1, 0.2), layers.RandomHeight(0.2),
                  layers.RandomWidth(0.2), layers.RandomBrightness(0.1)):
        x = layer(x)
    x = layers.Conv2D(3, 1)(x)
    # tf_keras' RandomCrop in inference: the centered window of the target's aspect ratio, resized.
    model = tf_keras.Model(inp, layers.RandomCrop(7, 9)(x))
    convert_and_compare(model, tmp_path, suffix=".h5", inputs=_inputs())


def test_random_flip_flips_some_images_in_train_mode(keras, tmp_path):
    inp = keras.Input(SHAPE)
    model = keras.Model(inp, keras.layers.RandomFlip("horizontal_and_vertical")(inp))
    module = convert_and_compare(model, tmp_path, inputs=_inputs()).module
    x = torch.rand(64, 3, *SHAPE[:2])
    module.train()
    torch.manual_seed(0)
    y = module(x)
    candidates = [x, x.flip(2), x.flip(3), x.flip(2).flip(3)]
    which = [[torch.equal(y[i], c[i]) for c in candidates].index(True) for i in range(len(x))]
    assert set(which) == {0, 1, 2, 3}  # every combination occurs in 64 images
    module.eval()
    assert torch.equal(module(x), x)


def test_identity_augmentation_stays_identity_in_train_mode(keras, tmp_path):
    inp = keras.Input(SHAPE)
    model = keras.Model(inp, keras.layers.RandomRotation(0.5)(keras.layers.Conv2D(3, 1)(inp)))
    module = convert_and_compare(model, tmp_path, inputs=_inputs()).module
    module.train()
    x = torch.rand(2, 3, *SHAPE[:2])
    assert torch.equal(module(x), module.eval()(x))


def test_keras3_random_crop_of_another_size_is_refused(keras, tmp_path):
    import tf2torch

    inp = keras.Input(SHAPE)
    model = keras.Model(inp, keras.layers.RandomCrop(7, 5)(inp))
    model.save(tmp_path / "m.keras")
    with pytest.raises(tf2torch.errors.UnsupportedFeature, match="uncropped image"):
        tf2torch.convert(str(tmp_path / "m.keras"))

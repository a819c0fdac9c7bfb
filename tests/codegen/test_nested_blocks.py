"""The source's own nesting in model.py: a functional model used as a layer and a Sequential
inside a functional model each become a submodule of a class of their own (named after the
nested model, whose Keras class `Functional` says nothing), instances with one structure share
the class, and the weights, verification and export follow."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import tf2torch
from conftest import perturb_weights, set_batchnorm_statistics


def _residual(name: str, filters: int, project: bool):
    import keras

    inputs = keras.Input((11, 9, filters if not project else 4))
    y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name="conv1")(inputs)
    y = keras.layers.BatchNormalization(momentum=0.9, name="bn1")(y)
    y = keras.layers.ReLU(name="relu")(y)
    y = keras.layers.Conv2D(filters, 1, name="conv2")(y)
    shortcut = keras.layers.Conv2D(filters, 1, name="shortcut")(inputs) if project else inputs
    outputs = keras.layers.Add(name="add")([shortcut, y])
    return keras.Model(inputs, outputs, name=name)


def _nested_model(path: Path):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((11, 9, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    x = _residual("res_0", 6, project=True)(x)
    for i in range(1, 4):
        x = _residual(f"res_{i}", 6, project=False)(x)
    head = keras.Sequential([
        keras.layers.GlobalAveragePooling2D(name="pool"),
        keras.layers.Dense(7, activation="relu", name="hidden"),
        keras.layers.Dense(7, activation="tanh", name="hidden2"),
        keras.layers.Dense(5, name="logits"),
    ], name="head")
    model = keras.Model(inputs, head(x), name="nested_net")
    perturb_weights(model)
    batch = np.random.default_rng(1).standard_normal((3, 11, 9, 3)).astype(np.float32)
    set_batchnorm_statistics(model, batch)
    model.save(path)
    return model, batch


@pytest.fixture(scope="module")
def nested(tmp_path_factory):
    path = tmp_path_factory.mktemp("nested") / "nested_net.keras"
    model, batch = _nested_model(path)
    return path, model, batch, tf2torch.convert(path)


def test_made_up_input_names_are_x():
    from tf2torch.codegen.program import made_up_input_name

    assert made_up_input_name("input_layer_3") and made_up_input_name("keras_tensor") and made_up_input_name("input_1")
    assert not made_up_input_name("image") and not made_up_input_name("token_ids")


def _count(module: torch.nn.Module, class_name: str) -> int:
    return sum(type(m).__name__ == class_name for m in module.modules())


def test_nested_models_become_classes(nested):
    path, _model, _batch, result = nested
    code = result.source_code
    assert re.search(r"^class Res\(nn\.Module\):", code, re.MULTILINE)  # res_1 .. res_3
    assert re.search(r"^class Res2\(nn\.Module\):", code, re.MULTILINE)  # res_0, with a projection
    assert re.search(r"^class Head\(nn\.Module\):", code, re.MULTILINE)
    assert _count(result.module, "Res") == 3 and _count(result.module, "Res2") == 1 and _count(result.module, "Head") == 1
    assert "self.conv1 = nn.Conv2d(" in code and "self.shortcut = nn.Conv2d(" in code
    # Named as in Keras: the input `image`, the output of the nested `head` model `head`.
    assert "def forward(self, image: torch.Tensor) -> torch.Tensor:" in code
    assert "head = self.head(x)" in code and "return head" in code
    keys = set(result.state_dict)
    # The four residual models chain: one nn.Sequential, the projecting one first.
    assert "self.res = nn.Sequential(Res2(), *(Res() for _ in range(3)))" in code
    assert {"res.0.shortcut.weight", "res.3.bn1.running_mean", "head.logits.weight", "stem.weight"} <= keys, keys
    flat = tf2torch.convert(path, structure="flat")
    assert "class Res" not in flat.source_code and "self.res_2_conv1 = nn.Conv2d(" in flat.source_code
    assert sorted(v.shape for v in flat.state_dict.values()) == sorted(v.shape for v in result.state_dict.values())


def test_nested_classes_match_tensorflow_in_both_modes_and_layer_by_layer(nested):
    _path, model, batch, result = nested
    for training in (False, True):
        report = result.verify([batch], training=training, keras_model=model)
        assert report.outputs and report.ok, report.table()
    layers = result.verify_layers([batch], keras_model=model)
    compared = {check.name for check in layers.layers}
    # Keras' probe sees the nested models' outputs (not their layers): tapped inside the classes.
    assert {"stem", "res_0", "res_3", "head"} <= compared, compared
    assert layers.first_divergence is None, layers.table()


def test_weights_map_and_export(nested, tmp_path):
    _path, _model, _batch, result = nested
    directory = result.save(tmp_path / "out")
    layers = json.loads((directory / "weights_map.json").read_text())["layers"]
    assert layers["res_2/conv1"] == "res.2.conv1" and layers["head/logits"] == "head.logits"
    assert layers["res_0/shortcut"] == "res.0.shortcut"
    dim = torch.export.Dim("batch", min=2)
    exported = torch.export.export(result.module.eval(), (torch.randn(2, 3, 11, 9),), dynamic_shapes=({0: dim},))
    x = torch.randn(5, 3, 11, 9)
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), result.module(x))

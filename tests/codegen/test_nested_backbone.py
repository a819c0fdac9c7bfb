"""Nesting deeper than one level: an application used as a backbone becomes a class named
after the nested model whose body uses the backbone's own block classes, and a model nested in
a nested model is a class inside that class. The output matches TensorFlow, the weights and
weights_map.json follow the nesting, and torch.export with a dynamic batch still works."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import tf2torch
from conftest import perturb_weights, set_batchnorm_statistics
from tf2torch.codegen.naming import identifier


def _classifier(path: Path):
    """Input -> MobileNetV2 (no top, odd input size) -> pooling -> Dense."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((67, 61, 3), name="image")
    backbone = keras.applications.MobileNetV2(weights=None, include_top=False, alpha=0.35, input_shape=(67, 61, 3))
    x = backbone(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(5, name="logits")(x), name="classifier")
    perturb_weights(model)
    rng = np.random.default_rng(1)
    set_batchnorm_statistics(model, rng.standard_normal((16, 67, 61, 3)).astype(np.float32))
    model.save(path)
    return model, backbone, rng.standard_normal((3, 67, 61, 3)).astype(np.float32)


def _residual(name: str, filters: int):
    import keras

    inputs = keras.Input((None, None, filters))
    y = keras.layers.Conv2D(filters, 3, padding="same", name="conv1")(inputs)
    y = keras.layers.BatchNormalization(momentum=0.8, name="bn")(y)
    y = keras.layers.Conv2D(filters, 1, name="conv2")(y)
    return keras.Model(inputs, keras.layers.Add(name="add")([inputs, y]), name=name)


def _twice_nested(path: Path):
    """outer -> backbone (a functional model) -> res_0 .. res_2 (functional models)."""
    import keras

    keras.utils.set_random_seed(0)
    backbone_inputs = keras.Input((11, 9, 3))
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", name="stem")(backbone_inputs)
    for i in range(3):
        x = _residual(f"res_{i}", 6)(x)
    backbone = keras.Model(backbone_inputs, keras.layers.ReLU(name="out_relu")(x), name="backbone")
    inputs = keras.Input((11, 9, 3), name="image")
    y = keras.layers.GlobalAveragePooling2D(name="pool")(backbone(inputs))
    model = keras.Model(inputs, keras.layers.Dense(4, name="logits")(y), name="outer")
    perturb_weights(model)
    batch = np.random.default_rng(1).standard_normal((3, 11, 9, 3)).astype(np.float32)
    set_batchnorm_statistics(model, batch)
    model.save(path)
    return model, batch


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    path = tmp_path_factory.mktemp("classifier") / "classifier.keras"
    model, backbone, batch = _classifier(path)
    return path, model, backbone, batch, tf2torch.convert(path)


@pytest.fixture(scope="module")
def twice_nested(tmp_path_factory):
    path = tmp_path_factory.mktemp("outer") / "outer.keras"
    model, batch = _twice_nested(path)
    return path, model, batch, tf2torch.convert(path)


def _classes(code: str) -> list[str]:
    return re.findall(r"^class (\w+)\(nn\.Module\):", code, re.MULTILINE)


def test_backbone_keeps_its_block_classes(classifier):
    _path, model, backbone, batch, result = classifier
    attr = identifier(backbone.name)  # `mobilenetv2_0.35_67` -> `mobilenetv2_0_35_67`
    inner = result.module.get_submodule(attr)
    assert type(inner).__name__ == "Mobilenetv2" and "Mobilenetv2" in _classes(result.source_code)
    assert f"self.{attr} = Mobilenetv2()" in result.source_code
    # The backbone's inverted residuals, as Keras numbers them: block_N is blocks[N - 1].
    names = [layer.name for layer in backbone.layers]
    numbers = sorted({int(m.group(1)) for m in map(re.compile(r"^block_(\d+)_project$").match, names) if m})
    assert len(inner.blocks) == len(numbers) == 16
    kinds = {type(block).__name__ for block in inner.blocks}
    assert kinds <= {"Block", "Block2"} and kinds <= set(_classes(result.source_code))
    for number in numbers:
        assert f"{attr}.blocks.{number - 1}.project.weight" in result.state_dict, number
    report = result.verify([batch], keras_model=model, tolerance=1e-4)
    assert report.outputs and report.ok, report.table()
    flat = tf2torch.convert(_path, structure="flat")
    assert 1.4 * result.source_code.count("\n") <= flat.source_code.count("\n")
    x = torch.from_numpy(batch).permute(0, 3, 1, 2)
    with torch.no_grad():
        torch.testing.assert_close(result.module.eval()(x), flat.module.eval()(x), rtol=0, atol=0)


def test_backbone_weights_map_and_export(classifier, tmp_path):
    _path, _model, backbone, _batch, result = classifier
    directory = result.save(tmp_path / "out")
    layers = json.loads((directory / "weights_map.json").read_text())["layers"]
    attr = identifier(backbone.name)
    assert layers[f"{backbone.name}/block_5_expand"] == f"{attr}.blocks.4.expand"
    assert layers["logits"] == "logits"
    module = result.module
    for layer, path in layers.items():  # every entry resolves to a module with its weights
        assert any(True for _ in module.get_submodule(path).parameters(recurse=False)), layer
    dim = torch.export.Dim("batch", min=2)
    exported = torch.export.export(module.eval(), (torch.randn(2, 3, 67, 61),), dynamic_shapes=({0: dim},))
    x = torch.randn(5, 3, 67, 61)
    with torch.no_grad():
        expected = module(x)
        # Eager eval mode folds each BatchNorm into its conv; the exported graph runs them apart.
        torch.testing.assert_close(exported.module()(x), expected, rtol=0, atol=1e-4 * float(expected.abs().max()))


def test_model_nested_in_a_nested_model(twice_nested, tmp_path):
    _path, model, batch, result = twice_nested
    code = result.source_code
    assert _classes(code) == ["Res", "Backbone", "Outer"]
    assert "self.backbone = Backbone()" in code and "self.res = nn.Sequential(*(Res() for _ in range(3)))" in code
    assert type(result.module.backbone.res[2]).__name__ == "Res"
    assert {"backbone.stem.weight", "backbone.res.2.conv1.weight", "backbone.res.0.bn.running_var"} <= set(
        result.state_dict)
    for training in (False, True):
        report = result.verify([batch], training=training, keras_model=model)
        assert report.outputs and report.ok, report.table()
    layers = json.loads((result.save(tmp_path / "out") / "weights_map.json").read_text())["layers"]
    assert layers["backbone/res_1/conv2"] == "backbone.res.1.conv2"
    dim = torch.export.Dim("batch", min=2)
    module = result.module.eval()
    exported = torch.export.export(module, (torch.randn(2, 3, 11, 9),), dynamic_shapes=({0: dim},))
    x = torch.randn(4, 3, 11, 9)
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), module(x))

"""Structured model.py: repeated Keras blocks become one class per kind, instantiated once
per block (chained blocks in an nn.Sequential), and the output still matches TensorFlow."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import tf2torch
from conftest import perturb_weights, set_batchnorm_statistics
from tf2torch.codegen.blocks import block_of, local_name

RUFF = Path(sys.executable).with_name("ruff")


def test_block_names_from_keras_naming():
    assert block_of("conv2_block1_1_conv") == ("conv2_block1", "conv2_block")
    assert block_of("block_3_expand_BN") == ("block_3", "block_")
    assert block_of("block2a_se_reduce") == ("block2a", "block")
    assert block_of("convnext_tiny_stage_2_block_1_depthwise_conv") == (
        "convnext_tiny_stage_2_block_1", "convnext_tiny_stage_2_block_")
    assert block_of("expanded_conv_3_depthwise_bn") == ("expanded_conv_3", "expanded_conv_")  # MobileNetV3
    assert block_of("predictions") is None
    assert block_of("conv2d_5") is None
    assert local_name("conv2_block1_1_conv", "conv2_block1") == "conv1"
    assert local_name("block_3_expand_BN", "block_3") == "expand_BN"
    assert local_name("convnext_tiny_downsampling_conv_1", "convnext_tiny_downsampling_block_1") == "conv"
    assert local_name("x", "conv2_block1") == "x"


def _application(name: str, size: int):
    import keras

    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, name)(weights=None, classifier_activation=None, input_shape=(size, size, 3))
    perturb_weights(model)
    pixels = any(type(layer).__name__ in ("Rescaling", "Normalization") for layer in model.layers)
    rng = np.random.default_rng(1)
    shape = (3, size, size, 3)
    batch = (rng.uniform(0.0, 255.0, shape) if pixels else rng.standard_normal(shape)).astype(np.float32)
    set_batchnorm_statistics(model, batch)
    return model, batch


def _instances(module: torch.nn.Module) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sub in module.modules():
        counts[type(sub).__name__] = counts.get(type(sub).__name__, 0) + 1
    return counts


# Per family: image size, block classes and how many instances, the nn.Sequential stages.
FAMILIES = {
    "ResNet50": (64, {"Block": 16}, ["conv2", "conv3", "conv4", "conv5"]),
    "MobileNetV2": (64, {"Block": 16}, ["blocks"]),
    "EfficientNetB0": (64, {"Block": 9, "Block2": 7}, ["blocks"]),
    "DenseNet121": (64, {"Block": 58}, ["conv2", "conv3", "conv4", "conv5"]),
    "ConvNeXtTiny": (64, {"Block": 15, "Block2": 3, "DownsamplingBlock": 3},
                     ["convnext_tiny_stage_1", "convnext_tiny_stage_2", "convnext_tiny_stage_3"]),
}


@pytest.fixture(scope="module")
def family(request, tmp_path_factory):
    """One Keras application (perturbed weights, realistic BatchNorm statistics), converted
    once structured and once flat."""
    name = request.param
    model, batch = _application(name, FAMILIES[name][0])
    path = tmp_path_factory.mktemp(name) / f"{name}.keras"
    model.save(path)
    return name, model, batch, tf2torch.convert(path), tf2torch.convert(path, structure="flat")


def _lines(code: str) -> int:
    return code.count("\n")


def _check_family(family) -> None:
    """Block classes and their counts, the nn.Sequential stages, 2x shorter than the flat
    rendering, the output against TensorFlow, and the flat rendering's weights under nested keys."""
    name, model, batch, result, flat = family
    _, kinds, sequences = FAMILIES[name]
    counts = _instances(result.module)
    for kind, count in kinds.items():
        assert re.search(rf"^class {kind}\(nn\.Module\):", result.source_code, re.MULTILINE), kind
        assert counts.get(kind) == count, (kind, counts)
    assert not set(counts) & {f"Block{n}" for n in range(len(kinds) + 1, 9)}, counts
    children = [n for n, c in result.module.named_children() if isinstance(c, torch.nn.Sequential)]
    assert children == sequences
    # Issue 14's target: at least 2x shorter than the flat rendering.
    assert 2 * _lines(result.source_code) <= _lines(flat.source_code), (_lines(result.source_code), _lines(flat.source_code))
    # fp32 rounding through ResNet50's 50 random layers at 64 px is ~1.4e-4 x max |logit| in
    # the flat module of main too (tests/e2e/test_applications.py checks it against float64).
    report = result.verify([batch], keras_model=model, tolerance=3e-4 if name == "ResNet50" else 1e-4)
    assert report.ok, report.table()
    x = torch.from_numpy(batch).permute(0, 3, 1, 2)
    with torch.no_grad():  # bit for bit what the flat module computes
        torch.testing.assert_close(result.module(x), flat.module(x), rtol=0, atol=0)
    flat_state = result.generated.flat_state(result.module.state_dict())
    assert set(flat_state) == set(flat.module.state_dict())
    for key, value in flat.module.state_dict().items():
        assert torch.equal(flat_state[key], value), key


@pytest.mark.parametrize("family", ["ResNet50"], indirect=True)
def test_resnet50_one_bottleneck_class_and_stage_loops(family):
    _check_family(family)
    result = family[3]
    # One bottleneck class whose projection shortcut is optional (torchvision's `downsample`),
    # the whole file <= 150 lines (torchvision's resnet.py is the yardstick).
    code = result.source_code
    assert _lines(code) <= 150
    assert "self.conv4 = nn.Sequential(Block(512, 256, stride=2, projection=True), *(Block(1024, 256) for _ in range(5)))" \
        in code
    assert "self.conv0 = nn.Conv2d(in_channels, 4 * out_channels, kernel_size=1, stride=stride) if projection else None" \
        in code
    assert "if self.conv0 is not None:" in code
    assert [block.conv0 is not None for block in result.module.conv3] == [True, False, False, False]
    assert "conv3.1.conv2.weight" in result.state_dict and "conv3.0.conv0.weight" in result.state_dict
    assert "conv3.1.conv0.weight" not in result.state_dict


@pytest.mark.slow
@pytest.mark.parametrize("family", ["MobileNetV2"], indirect=True)
def test_mobilenetv2_one_inverted_residual_class(family):
    _check_family(family)
    code = family[3].source_code
    # Stride-1 and stride-2 blocks share the 'same'-padding conv class; the expansion is derived.
    assert "self.depthwise = SameConv2d(6 * in_channels, 6 * in_channels, kernel_size=3, stride=stride," in code
    assert "Block(16, 24, stride=2, residual=False), Block(24, 24)," in code


@pytest.mark.slow
@pytest.mark.parametrize("family", ["EfficientNetB0"], indirect=True)
def test_efficientnetb0_mbconv(family):
    _check_family(family)
    code = family[3].source_code
    # The blocks without a residual add (first of a stage) are one class whose expansion conv
    # is optional (block1a has none: its input channels are its depthwise conv's).
    assert "if projection else None" not in code and "if with_expand_conv else None" in code
    assert "Block2(32, 32, 3, 8, 16)" in code
    assert [b.expand_conv is None for b in family[3].module.blocks if type(b).__name__ == "Block2"] == [
        True] + [False] * 6


@pytest.mark.slow
@pytest.mark.parametrize("family", ["DenseNet121"], indirect=True)
def test_densenet121_dense_layers(family):
    _check_family(family)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["ConvNeXtTiny"], indirect=True)
def test_convnext_tiny_blocks(family):
    _check_family(family)


@pytest.mark.slow
def test_bert_encoder_layers_in_a_loop(tmp_path):
    """keras_hub BERT with BERT-base's 12 layers (small widths: the line counts do not depend on them)."""
    keras_hub = pytest.importorskip("keras_hub")
    backbone = keras_hub.models.BertBackbone(vocabulary_size=50, num_layers=12, num_heads=2, hidden_dim=8,
                                             intermediate_dim=16, max_sequence_length=16)
    perturb_weights(backbone)
    path = tmp_path / "bert.keras"
    backbone.save(str(path))
    result, flat = tf2torch.convert(str(path)), tf2torch.convert(str(path), structure="flat")
    assert _instances(result.module)["TransformerEncoder"] == 12
    assert "self.transformer_layers = nn.ModuleList(TransformerEncoder() for _ in range(12))" in result.source_code
    assert "sequence_output = self.embeddings_dropout(x)" in result.source_code  # no `sequence_output = h` copy
    assert 2 * _lines(result.source_code) <= _lines(flat.source_code), (_lines(result.source_code), _lines(flat.source_code))
    rng = np.random.default_rng(1)
    mask = np.ones((3, 9), "int32")
    mask[1, 5:] = 0
    inputs = {"token_ids": rng.integers(0, 50, (3, 9)).astype("int32"),
              "segment_ids": rng.integers(0, 2, (3, 9)).astype("int32"), "padding_mask": mask}
    report = result.verify([inputs[n] for n in result.graph.input_names], keras_model=backbone, tolerance=1e-4)
    assert report.ok, report.table()


def _user_model(path: Path) -> Path:
    """A functional model with three residual blocks named `stage_blockN_*` (the middle ones
    identical), an odd spatial size and a projection in the first block."""
    import keras

    inputs = keras.Input((11, 9, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    for i, (filters, stride) in enumerate([(12, 2), (12, 1), (12, 1)], start=1):
        name = f"stage_block{i}"
        y = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", name=f"{name}_conv")(x)
        y = keras.layers.BatchNormalization(name=f"{name}_bn")(y)
        y = keras.layers.Activation("relu", name=f"{name}_relu")(y)
        y = keras.layers.Conv2D(filters, 1, name=f"{name}_conv2")(y)
        if i == 1:
            x = keras.layers.Conv2D(filters, 1, strides=stride, name=f"{name}_shortcut")(x)
        x = keras.layers.Add(name=f"{name}_add")([x, y])
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(5, name="logits")(x)
    model = keras.Model(inputs, outputs, name="user_net")
    perturb_weights(model)
    model.save(path)
    return path


@pytest.fixture(scope="module")
def user_model(tmp_path_factory):
    return _user_model(tmp_path_factory.mktemp("user") / "user_net.keras")


def test_user_blocks_verify_layers_and_export(user_model, tmp_path):
    result = tf2torch.convert(user_model)
    code = result.source_code
    assert "class Block(nn.Module):" in code and "class Block2" not in code
    # The first block's projection is an optional submodule of the one block class.
    assert _instances(result.module)["Block"] == 3
    assert "self.shortcut = nn.Conv2d(in_channels, 12, kernel_size=1, stride=stride) if projection else None" in code
    assert "Block(8, stride=2, projection=True), Block(12), Block(12)" in code
    assert [b.shortcut is not None for b in result.module.stage_blocks] == [True, False, False]
    for training in (False, True):
        report = result.verify(training=training, batch_size=3)
        assert report.ok, report.table()
    layers = result.verify_layers(batch_size=3)
    compared = {check.name for check in layers.layers}
    assert {"stage_block1_shortcut", "stage_block2_conv", "stage_block3_bn", "stage_block3_add"} <= compared
    assert layers.first_divergence is None, layers.table()
    fast = tf2torch.optimize_for_inference(result.module)  # folds the BatchNorms inside blocks too
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    probe = torch.randn(3, 3, 11, 9)
    with torch.no_grad():
        torch.testing.assert_close(fast(probe), result.module(probe), rtol=1e-4, atol=1e-5)
    batch = torch.export.Dim("batch", min=2)
    exported = torch.export.export(result.module, (torch.randn(2, 3, 11, 9),), dynamic_shapes=({0: batch},))
    x = torch.randn(5, 3, 11, 9)
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), result.module(x))


def test_a_class_that_cannot_rebuild_its_blocks_is_not_written(user_model, monkeypatch):
    """The parameter inference is checked: a class whose constructor would not give every
    block its own numbers (here: no parameters at all, the channels differ) is not used."""
    from tf2torch.codegen import blocks

    monkeypatch.setattr(blocks, "_parameters", lambda group: [])
    result = tf2torch.convert(user_model)
    assert "class Block" not in result.source_code
    assert result.verify(batch_size=2).ok


def test_written_files_are_lint_clean_with_a_layer_map(user_model, tmp_path):
    import json

    result = tf2torch.convert(user_model)
    directory = result.save(tmp_path / "out")
    layers = json.loads((directory / "weights_map.json").read_text())["layers"]
    assert layers["stage_block2_conv"] == "stage_blocks.1.conv"
    assert layers["stage_block1_shortcut"] == "stage_blocks.0.shortcut"
    assert layers["stem"] == "stem"
    if RUFF.exists():
        done = subprocess.run([str(RUFF), "check", "--isolated", str(directory / "model.py")], check=False,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout


def test_flat_is_todays_output(user_model):
    flat = tf2torch.convert(user_model, structure="flat")
    assert "class Block" not in flat.source_code
    assert "self.stage_block2_conv = nn.Conv2d" in flat.source_code
    with pytest.raises(ValueError, match="structure"):
        tf2torch.convert(user_model, structure="nested")


def test_cli_flat_option_writes_the_flat_code(user_model, tmp_path):
    from tf2torch.cli import main

    assert main(["convert", str(user_model), "-o", str(tmp_path / "flat"), "--flat"]) == 0
    assert main(["convert", str(user_model), "-o", str(tmp_path / "blocks")]) == 0
    assert (tmp_path / "flat" / "model.py").read_text() == tf2torch.convert(user_model, structure="flat").source_code
    assert "class Block(nn.Module):" in (tmp_path / "blocks" / "model.py").read_text()


def _optional_residual_model(path: Path) -> Path:
    """Blocks that add their input only where the channels stay (MobileNet's inverted
    residuals): one kind with a `residual` flag, not two classes."""
    import keras

    inputs = keras.Input((13, 7, 3), name="image")
    x = keras.layers.Conv2D(6, 3, padding="same", name="stem")(inputs)
    for i, filters in enumerate([6, 6, 10, 10], start=1):
        name = f"stage_block{i}"
        y = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name=f"{name}_expand")(x)
        y = keras.layers.BatchNormalization(momentum=0.8, name=f"{name}_bn")(y)
        y = keras.layers.ReLU(6.0, name=f"{name}_relu")(y)
        y = keras.layers.Conv2D(filters, 1, name=f"{name}_project")(y)
        x = keras.layers.Add(name=f"{name}_add")([x, y]) if x.shape[-1] == filters else y
    outputs = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, outputs, name="optional_residual_net")
    perturb_weights(model)
    model.save(path)
    return path


def test_optional_residual_add_is_a_flag(tmp_path):
    path = _optional_residual_model(tmp_path / "optional_residual_net.keras")
    result = tf2torch.convert(path)
    flat = tf2torch.convert(path, structure="flat")
    code = result.source_code
    assert "class Block2" not in code and _instances(result.module)["Block"] == 4
    assert "residual: bool = True" in code and "if self.residual:" in code
    assert "Block(6, 10, residual=False), Block(10, 10)" in code
    assert [b.residual for b in result.module.stage_blocks] == [True, True, False, True]
    for training in (False, True):
        report = result.verify(training=training, batch_size=3)
        assert report.ok, report.table()
    layers = result.verify_layers(batch_size=3)
    assert {"stage_block3_project", "stage_block4_add"} <= {check.name for check in layers.layers}
    assert layers.first_divergence is None, layers.table()
    flat_state = result.generated.flat_state(result.module.state_dict())
    assert set(flat_state) == set(flat.module.state_dict())
    batch = torch.export.Dim("batch", min=2)
    exported = torch.export.export(result.module, (torch.randn(2, 3, 13, 7),), dynamic_shapes=({0: batch},))
    x = torch.randn(5, 3, 13, 7)
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), result.module(x))
    directory = result.save(tmp_path / "out")
    if RUFF.exists():
        done = subprocess.run([str(RUFF), "check", "--isolated", str(directory / "model.py")], check=False,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout

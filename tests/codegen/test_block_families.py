"""One test per Keras Applications family not in test_blocks.py: each block the Keras model's
own layer names delimit (`conv3_block2_*`, `block7_*`, `conv_dw_5`/`conv_pw_5`, `block35_4_*`,
the `mixedN` modules) is one instance of a block class in model.py, and the structured module
matches TensorFlow. The blocks are read from the Keras model, never from our output; the
layers of a block are found in the module through weights_map's layer paths."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import tf2torch
from conftest import perturb_weights, set_batchnorm_statistics
from tf2torch.codegen.weights_map import layer_paths


def _application(name: str, size: int, **kwargs):
    """As tests/e2e/test_applications.py builds them: BatchNorm statistics from a batch of 16
    other images (a batch of two leaves the 1x1 maps of a deep random network ill-conditioned)."""
    import keras

    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, name)(weights=None, classifier_activation=None, input_shape=(size, size, 3),
                                              **kwargs)
    perturb_weights(model)
    pixels = any(type(layer).__name__ in ("Rescaling", "Normalization") for layer in model.layers)

    def sample(batch: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        shape = (batch, size, size, 3)
        return (rng.uniform(0.0, 255.0, shape) if pixels else rng.standard_normal(shape)).astype(np.float32)

    set_batchnorm_statistics(model, sample(16, 1000))
    return model, sample(2, 1)


def _convert(name: str, size: int, tmp_path: Path, tolerance: float = 1e-4, **kwargs):
    """The structured module against TensorFlow, and bit for bit against the flat one (the
    blocks change how the code reads, never what it computes). InceptionV3's random network
    (and InceptionResNetV2's, ResNet101's) is ill-conditioned enough at small sizes that fp32
    rounding alone reaches 2.4e-4 x max (tests/e2e/test_applications.py shows that in
    float64): they get a looser `tolerance`."""
    model, batch = _application(name, size, **kwargs)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    result = tf2torch.convert(path)
    report = result.verify([batch], keras_model=model, tolerance=tolerance)
    assert report.outputs and report.ok, report.table()
    flat = tf2torch.convert(path, structure="flat")
    x = torch.from_numpy(batch).permute(0, 3, 1, 2)
    with torch.no_grad():
        torch.testing.assert_close(result.module.eval()(x), flat.module.eval()(x), rtol=0, atol=0)
    return model, result, flat


def _block_classes(result) -> set[str]:
    """The classes model.py defines for blocks (every nn.Module subclass but the model's)."""
    return set(re.findall(r"^class (\w+)\(nn\.Module\):", result.source_code, re.MULTILINE)) - {
        type(result.module).__name__}


def _blocks_in_module(result, block_of_layer: Callable[[str], str | None]) -> dict[str, set[str | None]]:
    """Keras block -> the paths of the block-class instances holding its layers' weights (None
    for a layer outside every block class)."""
    classes = _block_classes(result)
    found: dict[str, set[str | None]] = {}
    for layer, path in layer_paths(result.generated).items():
        block = block_of_layer(layer)
        if block is None:
            continue
        parts = path.split(".")
        owners = [".".join(parts[:n]) for n in range(len(parts) - 1, 0, -1)
                  if type(result.module.get_submodule(".".join(parts[:n]))).__name__ in classes]
        found.setdefault(block, set()).add(owners[0] if owners else None)
    return found


def _assert_one_instance_per_block(result, blocks: list[str], block_of_layer: Callable[[str], str | None]):
    """Each of `blocks` (from the Keras names) is one block-class instance of its own; every
    class used has at least two instances. Returns block -> (path, class name)."""
    found = _blocks_in_module(result, block_of_layer)
    placed = {}
    for block in blocks:
        paths = found.get(block, set())
        assert len(paths) == 1 and None not in paths, (block, paths)
        path = paths.pop()
        placed[block] = (path, type(result.module.get_submodule(path)).__name__)
    assert len({path for path, _ in placed.values()}) == len(blocks), placed
    per_class: dict[str, int] = {}
    for _, class_name in placed.values():
        per_class[class_name] = per_class.get(class_name, 0) + 1
    assert all(count >= 2 for count in per_class.values()), per_class
    return placed


def _names(model) -> list[str]:
    return [layer.name for layer in model.layers]


def _matching(model, pattern: str) -> list[str]:
    """The distinct first groups of `pattern` over the Keras layer names, in order."""
    return list(dict.fromkeys(m.group(1) for m in map(re.compile(pattern).match, _names(model)) if m))


def _lines(result) -> int:
    return result.source_code.count("\n")


@pytest.mark.slow
def test_resnet50v2_preactivation_blocks(tmp_path):
    model, result, _flat = _convert("ResNet50V2", 64, tmp_path)
    blocks = _matching(model, r"^(conv\d_block\d+)_out$")
    assert len(blocks) == 16
    placed = _assert_one_instance_per_block(result, blocks, lambda layer: _match(r"^(conv\d_block\d+)_", layer))
    # The blocks of a stage chain in one nn.Sequential named after the stage, in Keras' order.
    for block, (path, _) in placed.items():
        stage, index = re.match(r"^(conv\d)_block(\d+)$", block).groups()
        assert path == f"{stage}.{int(index) - 1}", (block, path)


@pytest.mark.slow
def test_resnet101_same_blocks_more_of_them(tmp_path):
    model, result, _flat = _convert("ResNet101", 64, tmp_path, tolerance=5e-4)
    blocks = _matching(model, r"^(conv\d_block\d+)_out$")
    _assert_one_instance_per_block(result, blocks, lambda layer: _match(r"^(conv\d_block\d+)_", layer))
    assert len(result.module.conv4) == len([b for b in blocks if b.startswith("conv4")]) == 23


def test_xception_entry_and_middle_flow(tmp_path):
    model, result, flat = _convert("Xception", 71, tmp_path)
    names = set(_names(model))
    ids = _matching(model, r"^(block\d+)_")
    middle = [b for b in ids if f"{b}_sepconv3_act" in names]
    # Entry/exit blocks with a strided shortcut; block2 starts without an activation (Keras
    # leaves it out after the stem), so it has a structure of its own.
    shortcut = [b for b in ids if f"{b}_pool" in names and f"{b}_sepconv1_act" in names]
    assert len(middle) == 8 and len(shortcut) == 3
    placed = _assert_one_instance_per_block(result, middle + shortcut, lambda layer: _match(r"^(block\d+)_", layer))
    assert {placed[b][1] for b in middle} != {placed[b][1] for b in shortcut}
    assert len({placed[b][1] for b in middle}) == 1
    assert 1.6 * _lines(result) <= _lines(flat)
    # The shortcut's unnamed conv + BatchNorm and the add joining it are inside the block.
    for block in shortcut:
        path = placed[block][0]
        assert sum(isinstance(m, torch.nn.Conv2d) for m in result.module.get_submodule(path).modules()) == 5, block


def test_mobilenet_depthwise_separable_blocks(tmp_path):
    model, result, flat = _convert("MobileNet", 64, tmp_path, alpha=0.5)
    blocks = [f"conv_{n}" for n in _matching(model, r"^conv_dw_(\d+)$")]
    assert len(blocks) == 13
    # conv_dw_N (depthwise) and conv_pw_N (pointwise) together are block N.
    placed = _assert_one_instance_per_block(result, blocks,
                                            lambda layer: _match(r"^(conv)_(?:dw|pw)_\d+", layer, whole=True))
    strided = {f"conv_{n}" for n in _matching(model, r"^conv_pad_(\d+)$")}  # Keras pads before a stride-2 block
    assert strided and len({placed[b][1] for b in blocks}) == 1  # stride is a constructor argument
    assert 1.3 * _lines(result) <= _lines(flat)
    assert "self.dw = SameConv2d(" in result.source_code and "self.pw_bn = KerasBatchNorm2d(" in result.source_code


def test_mobilenetv3small_squeeze_excite_blocks(tmp_path):
    model, result, _flat = _convert("MobileNetV3Small", 64, tmp_path)
    names = set(_names(model))
    ids = _matching(model, r"^(expanded_conv(?:_\d+)?)_")
    with_se = [b for b in ids if f"{b}_expand" in names and f"{b}_squeeze_excite_mul" in names]
    assert len(with_se) == 8
    _assert_one_instance_per_block(result, with_se, lambda layer: _match(r"^(expanded_conv(?:_\d+)?)_", layer))


@pytest.mark.slow
def test_efficientnetv2b0_fused_and_mbconv_blocks(tmp_path):
    model, result, _flat = _convert("EfficientNetV2B0", 96, tmp_path)
    names = set(_names(model))
    ids = _matching(model, r"^(block\d+[a-z])_")
    # block1a, the only fused block without an expansion, and the one MBConv block that
    # changes width without a stride (no residual add, no dropout) have structures of their own.
    unique = [b for b in ids if f"{b}_expand_conv" not in names]
    unique += [b for b in ids if f"{b}_dwconv2" in names and f"{b}_add" not in names
               and model.get_layer(f"{b}_dwconv2").strides == (1, 1)]
    assert unique == ["block1a", "block5a"]
    repeated = [b for b in ids if b not in unique]
    assert len(repeated) == 19
    _assert_one_instance_per_block(result, repeated, lambda layer: _match(r"^(block\d+[a-z])_", layer))


def _grid_runs(model, pattern: str) -> list[list[str]]:
    """Runs of consecutive modules (layers matching `pattern`) that keep the grid size: the
    ones that shrink it (InceptionV3's mixed3 and mixed8) start no run and are in none."""
    runs: list[list[str]] = []
    size = None
    for layer in model.layers:
        if not re.match(pattern, layer.name):
            continue
        shape = tuple(layer.output.shape[1:3])
        if shape == size:
            runs[-1].append(layer.name)
        elif size is None or len(runs[-1]) > 0:
            runs.append([layer.name] if size is None else [])
        size = shape
    return [run for run in runs if run]


def test_inceptionv3_modules_by_structure(tmp_path):
    model, result, flat = _convert("InceptionV3", 75, tmp_path, tolerance=5e-4)
    # Keras names only the modules' outputs (`mixed5`); their layers are `conv2d_57`. The first
    # module of each grid size follows the reduction (or the stem) and repeats with the rest.
    runs = _grid_runs(model, r"^mixed\d+$")
    assert [len(run) for run in runs] == [3, 4, 2]
    sequences = [m for m in result.module.children() if isinstance(m, torch.nn.Sequential)]
    assert [len(s) for s in sequences] == [len(run) for run in runs]
    classes = [{type(block).__name__ for block in s} for s in sequences]
    assert all(len(c) == 1 for c in classes) and len(set.union(*classes)) == 3
    assert 1.7 * _lines(result) <= _lines(flat)
    assert "self.conv2d = nn.Conv2d(in_channels, 64, kernel_size=1, bias=False)" in result.source_code


@pytest.mark.slow
def test_inceptionresnetv2_residual_modules(tmp_path):
    model, result, flat = _convert("InceptionResNetV2", 75, tmp_path, tolerance=5e-4)
    names = set(_names(model))
    ids = _matching(model, r"^(block(?:35|17|8)_\d+)_")
    # The last block8 has no activation and scale 1: a structure of its own.
    activated = [b for b in ids if f"{b}_ac" in names]
    assert len(activated) == 10 + 20 + 9
    _assert_one_instance_per_block(result, activated, lambda layer: _match(r"^(block(?:35|17|8)_\d+)_", layer))
    assert 3 * _lines(result) <= _lines(flat)


@pytest.mark.slow
def test_nasnetmobile_normal_cells(tmp_path):
    model, result, flat = _convert("NASNetMobile", 64, tmp_path)
    cells = _matching(model, r"^normal_concat_(\d+)$")
    assert len(cells) == 12
    assert 1.9 * _lines(result) <= _lines(flat)
    # Cells read the two previous cells' outputs: their class is called once per cell, with both.
    assert re.search(r"normal_concat_2 = self\.normal_concat_2\(normal_concat_0, normal_concat_1\)", result.source_code)


def _match(pattern: str, text: str, whole: bool = False) -> str | None:
    """The block a layer name belongs to: the first group (`whole`: the group and the number
    the match ends with, `conv_dw_5_bn` -> `conv_5`)."""
    match = re.match(pattern, text)
    if match is None:
        return None
    if whole:
        number = re.search(r"(\d+)$", match.group(0))
        return f"{match.group(1)}_{number.group(1) if number else ''}"
    return match.group(1)

"""TF.js layers-models (model.json + shards written by the tensorflowjs converter) through the
Keras frontend, compared with TensorFlow's output on the source Keras model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tfjs_fixtures import KERAS3, LAYERS, LAYERS_UINT8, SEQUENCE, copy_fixture, edit_model_json, expected, run_nchw

import tf2torch
from tf2torch.errors import BadModelFile, UnsupportedFeature

TOLERANCE = 1e-5


def _assert_matches_tf(result, fixture) -> None:
    x, y = expected(fixture)
    out = run_nchw(result.module, x)
    assert out.shape == y.shape
    assert np.abs(out - y).max() <= TOLERANCE * np.abs(y).max()


def test_layers_model_matches_tensorflow():
    result = tf2torch.convert(str(LAYERS / "model.json"))
    _assert_matches_tf(result, LAYERS)
    import torch

    module = result.module
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in module.modules()), "BatchNorm must be kept"
    assert all(p.requires_grad for p in module.parameters())
    assert result.keras_major == 2


def test_uint8_layers_model_is_dequantized_with_a_warning():
    with pytest.warns(UserWarning, match=r"10 weights are stored quantized \(uint8\): bn/gamma.*dequantized"):
        result = tf2torch.convert(str(LAYERS_UINT8 / "model.json"))
    # Expected: TF on the source model carrying the weights as tensorflowjs' own reader dequantizes them.
    _assert_matches_tf(result, LAYERS_UINT8)


def test_verify_against_keras_built_from_the_same_files_in_both_modes():
    pytest.importorskip("tf_keras")
    result = tf2torch.convert(str(LAYERS / "model.json"))
    assert result.verify(batch_size=3).ok
    assert result.verify(batch_size=3, training=True).ok  # BatchNorm on batch statistics


def test_recurrent_layers_and_a_nested_model_match_tensorflow():
    """Weights in sub-scopes (`lstm/lstm_cell/kernel`, `bi/backward_gru/gru_cell/bias`) and in
    a nested Sequential."""
    result = tf2torch.convert(str(SEQUENCE / "model.json"))
    _assert_matches_tf(result, SEQUENCE)
    frozen = [n for n, p in result.module.named_parameters() if not p.requires_grad]
    assert frozen == ["lstm.bias_hh_l0"]  # Keras' LSTM has one bias: torch's second is zero and frozen


def test_keras3_model_with_attribute_path_weight_names_matches_tensorflow():
    """`layers/conv1d/vars/0`, `layers/lstm/cell/vars/2`, `layers/sequential/layers/dense_1/vars/0`."""
    result = tf2torch.convert(str(KERAS3 / "model.json"))
    assert result.keras_major == 3
    _assert_matches_tf(result, KERAS3)
    assert result.verify(batch_size=3).ok  # against Keras 3 built from the same files


def test_keras3_layer_with_two_weighted_sub_objects_is_refused(tmp_path):
    model_json = copy_fixture(KERAS3, tmp_path / "m")

    def edit(document):
        for weight in document["weightsManifest"][0]["weights"]:
            if weight["name"] == "layers/lstm/cell/vars/2":
                weight["name"] = "layers/lstm/other_cell/vars/0"

    edit_model_json(model_json, edit)
    with pytest.raises(UnsupportedFeature, match=r"layer 'lstm': its weights sit in 2 sub-objects \(cell, other_cell\)"):
        tf2torch.convert(str(model_json))


def test_weight_names_with_output_index_and_a_bare_tfjs_topology(tmp_path):
    """TF.js itself writes the Keras config bare (keras_version 'tfjs-layers ...'); other
    writers keep TF's ':0' on weight names."""
    model_json = copy_fixture(LAYERS, tmp_path / "m")

    def edit(document):
        topology = document["modelTopology"]
        document["modelTopology"] = {**topology["model_config"], "keras_version": "tfjs-layers 4.22.0",
                                     "backend": "tensor_flow.js"}
        for weight in document["weightsManifest"][0]["weights"]:
            weight["name"] += ":0"

    edit_model_json(model_json, edit)
    _assert_matches_tf(tf2torch.convert(str(model_json)), LAYERS)


def test_a_layer_without_its_weights_is_named(tmp_path):
    model_json = copy_fixture(LAYERS, tmp_path / "m")
    shard = model_json.parent / "group1-shard1of1.bin"

    def edit(document):
        weights = document["weightsManifest"][0]["weights"]
        bias = next(w for w in weights if w["name"] == "logits/bias")
        weights.remove(bias)

    edit_model_json(model_json, edit)
    shard.write_bytes(shard.read_bytes()[:-5 * 4])  # logits/bias is stored last
    with pytest.raises(BadModelFile, match=r"model.json: layer 'logits' \(Dense\): the file holds 1 weights .*, its config implies 2"):
        tf2torch.convert(str(model_json))


def test_weights_of_no_layer_are_an_error(tmp_path):
    model_json = copy_fixture(LAYERS, tmp_path / "m")
    edit_model_json(model_json, lambda d: d["weightsManifest"][0]["weights"][0].update(name="head/gamma"))
    with pytest.raises(BadModelFile, match=r"1 weights in weightsManifest belong to no layer .*'head/gamma'"):
        tf2torch.convert(str(model_json))


def test_a_graph_topology_is_not_a_keras_config(tmp_path):
    model_json = copy_fixture(LAYERS, tmp_path / "m")
    edit_model_json(model_json, lambda d: d.update(modelTopology={"model_config": {"class_name": "Dense"}}))
    with pytest.raises(BadModelFile, match=r"modelTopology holds no Keras model config .*'Dense'"):
        tf2torch.convert(str(model_json))


def test_training_config_of_a_compiled_model_gives_train_py(tmp_path):
    """tf.keras writes `training_config` (as in an .h5) into a compiled model's topology."""
    model_json = copy_fixture(LAYERS, tmp_path / "m")
    training_config = {
        "loss": "categorical_crossentropy", "metrics": None, "weighted_metrics": None, "loss_weights": None,
        "optimizer_config": {"class_name": "Custom>Adam", "config": {
            "name": "Adam", "learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07,
            "amsgrad": False, "is_legacy_optimizer": False}}}
    edit_model_json(model_json, lambda d: d["modelTopology"].update(training_config=training_config))
    result = tf2torch.convert(str(model_json))
    out = result.save(tmp_path / "out")
    script = (out / "train.py").read_text()
    assert "Optimizer: Adam(learning_rate=0.01)" in script and "KerasAdam(params, learning_rate=0.01)" in script


HIDE_TENSORFLOW = """
import importlib.abc
import sys

HIDDEN = ("tensorflow", "tensorflowjs", "keras", "tf_keras")


class HideTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ImportError(f"{name} is hidden for this test")
        return None


sys.meta_path.insert(0, HideTensorFlow())
import tf2torch

source, out = sys.argv[1:]
tf2torch.convert(source).save(out)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in HIDDEN)
assert not loaded, loaded
"""


def test_layers_model_converts_without_tensorflow(tmp_path):
    """A subprocess whose imports of TensorFlow, tensorflowjs and Keras fail; its output is
    compared with TensorFlow's here."""
    src = Path(tf2torch.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run([sys.executable, "-c", HIDE_TENSORFLOW, str(LAYERS_UINT8 / "model.json"), str(tmp_path)],
                          check=False, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    from safetensors.torch import load_file

    result = tf2torch.convert(str(LAYERS_UINT8 / "model.json"))
    module = result.module
    module.load_state_dict(load_file(tmp_path / "model.safetensors"), strict=True)
    _assert_matches_tf(result, LAYERS_UINT8)

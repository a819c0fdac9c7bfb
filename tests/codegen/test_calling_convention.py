"""The generated forward takes its inputs in the Keras model's order and names its outputs as
Keras does: a dict-returning source gives a NamedTuple with the dict's keys."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import tf2torch
from conftest import perturb_weights


def test_dict_inputs_and_outputs_keep_keras_order_and_names(keras, tmp_path):
    zeta = keras.Input((3,), name="zeta")
    alpha = keras.Input((5,), name="alpha")
    x = keras.layers.Concatenate(name="join")([zeta, alpha])
    outputs = {"score": keras.layers.Dense(2, name="dense_z")(x), "aux": keras.layers.Dense(1, name="dense_a")(x)}
    model = keras.Model({"zeta": zeta, "alpha": alpha}, outputs)
    perturb_weights(model)
    path = tmp_path / "dict_io.keras"
    model.save(str(path))
    result = tf2torch.convert(str(path))
    assert "def forward(self, zeta: torch.Tensor, alpha: torch.Tensor) -> DictIoOutputs:" in result.source_code
    assert "Outputs (fields of DictIoOutputs):\n    score  float32[N, 2]\n    aux  float32[N, 1]" in result.source_code
    rng = np.random.default_rng(0)
    z, a = rng.standard_normal((3, 3)).astype("float32"), rng.standard_normal((3, 5)).astype("float32")
    expected = model({"zeta": z, "alpha": a})
    got = result.module(torch.from_numpy(z), torch.from_numpy(a))  # positional, in Keras' order
    assert got._fields == ("score", "aux")
    for name in ("score", "aux"):
        np.testing.assert_allclose(getattr(got, name).detach().numpy(), np.asarray(expected[name]), atol=1e-5)
    report = result.verify([z, a], keras_model=model)
    assert report.ok and [o.name for o in report.outputs] == ["score", "aux"], report.table()
    ruff = Path(sys.executable).with_name("ruff")
    if ruff.exists():
        result.save(tmp_path / "out")
        done = subprocess.run([str(ruff), "check", "--isolated", "--select", "E,F,I", str(tmp_path / "out" / "model.py")],
                              check=False, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout


def test_keras_hub_backbone_takes_inputs_in_its_own_order(tmp_path):
    keras_hub = pytest.importorskip("keras_hub")
    backbone = keras_hub.models.BertBackbone(vocabulary_size=30, num_layers=1, num_heads=2, hidden_dim=8,
                                             intermediate_dim=16, max_sequence_length=12)
    perturb_weights(backbone)
    path = tmp_path / "bert.keras"
    backbone.save(str(path))
    result = tf2torch.convert(str(path))
    assert result.graph.input_names == ["token_ids", "segment_ids", "padding_mask"]
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, 30, (2, 7)).astype("int32")
    segments = rng.integers(0, 2, (2, 7)).astype("int32")
    mask = np.ones((2, 7), "int32")
    mask[1, 4:] = 0
    expected = backbone({"token_ids": tokens, "segment_ids": segments, "padding_mask": mask})
    got = result.module(*(torch.from_numpy(a) for a in (tokens, segments, mask)))
    assert got._fields == ("sequence_output", "pooled_output")
    for name in got._fields:
        want = np.asarray(expected[name])
        np.testing.assert_allclose(getattr(got, name).detach().numpy(), want, atol=1e-5 * max(1.0, np.abs(want).max()))

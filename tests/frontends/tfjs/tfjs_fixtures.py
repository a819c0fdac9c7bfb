"""The committed TF.js fixtures (written by scripts/make_tfjs_fixtures.py with the
tensorflowjs converter) and helpers to make damaged copies of them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "tfjs"
LAYERS = FIXTURES / "small_cnn_layers"
LAYERS_UINT8 = FIXTURES / "small_cnn_layers_uint8"
GRAPH = FIXTURES / "small_cnn_graph"
GRAPH_FLOAT16 = FIXTURES / "small_cnn_graph_float16"
SEQUENCE = FIXTURES / "sequence_layers"
KERAS3 = FIXTURES / "keras3_layers"


def copy_fixture(fixture: Path, destination: Path) -> Path:
    """A writable copy of the fixture; returns its model.json."""
    shutil.copytree(fixture, destination)
    return destination / "model.json"


def edit_model_json(model_json: Path, edit) -> None:
    document = json.loads(model_json.read_text())
    edit(document)
    model_json.write_text(json.dumps(document))


def expected(fixture: Path) -> tuple[np.ndarray, np.ndarray]:
    """The input batch (NHWC) and the output TensorFlow computed for it on the source model."""
    with np.load(fixture / "expected.npz") as data:
        return data["x"], data["y"]


def run_nchw(module, x_nhwc: np.ndarray) -> np.ndarray:
    """The module on a Keras-layout batch (images are fed NCHW; sequences keep their layout)."""
    import torch

    x = x_nhwc.transpose(0, 3, 1, 2) if x_nhwc.ndim == 4 else x_nhwc
    with torch.no_grad():
        return module(torch.from_numpy(np.ascontiguousarray(x))).numpy()

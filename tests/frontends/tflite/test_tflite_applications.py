"""The 40 keras.applications models (weights=None, perturbed weights, realistic BatchNorm
statistics: tests/e2e/test_applications.py) written to float32 .tflite by TensorFlow's TFLite
converter, converted and compared with the LiteRT interpreter: max abs error <= 1e-5 x max
|output| (1e-4 for deep models), or, above it, no farther from the exact result (the same
Keras model in float64) than LiteRT's own float32 result is; every parameter trainable; every
BatchNorm the file still has (the converter folds those after a conv) one ChannelAffine module.
Behind the `zoo` marker (`pytest -m zoo tests/frontends/tflite/test_tflite_applications.py -rP`
prints one table row per model: docs/tflite_zoo.md); ~1-5 min per model on 2 cores, most of it
in the TFLite converter."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "e2e"))
from test_applications import MIN_SIZE, ZOO_MODELS, build_application, exact_logits  # the zoo's models

pytest.importorskip("ai_edge_litert")
pytest.importorskip("tflite")

BOUND, DEEP_BOUND = 1e-5, 1e-4
DEEP_LAYERS = 50  # models with more convolutions / dense layers than this accumulate more fp32 rounding
SIZE = 64  # small inputs keep the sweep quick; models with a larger minimum get their minimum
# EfficientNets' random networks are ill-conditioned on small maps (see MIN_SIZE's note).
SIZES = {**{name: 96 for name in ZOO_MODELS if name.startswith("EfficientNet")}, **MIN_SIZE}


def _weighted_layers(model) -> int:
    return sum(type(layer).__name__ in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense")
               for layer in model._flatten_layers(include_self=False))


def _unfoldable_batchnorms(model) -> int:
    """BatchNorms the TFLite converter cannot fold into the conv / dense before them (after an
    add, a concatenation, an activation): the file keeps them as a scale and an offset."""
    weighted = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense")
    return sum(type(layer).__name__ == "BatchNormalization"
               and type(layer.input._keras_history.operation).__name__ not in weighted
               for layer in model._flatten_layers(include_self=False))


def _trainable_fraction(module) -> float:
    total = sum(p.numel() for p in module.parameters()) + sum(b.numel() for b in module.buffers() if b.is_floating_point())
    return sum(p.numel() for p in module.parameters() if p.requires_grad) / total


def check_tflite_application(name: str, tmp_path) -> None:
    import tensorflow as tf

    import tf2torch

    size = max(SIZE, SIZES.get(name, 0))
    model, sample = build_application(name, size)
    path = tmp_path / f"{name}.tflite"
    start = time.perf_counter()
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    export_seconds, start = time.perf_counter() - start, time.perf_counter()
    result = tf2torch.convert(path)
    convert_seconds = time.perf_counter() - start
    bound = DEEP_BOUND if _weighted_layers(model) > DEEP_LAYERS else BOUND
    x = sample(2, 1)
    report = result.verify([x], tolerance=bound)
    assert report.outputs, report.table()
    status = "OK"
    if not report.ok:  # float32 rounding, or a conversion fault? Compare both with the exact result.
        exact = exact_logits(name, size, model, x)
        litert = np.asarray(result._keras_model([x])[0], np.float64)
        with torch.no_grad():
            ours = result.module.eval()(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()
        assert np.max(np.abs(ours - exact)) <= 2 * np.max(np.abs(litert - exact)), report.table()
        status = "fp32 rounding"
    fraction = _trainable_fraction(result.module)
    affines = sum(type(m).__name__ == "ChannelAffine" for m in result.module.modules())
    # One line per model for the sweep's table (`pytest -m zoo -rP` lists them).
    print(f"| {name} | {size} | {max(o.max_rel_error for o in report.outputs):.1e} | {bound:.0e} | {status} | "
          f"{export_seconds:.0f} s | {convert_seconds:.1f} s | {fraction:.2f} | {affines} | "
          f"{len(result.source_code.splitlines())} |")
    assert fraction == 1.0
    assert affines == _unfoldable_batchnorms(model)  # every BatchNorm the file still has is one module


@pytest.mark.zoo
@pytest.mark.parametrize("name", ZOO_MODELS)
def test_tflite_zoo_application(name, tmp_path):
    check_tflite_application(name, tmp_path)

"""Build the benchmark models once and cache them under bench/.cache/models/.

Run with the bench venv's Python (TensorFlow backend). For each model it writes
  NAME.keras       keras.applications.NAME(weights=None, classifier_activation=None), with
                   realistic BatchNorm moving statistics (one training-mode pass, momentum 0)
  NAME.savedmodel/ the same model exported as a TensorFlow SavedModel (tf2onnx's input)

Usage: python bench/models.py CACHE_DIR NAME [NAME ...]   (prints one JSON line per model)
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

IMAGE_SIZE = 224
CALIBRATION_BATCH = 8


def calibration_images(batch: int = CALIBRATION_BATCH, seed: int = 0):
    """Image-like inputs: uniform [0, 255], what keras.applications models are fed."""
    import numpy as np

    return np.random.default_rng(seed).uniform(0, 255, (batch, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")


def realistic_batch_norm(model) -> None:
    """Set every BatchNorm's moving statistics from one training-mode pass (momentum 0), so
    a deep random network keeps a real output scale in eval mode."""
    import keras

    bns = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0
    model(calibration_images(), training=True)
    for bn, momentum in zip(bns, saved):
        bn.momentum = momentum


def build(cache: Path, name: str) -> dict:
    import keras

    keras_path = cache / f"{name}.keras"
    saved_path = cache / f"{name}.savedmodel"
    info: dict = {"model": name, "keras": str(keras_path), "savedmodel": str(saved_path)}
    if not keras_path.exists():
        keras.utils.set_random_seed(0)
        model = getattr(keras.applications, name)(weights=None, classifier_activation=None)
        realistic_batch_norm(model)
        tmp = keras_path.with_suffix(".tmp.keras")
        model.save(tmp)
        os.replace(tmp, keras_path)
    else:
        model = None
    if not saved_path.exists():
        model = model or keras.models.load_model(keras_path)
        start = time.perf_counter()
        tmp_dir = cache / f"{name}.savedmodel.tmp"
        model.export(str(tmp_dir), format="tf_saved_model", verbose=False)
        os.replace(tmp_dir, saved_path)
        info["export_seconds"] = time.perf_counter() - start
    return info


def main(argv: list[str]) -> int:
    cache = Path(argv[0])
    cache.mkdir(parents=True, exist_ok=True)
    for name in argv[1:]:
        print(json.dumps(build(cache, name)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Shared test helpers: build in Keras, convert, compare with TensorFlow's own output."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from pathlib import Path
from typing import Any

import numpy as np
import pytest


def perturb_weights(model: Any, seed: int = 0) -> None:
    """Make every weight non-trivial, so a dropped bias or a swapped statistic shows.

    Keras initialises biases, BN offsets and moving statistics to constants; those are
    replaced by random values (variances and scales stay positive).
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers if hasattr(model, "layers") else []:
        if hasattr(layer, "layers"):
            perturb_weights(layer, seed + 1)
            continue
        new = []
        for w in layer.weights:
            value = np.asarray(w.numpy() if hasattr(w, "numpy") else w)
            name = w.path if hasattr(w, "path") else w.name
            if "variance" in name or "gamma" in name:
                value = rng.uniform(0.5, 1.5, value.shape)
            else:
                value = value + rng.normal(0.0, 0.2, value.shape)
            new.append(value.astype(np.float32) if value.dtype.kind == "f" else value)
        if new:
            layer.set_weights(new)
            if type(layer).__name__ == "Normalization" and hasattr(layer, "finalize_state"):
                layer.finalize_state()  # Keras 3 reads adapted statistics from a cache set here


def set_batchnorm_statistics(model: Any, batch: np.ndarray) -> None:
    """Give every BatchNorm realistic moving statistics: one training-mode pass over `batch`
    with momentum 0 (moving mean/variance := the batch's), then the momenta are restored.

    Deep random networks keep a real output scale this way (with the constant initial
    statistics their activations blow up or vanish)."""
    norms = [layer for layer in _all_layers(model) if type(layer).__name__ == "BatchNormalization"]
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    try:
        model(batch, training=True)
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum


def _all_layers(model: Any) -> list[Any]:
    layers = []
    for layer in getattr(model, "layers", []):
        layers.extend(_all_layers(layer) if hasattr(layer, "layers") else [layer])
    return layers


def convert_and_compare(
    model: Any,
    tmp_path: Path,
    *,
    suffix: str = ".keras",
    batch_size: int = 3,
    training: bool = False,
    tolerance: float = 1e-5,
    perturb: bool = True,
    inputs: list[np.ndarray] | None = None,
):
    """Save `model`, convert the file, and compare with the live Keras model's output."""
    import tf2torch

    if perturb:
        perturb_weights(model)
    path = tmp_path / f"model{suffix}"
    model.save(str(path))
    result = tf2torch.convert(str(path))
    report = result.verify(inputs, batch_size=batch_size, training=training, tolerance=tolerance, keras_model=model)
    assert report.outputs, "verification compared nothing"
    assert report.ok, report.table()
    return result


@pytest.fixture
def keras():
    import keras

    return keras


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Lint every model.py the test session generated and imported (each passes through
    tf2torch.codegen.loader), in one ruff run at the end: generated code is a product.

    Under pytest-xdist each worker leaves its sources in the run's shared temporary folder and
    the controller, which finishes last, lints them all (a worker's exit status is not the run's)."""
    import linecache
    import subprocess
    import sys

    basetemp = session.config._tmp_path_factory.getbasetemp()
    worker = hasattr(session.config, "workerinput")
    folder = (basetemp.parent if worker else basetemp) / "generated-model-py"
    folder.mkdir(exist_ok=True)
    # The loader imports generated sources from memory, registered with linecache. Sources
    # with verification taps (`_tap(...)`) are internal, never written for users.
    for name, module in list(sys.modules.items()):
        text = "".join(linecache.getlines(module.__file__)) if name.startswith("tf2torch_generated_") else ""
        if text and "_tap(" not in text:
            (folder / f"{name}.py").write_text(text)
    ruff = Path(sys.executable).with_name("ruff")
    files = sorted(str(path) for path in folder.glob("*.py"))
    if worker or not files or not ruff.exists():
        return
    done = subprocess.run([str(ruff), "check", "--isolated", "--line-length", "120", "--output-format", "concise",
                           *files], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"generated model.py not lint-clean ({len(files)} checked):\n{done.stdout}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

"""Models with custom Keras code, as public Keras examples write them, converted through the
CLI with `--custom-code` pointing at the module that defines them (issue 10's corpus).

Each user module defines its classes and `build_model()`; the test builds the model from that
module, saves it with perturbed weights, converts the file with `tf2torch convert
--custom-code <module.py>` and runs the written model.py against Keras' own output.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import perturb_weights
from tf2torch import cli

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")


def _write_module(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def _import(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def _inputs(model, batch: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = []
    for tensor in model.inputs:
        shape = [batch] + [int(d) for d in tensor.shape[1:]]
        if "int" in str(tensor.dtype):
            arrays.append(rng.integers(0, 10, size=shape).astype("int32"))
        else:
            arrays.append(rng.standard_normal(shape).astype(np.float32))
    return arrays


def _run_generated(out: Path, arrays: list[np.ndarray]) -> list[np.ndarray]:
    spec = importlib.util.spec_from_file_location(f"generated_{out.parent.name}_{out.name}", out / "model.py")
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)
    module = generated.load_model(str(out / "model.safetensors"))
    module.eval()
    # Image inputs are NCHW in the generated module (its docstring says so).
    tensors = [torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2) if a.ndim == 4 else a)) for a in arrays]
    with torch.no_grad():
        result = module(*tensors)
    results = list(result.values()) if isinstance(result, dict) else list(result) if isinstance(result, (list, tuple)) else [result]
    return [r.numpy().transpose(0, 2, 3, 1) if r.ndim == 4 else r.numpy() for r in results]


def convert_with_custom_code(tmp_path: Path, name: str, source: str, suffix: str = ".keras", tolerance: float = 1e-5):
    """Build, save, convert through the CLI with --custom-code, compare: returns model.py's text."""
    module_path = _write_module(tmp_path, name, source)
    model = _import(module_path).build_model()
    perturb_weights(model)
    model_path = tmp_path / f"{name}{suffix}"
    model.save(str(model_path))
    out = tmp_path / f"out_{suffix.strip('.')}"
    assert cli.main(["convert", str(model_path), "-o", str(out), "--custom-code", str(module_path)]) == 0
    arrays = _inputs(model)
    expected = model(arrays if len(arrays) > 1 else arrays[0], training=False)
    expected = list(expected.values()) if isinstance(expected, dict) else expected if isinstance(expected, (list, tuple)) else [expected]
    actual = _run_generated(out, arrays)
    assert len(actual) == len(expected)
    for want, got in zip(expected, actual):
        want = np.asarray(want)
        scale = max(float(np.abs(want).max()), 1.0)
        np.testing.assert_allclose(got, want, rtol=0, atol=tolerance * scale)
    return (out / "model.py").read_text()


SIN_LAYER = """
    import keras
    import tensorflow as tf


    @keras.saving.register_keras_serializable(package="corpus_sin")
    class SinLayer(keras.layers.Layer):
        def call(self, inputs):
            return tf.sin(inputs)


    def build_model():
        inputs = keras.Input((7,))
        x = keras.layers.Dense(5, name="proj")(inputs)
        x = SinLayer(name="sine")(x)
        return keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
"""


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_sin_layer_becomes_torch_sin(tmp_path, suffix):
    code = convert_with_custom_code(tmp_path, "corpus_sin", SIN_LAYER, suffix)
    assert "torch.sin(" in code


DENSE_SUB_LAYER = """
    import keras
    import tensorflow as tf


    class ResidualProjection(keras.layers.Layer):
        '''Not registered with Keras: found in the module by --custom-code.'''

        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.dense = keras.layers.Dense(units, activation="tanh")

        def call(self, x):
            return x + self.dense(x)

        def get_config(self):
            return {**super().get_config(), "units": self.units}


    def build_model():
        inputs = keras.Input((6,))  # rank 3 lowers Dense to Tensordot: the TF frontend's run-time shapes (deliverable 1)
        x = ResidualProjection(6, name="residual")(inputs)
        return keras.Model(inputs, keras.layers.Dense(2, name="head")(x))
"""


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_custom_layer_with_dense_sub_layer(tmp_path, suffix):
    convert_with_custom_code(tmp_path, "corpus_residual", DENSE_SUB_LAYER, suffix)

"""A tf.keras 2 functional CNN calling raw TensorFlow functions converts from .h5 with
TensorFlow, Keras and tf_keras hidden (a subprocess whose imports of them fail); the result
is compared with TensorFlow's output afterwards, in this process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import torch

from conftest import perturb_weights

SRC = Path(__file__).resolve().parents[2] / "src"

HIDE_TENSORFLOW = textwrap.dedent(
    """
    import importlib.abc
    import sys

    HIDDEN = ("tensorflow", "keras", "tf_keras")

    class HideTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in HIDDEN:
                raise ImportError(f"{name} is hidden for this test")
            return None

    sys.meta_path.insert(0, HideTensorFlow())
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the blocker failed: tensorflow imported")

    import tf2torch

    source, out = sys.argv[1:]
    tf2torch.convert(source).save(out)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in HIDDEN)
    assert not loaded, loaded
    """
)


def _tf_keras_cnn():
    import tensorflow as tf
    import tf_keras

    inp = tf_keras.Input((15, 17, 3))
    x = tf_keras.layers.Conv2D(8, 3, strides=2, padding="same")(inp)
    x = tf_keras.layers.BatchNormalization()(x)
    x = tf.nn.relu(x) * 2.0 + 1.0
    x = tf_keras.layers.Conv2D(6, 3)(x)
    x = tf.reduce_mean(x, axis=[1, 2])
    x = x[:, :4]
    return tf_keras.Model(inp, tf_keras.layers.Dense(3)(x))


def test_tf_op_cnn_converts_from_h5_without_tensorflow(tmp_path):
    model = _tf_keras_cnn()
    perturb_weights(model)
    path = tmp_path / "cnn.h5"
    model.save(path)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(SRC))
    done = subprocess.run([sys.executable, "-c", HIDE_TENSORFLOW, str(path), str(out)],
                          env=env, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr

    from tf2torch.codegen.loader import import_source

    generated = import_source((out / "model.py").read_text())
    module = generated.load_model(out / "model.safetensors").eval()
    images = np.random.default_rng(0).standard_normal((4, 15, 17, 3)).astype(np.float32)
    expected = np.asarray(model(images, training=False))
    with torch.no_grad():
        actual = module(torch.from_numpy(images).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5 * max(1.0, np.abs(expected).max()))

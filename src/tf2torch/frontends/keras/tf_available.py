"""Whether TensorFlow (and tf.keras) can be imported, without importing them."""

from __future__ import annotations

import importlib.util

TF_OP_WITHOUT_TENSORFLOW = (
    "this TensorFlow function is not in tf2torch's table; with TensorFlow installed it is traced "
    "(pip install 'tf2torch[tf]')"
)


def tensorflow_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("tensorflow", "tf_keras"))

"""Live keras.Model objects (Keras 3 or tf_keras) are saved to a private temp file first,
so that they take exactly the same path as files do."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from tf2torch.errors import BadModelFile


def save_live_model(model: Any) -> tuple[tempfile.TemporaryDirectory, str]:
    temp_dir = tempfile.TemporaryDirectory(prefix="tf2torch-live-")
    module = type(model).__module__
    if module.startswith("tf_keras") or "tf_keras" in module:
        path = os.path.join(temp_dir.name, f"{model.name}.h5")
        model.save(path)
    elif hasattr(model, "save") and hasattr(model, "get_config"):
        path = os.path.join(temp_dir.name, f"{model.name}.keras")
        model.save(path)
    else:
        temp_dir.cleanup()
        raise BadModelFile(f"{model!r} is not a Keras model; pass a keras.Model or a path to a .keras/.h5 file")
    return temp_dir, path

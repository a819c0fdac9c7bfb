"""A minimal reproduction of a layer that fails in isolation, ready for a bug report.

OUT/layer.keras    the failing layer alone, as a one-layer Keras model with its weights
                   (layer.h5 for a Keras 2 model)
OUT/input.npz      the Keras values of its inputs (input_0, input_1, ...)
OUT/model.py       tf2torch's code for it (+ model.safetensors)
OUT/reproduce.py   runs both and prints the error
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tf2torch.errors import VerificationUnavailable
from tf2torch.output import REPRO_FILES, write_outputs
from tf2torch.verify.fp64 import _keras_of
from tf2torch.verify.runner import run_keras

if TYPE_CHECKING:
    from tf2torch.api import ConversionResult
    from tf2torch.verify.layerwise import LayerCheck

SCRIPT = '''"""Keras layer {name!r} ({class_name}) against tf2torch's model.py, on the same input."""
from pathlib import Path

{imports}

HERE = Path(__file__).resolve().parent
INPUT_PERMS = {input_perms}  # Keras layout -> the layout model.py takes
OUTPUT_PERM = {output_perm}
with np.load(HERE / "input.npz") as data:
    inputs = [data[f"input_{{i}}"] for i in range(len(INPUT_PERMS))]
layer = keras.models.load_model(HERE / "{layer_file}", compile=False)
expected = np.asarray(layer(inputs if len(inputs) > 1 else inputs[0], training={training}), np.float64)
args = [torch.from_numpy(np.ascontiguousarray(a.transpose(p) if p else a)) for a, p in zip(inputs, INPUT_PERMS)]
with torch.no_grad():
    actual = load_model().train({training})(*args).numpy().astype(np.float64)
actual = actual.transpose(np.argsort(OUTPUT_PERM)) if OUTPUT_PERM else actual
error = float(np.abs(expected - actual).max())
print(f"max abs error {{error:.3e}}, relative to max |Keras output| {{error / np.abs(expected).max():.3e}}")
'''


def _one_layer_model(keras: Any, layer: Any) -> tuple[Any, list]:
    """A model of `layer` alone (a fresh copy with the same config and weights), and the
    symbolic tensors that feed it in the source model."""
    feeds = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
    inputs = [keras.Input(tuple(t.shape[1:]), dtype=t.dtype, name=f"input_{i}") for i, t in enumerate(feeds)]
    copy = type(layer).from_config(layer.get_config())
    outputs = copy(inputs if len(inputs) > 1 else inputs[0])
    copy.set_weights(layer.get_weights())
    return keras.Model(inputs, outputs, name=f"{layer.name}_alone"), list(feeds)


def write_reproduction(
    directory: Path, check: LayerCheck, result: ConversionResult, keras_model: Any, inputs: list[np.ndarray],
    training: bool,
) -> Path:
    """Write OUT/ (see the module docstring) for `check`'s layer; all files or none."""
    import tf2torch

    keras = _keras_of(keras_model)
    try:
        layer = keras_model.get_layer(check.name)
        alone, feeds = _one_layer_model(keras, layer)
    except (ValueError, TypeError, AttributeError, NotImplementedError) as exc:
        raise VerificationUnavailable(f"--minimize: layer {check.name!r} cannot be cut out on its own ({exc})") from exc
    feeder = keras.Model(keras_model.inputs, feeds)
    values = run_keras(feeder, inputs, training)
    with tempfile.TemporaryDirectory(prefix="tf2torch-minimize-") as temp:
        path = Path(temp) / "layer.keras" if keras.__name__ == "keras" else Path(temp) / "layer.h5"
        alone.save(str(path))
        converted = tf2torch.convert(str(path), model_name=_class_name(check.name))
        layer_bytes = path.read_bytes()
    buffer = io.BytesIO()
    np.savez(buffer, **{f"input_{i}": np.asarray(v) for i, v in enumerate(values)})
    from tf2torch.api import _safetensors_bytes

    script = SCRIPT.format(
        name=check.name, class_name=check.class_name, imports=_imports(keras.__name__),
        input_perms=[tuple(v.perm) if v.perm is not None else None for v in converted.graph.inputs],
        output_perm=tuple(converted.graph.outputs[0].perm) if converted.graph.outputs[0].perm is not None else None,
        training=training, layer_file=path.name,
    )
    files = {
        path.name: layer_bytes, "input.npz": buffer.getvalue(), "model.py": converted.source_code.encode(),
        "model.safetensors": _safetensors_bytes(converted.generated.state, path.name), "reproduce.py": script.encode(),
    }
    return write_outputs(directory, files, REPRO_FILES)


def _imports(keras_module: str) -> str:
    """The script's import block, sorted as ruff's isort wants it (model.py sits next to it)."""
    keras_line = "import keras" if keras_module == "keras" else "import tf_keras as keras"
    lines = sorted([keras_line, "import numpy as np", "import torch"], key=lambda line: line.split()[1])
    return "\n".join([*lines, "from model import load_model"])


def _class_name(layer_name: str) -> str:
    return "".join(part.capitalize() for part in layer_name.replace("-", "_").split("_") if part) or "Layer"

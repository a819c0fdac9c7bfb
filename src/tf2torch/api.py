"""convert() and ConversionResult: load -> import -> passes -> emit -> live module -> save/verify."""

from __future__ import annotations

import copy
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tf2torch.codegen.emit import GeneratedModule, emit_module
from tf2torch.codegen.loader import instantiate, to_tensors
from tf2torch.errors import BadModelFile, VerificationUnavailable
from tf2torch.frontends.keras.archive import KerasSource, load_keras_file
from tf2torch.frontends.keras.importer import import_keras_model
from tf2torch.frontends.keras.live import save_live_model
from tf2torch.ir import Graph
from tf2torch.passes.pipeline import run_passes
from tf2torch.verify.compare import DEFAULT_TOLERANCE, VerificationReport, compare_output
from tf2torch.verify.runner import load_keras_model, random_inputs, run_keras, run_torch


@dataclass
class ConversionResult:
    """The converted model: `module` is the generated `model.py`, imported and loaded."""

    module: torch.nn.Module
    source_code: str
    graph: Graph
    generated: GeneratedModule
    source_path: str
    keras_major: int
    compile_config: dict | None = None
    _keras_model: Any = field(default=None, repr=False)
    _temp_dir: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    @property
    def class_name(self) -> str:
        return self.generated.class_name

    @property
    def state_dict(self) -> dict[str, np.ndarray]:
        return self.generated.state

    def save(self, directory: str | os.PathLike, report: VerificationReport | None = None) -> Path:
        """Write model.py, model.safetensors (and report.json) atomically into `directory`."""
        from tf2torch.output import write_outputs

        files: dict[str, bytes] = {"model.py": self.source_code.encode()}
        files["model.safetensors"] = _safetensors_bytes(self.generated.state, self.source_path)
        if report is not None:
            files["verification.json"] = (json.dumps(report.to_dict(), indent=2) + "\n").encode()
        return write_outputs(Path(directory), files)

    def verify(
        self,
        inputs: list[np.ndarray] | str | os.PathLike | None = None,
        *,
        training: bool = False,
        batch_size: int = 2,
        tolerance: float = DEFAULT_TOLERANCE,
        custom_objects: dict | None = None,
        seed: int = 0,
        keras_model: Any = None,
    ) -> VerificationReport:
        """Run Keras and the converted module on the same inputs (random, a list of source-layout
        arrays, or an .npz path) and compare every output."""
        keras_model = self._keras_model if keras_model is None else keras_model
        if keras_model is None:
            keras_model = load_keras_model(self.source_path, self.keras_major, custom_objects)
        arrays = _resolve_inputs(inputs, self.graph, batch_size, seed)
        if training:
            # Training mode updates BatchNorm statistics: never touch the user's objects.
            keras_model = _clone_keras(keras_model)
        expected = run_keras(keras_model, arrays, training)
        module = copy.deepcopy(self.module) if training else self.module
        actual = run_torch(module, self.graph, arrays, training)
        report = VerificationReport(self.source_path, "train" if training else "eval", int(arrays[0].shape[0]))
        for name, ref, out in zip(self.graph.output_names or [v.name for v in self.graph.outputs], expected, actual):
            report.outputs.append(compare_output(name, ref, out, tolerance))
        return report


def convert(source: str | os.PathLike | Any, *, model_name: str | None = None) -> ConversionResult:
    """Convert a .keras / .h5 file or a live keras.Model into a PyTorch module."""
    keras_model = None
    temp_dir = None
    if isinstance(source, (str, os.PathLike)):
        path = str(source)
    else:
        temp_dir, path = save_live_model(source)
        keras_model = source
    keras_source = load_keras_file(path)
    try:
        result = _convert_source(keras_source, model_name)
    finally:
        keras_source.close()
    result._keras_model = keras_model
    result._temp_dir = temp_dir
    if keras_model is not None:
        result.source_path = getattr(keras_model, "name", "model")
    return result


def _convert_source(source: KerasSource, model_name: str | None) -> ConversionResult:
    graph = import_keras_model(source)
    graph.output_names = [v.name for v in graph.outputs]
    graph = run_passes(graph)
    name = model_name or Path(source.path).stem
    generated = emit_module(graph, Path(source.path).name, name)
    module = instantiate(generated.source, generated.class_name, generated.state)
    return ConversionResult(
        module=module,
        source_code=generated.source,
        graph=graph,
        generated=generated,
        source_path=source.path,
        keras_major=source.keras_major,
        compile_config=source.compile_config,
    )


def _safetensors_bytes(state: dict[str, np.ndarray], source: str) -> bytes:
    from safetensors.torch import save

    return save(to_tensors(state), metadata={"converted_from": os.path.basename(source), "by": "tf2torch"})


def _resolve_inputs(inputs: Any, graph: Graph, batch_size: int, seed: int) -> list[np.ndarray]:
    if inputs is None:
        return random_inputs(graph, batch_size, seed)
    if isinstance(inputs, (str, os.PathLike)):
        with np.load(inputs, allow_pickle=False) as data:
            names = list(data.files)
            arrays = [data[n] for n in names]
        if len(arrays) != len(graph.inputs):
            raise BadModelFile(f"{inputs}: holds {len(arrays)} arrays, the model takes {len(graph.inputs)} inputs")
        return arrays
    return [np.asarray(a) for a in (inputs if isinstance(inputs, (list, tuple)) else [inputs])]


def _clone_keras(model: Any) -> Any:
    try:
        import keras

        if isinstance(model, keras.Model):
            clone = keras.models.clone_model(model)
            clone.set_weights(model.get_weights())
            return clone
    except ImportError:
        pass
    try:
        import tf_keras

        clone = tf_keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
        return clone
    except ImportError as exc:
        raise VerificationUnavailable("training-mode verification needs Keras") from exc

"""convert() for .tflite files, and the LiteRT interpreter verification runs against."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tf2torch.errors import VerificationUnavailable


class LiteRTRunner:
    """Runs the .tflite file in the LiteRT interpreter; called like a Keras model by verification."""

    inference_only = True

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, inputs: Any, training: bool = False) -> list[np.ndarray]:
        if training:
            raise VerificationUnavailable("a TFLite model is an inference graph: training-mode verification is not available")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise VerificationUnavailable("verifying a .tflite model needs the LiteRT interpreter: "
                                          "pip install ai-edge-litert") from exc
        arrays = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        interpreter = Interpreter(model_path=self.path, num_threads=1)
        details = interpreter.get_input_details()
        for detail, array in zip(details, arrays):
            if tuple(detail["shape"]) != array.shape:
                interpreter.resize_tensor_input(detail["index"], list(array.shape))
        interpreter.allocate_tensors()
        for detail, array in zip(details, arrays):
            interpreter.set_tensor(detail["index"], np.ascontiguousarray(array, dtype=detail["dtype"]))
        interpreter.invoke()
        outputs = {d["index"]: d for d in interpreter.get_output_details()}
        order = interpreter._interpreter.OutputIndices() if hasattr(interpreter, "_interpreter") else list(outputs)
        return [np.array(interpreter.get_tensor(i)) for i in order]


def convert_tflite(path: str, model_name: str | None = None) -> Any:
    from tf2torch.api import ConversionResult
    from tf2torch.codegen.emit import emit_module
    from tf2torch.frontends.tflite.importer import import_tflite
    from tf2torch.passes.pipeline import run_passes

    graph = run_passes(import_tflite(path))
    generated = emit_module(graph, Path(path).name, model_name or graph.name)
    compile(generated.source, "model.py", "exec")  # a syntax check; the module is built on first use
    result = ConversionResult(source_code=generated.source, graph=graph, generated=generated, source_path=path,
                              keras_major=0)
    result._keras_model = LiteRTRunner(path)
    result._file_path = path
    return result

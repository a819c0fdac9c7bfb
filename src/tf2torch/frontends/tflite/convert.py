"""convert() for .tflite files, and the LiteRT interpreter verification runs against."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tf2torch.api import ConversionResult
from tf2torch.errors import UnsupportedFeature, VerificationUnavailable
from tf2torch.frontends.tflite.quantization import QuantizedModel


class LiteRTRunner:
    """Runs the .tflite file in the LiteRT interpreter; called like a Keras model by verification.

    Inputs and outputs are real values: an integer input of the file is fed the input rounded
    to its grid (q = round(x / scale) + zero_point), an integer output is read back as
    (q - zero_point) * scale, as the converted model (which computes in float) expects."""

    inference_only = True
    reference_name = "the LiteRT interpreter"

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, inputs: Any, training: bool = False, reference_kernels: bool = False) -> list[np.ndarray]:
        if training:
            raise VerificationUnavailable("a TFLite model is an inference graph: training-mode verification is not available")
        try:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType
        except ImportError as exc:
            raise VerificationUnavailable("verifying a .tflite model needs the LiteRT interpreter: "
                                          "pip install ai-edge-litert") from exc
        arrays = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        # reference_kernels: TFLite's builtin kernels without the default XNNPACK delegate.
        resolver = {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
        interpreter = Interpreter(model_path=self.path, num_threads=1, **(resolver if reference_kernels else {}))
        details = interpreter.get_input_details()
        for detail, array in zip(details, arrays):
            if tuple(detail["shape"]) != array.shape:
                interpreter.resize_tensor_input(detail["index"], list(array.shape))
        interpreter.allocate_tensors()
        for detail, array in zip(details, arrays):
            interpreter.set_tensor(detail["index"], _to_file_type(np.asarray(array), detail))
        interpreter.invoke()
        outputs = {d["index"]: d for d in interpreter.get_output_details()}
        order = interpreter._interpreter.OutputIndices() if hasattr(interpreter, "_interpreter") else list(outputs)
        return [_to_real(np.array(interpreter.get_tensor(i)), outputs[i]) for i in order]


def _to_file_type(array: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    if dtype.kind in "iu" and scale and array.dtype.kind == "f":
        info = np.iinfo(dtype)
        array = np.clip(np.round(array / scale) + zero_point, info.min, info.max)
    return np.ascontiguousarray(array, dtype=dtype)


def _to_real(array: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if array.dtype.kind in "iu" and scale:
        return ((array.astype(np.float32) - zero_point) * np.float32(scale)).astype(np.float32)
    return array


@dataclass
class TFLiteConversionResult(ConversionResult):
    quantized: QuantizedModel = field(default_factory=lambda: QuantizedModel(""))
    keep_quantization: bool = False
    output_steps: list[float | None] = field(default_factory=list)  # each output's quantization step

    def verify(self, inputs: Any = None, **kwargs: Any) -> Any:
        """As ConversionResult.verify. A quantized file: with keep_quantization each output must
        be within one of its quantization steps of the interpreter's (on a mismatch the note
        gives how far the interpreter's own XNNPACK and reference kernels are apart on the same
        inputs); dequantized, the error is reported (status DEQUANTIZED), not judged at float
        tolerance."""
        if not self.quantized.quantized:
            return super().verify(inputs, **kwargs)
        runner, arrays = self._reference(inputs, kwargs.get("training", False), kwargs.get("batch_size", 2),
                                         None, kwargs.get("seed", 0), kwargs.get("keras_model"))
        report = super().verify(arrays, **{**kwargs, "keras_model": runner})
        report.note = quantization_note(self.quantized, self.keep_quantization)
        if not (self.keep_quantization and self.quantized.kind == "full-integer"):
            for check in report.outputs:
                check.dequantized = self.quantized.kind != "float16"
            return report
        for check, step in zip(report.outputs, self.output_steps):
            if step is not None:
                check.abs_tolerance = step * 1.001  # one step, and float32 noise in the step itself
        if not report.ok and isinstance(runner, LiteRTRunner):
            for check, spread in zip(report.outputs, kernel_spread(runner, arrays)):
                report.note += (f"\n{check.name}: LiteRT's own XNNPACK and reference kernels differ by {spread:.3e} "
                                "on these inputs: one-step rounding differences that the network amplifies.")
        return report


def kernel_spread(runner: LiteRTRunner, arrays: list[np.ndarray]) -> list[float]:
    """Max abs difference, per output, between the interpreter's default (XNNPACK) kernels and
    its reference kernels: how far integer arithmetic itself can drift on these inputs."""
    default, reference = runner(arrays), runner(arrays, reference_kernels=True)
    return [float(np.max(np.abs(np.asarray(a, np.float64) - b))) if a.size else 0.0 for a, b in zip(default, reference)]


def quantization_note(quantized: QuantizedModel, keep: bool) -> str:
    if quantized.kind == "float16":
        return "float16 weights: converted to float32 once, as the interpreter does."
    if keep and quantized.kind == "full-integer":
        return ("--keep-quantization: conv, dense, add, sub, mul, mean, sigmoid and tanh compute "
                "the integers LiteRT's int8 (XNNPACK) kernels compute; other integer tensors are rounded to the "
                "file's grid (torch fake-quant); tolerance: one quantization step of each output.")
    if keep:
        return ("--keep-quantization on a dynamic-range file: weights are rounded to the file's grid, but the "
                "interpreter also quantizes activations at run time, per batch row, which the model does not emulate.")
    return (f"DEQUANTIZED ({quantized.kind} file): the model computes in float with the file's integer weights "
            "dequantized; the interpreter computes in integers, so the error above is the file's quantization "
            "error, not float rounding. Convert with --keep-quantization to match it within one quantization step.")


def convert_tflite(path: str, model_name: str | None = None, keep_quantization: bool = False) -> TFLiteConversionResult:
    from tf2torch.codegen.emit import emit_module
    from tf2torch.frontends.tflite.importer import import_tflite
    from tf2torch.passes.pipeline import run_passes

    graph, quantized = import_tflite(path, keep_quantization)
    if keep_quantization and quantized.kind in ("", "float16"):
        raise UnsupportedFeature(f"{path}: --keep-quantization: the file has no integer-quantized tensors "
                                 f"({quantized.kind or 'float32'}); convert it without the flag")
    graph = run_passes(graph)
    if quantized.quantized:
        graph.notes += [quantization_note(quantized, keep_quantization), *quantized.io_notes]
    generated = emit_module(graph, Path(path).name, model_name or graph.name)
    compile(generated.source, "model.py", "exec")  # a syntax check; the module is built on first use
    result = TFLiteConversionResult(source_code=generated.source, graph=graph, generated=generated, source_path=path,
                                    keras_major=0, quantized=quantized, keep_quantization=keep_quantization,
                                    output_steps=quantized.output_steps)
    result._keras_model = LiteRTRunner(path)
    result._file_path = path
    return result

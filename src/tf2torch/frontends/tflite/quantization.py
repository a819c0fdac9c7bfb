"""Quantized .tflite files -> float tensors: what the rest of the frontend reads.

Constants stored as integers (int8 / uint8 weights, int32 biases) become float32 arrays,
real = (q - zero_point) * scale, per tensor or per channel; run-time tensors stored as integers
are seen as float32 holding the real values they stand for. What the file quantized is kept
(`QuantizedModel`) for `--keep-quantization`, which rounds the same tensors to the same grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tf2torch.errors import UnsupportedFeature
from tf2torch.frontends.tflite.reader import Quantization, TFLiteModel, TFLiteTensor

# Storage type -> the integer range TFLite rounds into.
INT_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}


@dataclass(frozen=True)
class Grid:
    """The integer grid a tensor is rounded to: scale / zero point per tensor or per channel."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int
    qmin: int
    qmax: int

    @property
    def step(self) -> float:
        return float(np.max(self.scale))


@dataclass
class QuantizedModel:
    # "full-integer" (run-time tensors in integers), "dynamic-range" (integer weights, float
    # activations), "float16" (float16 weights) or "" for a float32 file.
    kind: str
    activation_grids: dict[int, Grid] = field(default_factory=dict)  # run-time tensor index -> grid
    weight_grids: dict[int, Grid] = field(default_factory=dict)  # integer constant index -> grid
    output_steps: list[float | None] = field(default_factory=list)  # each model output's quantization step
    io_notes: list[str] = field(default_factory=list)  # how integer inputs / outputs map to real values

    @property
    def quantized(self) -> bool:
        return bool(self.kind)


def dequantize_model(model: TFLiteModel) -> QuantizedModel:
    """Rewrite `model`'s quantized tensors as float32 (in place) and say what was quantized."""
    activations: dict[int, Grid] = {}
    weights: dict[int, Grid] = {}
    for t in model.tensors:
        if t.quantization is None or t.dtype not in INT_RANGES and t.dtype != "int32":
            continue
        grid = _grid(model, t, t.quantization)
        if t.data is not None:
            if t.dtype != "int32":  # int32 constants are biases: their grid is finer than float32
                weights[t.index] = grid
            t.data = _dequantize(t.data, t.quantization)
        elif t.dtype == "int32":
            raise UnsupportedFeature(f"{model.path}: tensor {t.name!r} is a run-time int32 quantized tensor; "
                                     "only int8 / uint8 / int16 activations are supported")
        else:
            activations[t.index] = grid
        t.dtype = "float32"
    float16 = any(op.op_type == "DEQUANTIZE" and model.tensors[op.inputs[0]].dtype == "float16"
                  for op in model.operators)
    kind = "full-integer" if activations else "dynamic-range" if weights else "float16" if float16 else ""
    # A float output written by DEQUANTIZE carries the grid of the integer tensor it reads.
    dequantized_from = {op.outputs[0]: op.inputs[0] for op in model.operators if op.op_type == "DEQUANTIZE"}
    grids = [activations.get(i) or activations.get(dequantized_from.get(i, -1)) for i in model.outputs]
    steps = [grid.step if grid is not None else None for grid in grids]
    return QuantizedModel(kind, activations, weights, steps, _io_notes(model, activations))


def _io_notes(model: TFLiteModel, activations: dict[int, Grid]) -> list[str]:
    """The file takes / returns integers where the converted model takes / returns real values."""
    notes = []
    for role, indices in (("input", model.inputs), ("output", model.outputs)):
        for i in indices:
            grid = activations.get(i)
            if grid is not None and model.tensors[i].quantization is not None:
                dtype = next(k for k, v in INT_RANGES.items() if v == (grid.qmin, grid.qmax))
                scale, zero_point = float(grid.scale[0]), int(grid.zero_point[0])
                shifted = "q" if zero_point == 0 else f"(q - {zero_point})" if zero_point > 0 else f"(q + {-zero_point})"
                notes.append(f"The file's {role} {model.tensors[i].name!r} is {dtype}; this model's is the real "
                             f"value x = {shifted} * {scale!r}"
                             + (" (q = round(x / scale) + zero_point, clipped, gives the file's)." if role == "output"
                                else "."))
    return notes


def _grid(model: TFLiteModel, t: TFLiteTensor, q: Quantization) -> Grid:
    qmin, qmax = INT_RANGES.get(t.dtype, (-(2**31), 2**31 - 1))
    if t.dtype == "int8" and t.data is not None and len(q.scale) > 1 and (q.zero_point != 0).any():
        raise UnsupportedFeature(f"{model.path}: tensor {t.name!r}: per-channel weights with non-zero zero points")
    return Grid(q.scale, q.zero_point, q.axis, qmin, qmax)


def _dequantize(data: np.ndarray, q: Quantization) -> np.ndarray:
    shape = [1] * data.ndim
    if len(q.scale) > 1:
        shape[q.axis] = len(q.scale)
    scale = q.scale.astype(np.float64).reshape(shape)
    zero_point = q.zero_point.astype(np.float64).reshape(shape)
    return ((data.astype(np.float64) - zero_point) * scale).astype(np.float32)

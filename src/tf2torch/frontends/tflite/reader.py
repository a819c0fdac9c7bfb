"""Read and validate a .tflite flatbuffer into plain data (no TensorFlow needed).

Nothing the file declares is trusted: every vector length, buffer offset and size is checked
against the file, every tensor / operator / subgraph index against its table, and every
constant's byte size against its shape before a numpy array is made of it.
"""

from __future__ import annotations

import math
import os
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tf2torch.errors import BadModelFile

MAGIC = b"TFL3"
MAX_FILE_BYTES = 4 << 30
# TensorType enum -> numpy dtype (schema.fbs).
DTYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16",
          9: "int8", 10: "float64"}


@dataclass(frozen=True)
class Quantization:
    """real = (q - zero_point) * scale, per tensor (one scale) or per channel along `axis`."""

    scale: np.ndarray  # float32, one entry or one per channel
    zero_point: np.ndarray  # int64, as many entries as scale
    axis: int


@dataclass
class TFLiteTensor:
    index: int
    name: str
    shape: tuple[int | None, ...]  # -1 in the shape signature (a dynamic dim) -> None
    dtype: str
    data: np.ndarray | None  # a constant's value
    quantization: Quantization | None = None

    @property
    def quantized(self) -> bool:
        return self.quantization is not None


@dataclass
class TFLiteOperator:
    index: int
    op_type: str  # the builtin name, e.g. "CONV_2D"
    inputs: list[int]  # -1 marks an omitted optional input
    outputs: list[int]
    options: Any = None  # the tflite <Op>Options table, or None


@dataclass
class TFLiteModel:
    path: str
    tensors: list[TFLiteTensor]
    operators: list[TFLiteOperator]
    inputs: list[int]
    outputs: list[int]
    subgraph_count: int = 1
    description: str = field(default="")


def is_tflite_file(path: str | Path) -> bool:
    path = Path(path)
    if path.suffix == ".tflite":
        return True
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False  # never open a FIFO, device or socket to sniff it (it may block)
        with open(path, "rb") as f:
            return f.read(8)[4:8] == MAGIC
    except OSError:
        return False


def read_tflite(path: str | Path) -> TFLiteModel:
    """The first subgraph of a .tflite file; BadModelFile if the file is not a sound one."""
    path = str(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise BadModelFile(f"{path}: cannot read the file ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise BadModelFile(f"{path}: not a regular file (a directory, FIFO, device or socket is never opened)")
    size = info.st_size
    if size > MAX_FILE_BYTES:
        raise BadModelFile(f"{path}: {size} bytes is larger than the 4 GiB a .tflite flatbuffer can address")
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8 or buf[4:8] != MAGIC:
        raise BadModelFile(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier at byte 4); "
                           "pass a .tflite file written by the TFLite converter")
    try:
        return _parse(path, buf)
    except BadModelFile:
        raise
    except (IndexError, struct.error, ValueError, TypeError, UnicodeDecodeError, OverflowError) as exc:
        raise BadModelFile(f"{path}: corrupt TFLite flatbuffer ({type(exc).__name__}: {exc}); "
                           "re-export the model with the TFLite converter") from None


def _length(path: str, buf: bytes, n: int, what: str, item_bytes: int = 4) -> int:
    if n < 0 or n * item_bytes > len(buf):
        raise BadModelFile(f"{path}: {what} declares {n} entries, more than the file can hold")
    return n


def _parse(path: str, buf: bytes) -> TFLiteModel:
    import tflite

    model = tflite.Model.GetRootAs(buf, 0)
    n_subgraphs = _length(path, buf, model.SubgraphsLength(), "the subgraph table")
    if n_subgraphs == 0:
        raise BadModelFile(f"{path}: the model has no subgraph")
    codes = []
    for i in range(_length(path, buf, model.OperatorCodesLength(), "the operator-code table")):
        code = model.OperatorCodes(i)
        builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
        name = tflite.utils.BUILTIN_OPCODE2NAME.get(builtin)
        if name == "CUSTOM" or name is None:
            custom = code.CustomCode()
            name = f"CUSTOM:{custom.decode(errors='replace') if custom else builtin}"
        codes.append(name)
    n_buffers = _length(path, buf, model.BuffersLength(), "the buffer table")
    graph = model.Subgraphs(0)
    n_tensors = _length(path, buf, graph.TensorsLength(), "the tensor table")
    tensors = [_tensor(path, buf, model, graph.Tensors(i), i, n_buffers) for i in range(n_tensors)]

    def tensor_index(i: int, where: str, optional: bool = False) -> int:
        if optional and i == -1:
            return -1
        if not 0 <= i < n_tensors:
            raise BadModelFile(f"{path}: {where} refers to tensor {i}, the subgraph has {n_tensors}")
        return int(i)

    operators = []
    for k in range(_length(path, buf, graph.OperatorsLength(), "the operator table")):
        op = graph.Operators(k)
        code = op.OpcodeIndex()
        if not 0 <= code < len(codes):
            raise BadModelFile(f"{path}: operator {k} has opcode index {code}, the model has {len(codes)} op codes")
        where = f"operator {k} ({codes[code]})"
        ins = [tensor_index(int(op.Inputs(j)), where, optional=True)
               for j in range(_length(path, buf, op.InputsLength(), where))]
        outs = [tensor_index(int(op.Outputs(j)), where) for j in range(_length(path, buf, op.OutputsLength(), where))]
        operators.append(TFLiteOperator(k, codes[code], ins, outs, _options(tflite, op, codes[code])))
    inputs = [tensor_index(int(graph.Inputs(j)), "the subgraph inputs")
              for j in range(_length(path, buf, graph.InputsLength(), "the subgraph inputs"))]
    outputs = [tensor_index(int(graph.Outputs(j)), "the subgraph outputs")
               for j in range(_length(path, buf, graph.OutputsLength(), "the subgraph outputs"))]
    return TFLiteModel(path, tensors, operators, inputs, outputs, n_subgraphs)


def _tensor(path: str, buf: bytes, model: Any, t: Any, index: int, n_buffers: int) -> TFLiteTensor:
    name = (t.Name() or b"").decode(errors="replace")
    where = f"tensor {index} ({name!r})"
    shape = [int(d) for d in (t.ShapeAsNumpy() if t.ShapeLength() else [])]
    if t.ShapeSignatureLength():
        signature = [int(d) for d in t.ShapeSignatureAsNumpy()]
        if len(signature) == len(shape):
            shape = [d if s != -1 else -1 for d, s in zip(shape, signature)]
    if any(d < -1 for d in shape):
        raise BadModelFile(f"{path}: {where} has a negative dimension {shape}")
    code = t.Type()
    dtype = DTYPES.get(code, f"tflite_type_{code}")
    quantization = _quantization(path, buf, t.Quantization(), shape, where)
    data = None
    b = t.Buffer()
    if not 0 <= b < max(n_buffers, 1):
        raise BadModelFile(f"{path}: {where} refers to buffer {b}, the model has {n_buffers}")
    if b > 0:
        raw = _buffer_bytes(path, buf, model.Buffers(b), where)
        if raw is not None:
            if dtype not in DTYPES.values():
                raise BadModelFile(f"{path}: {where} holds data of unknown TFLite type {code}")
            if -1 in shape:
                raise BadModelFile(f"{path}: {where} is a constant with a dynamic shape {shape}")
            expected = math.prod(shape) * np.dtype(dtype).itemsize  # exact: no int64 wrap-around
            if len(raw) != expected:
                raise BadModelFile(f"{path}: {where} has shape {shape} ({dtype}, {expected} bytes) "
                                   f"but its buffer holds {len(raw)} bytes")
            data = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    return TFLiteTensor(index, name, tuple(None if d == -1 else d for d in shape), dtype, data, quantization)


def _quantization(path: str, buf: bytes, quant: Any, shape: list[int], where: str) -> Quantization | None:
    if quant is None or quant.ScaleLength() == 0:
        return None
    n = _length(path, buf, quant.ScaleLength(), f"{where}'s quantization scales")
    scale = np.asarray(quant.ScaleAsNumpy(), np.float32).reshape(-1)
    zero_point = (np.asarray(quant.ZeroPointAsNumpy(), np.int64).reshape(-1) if quant.ZeroPointLength()
                  else np.zeros(n, np.int64))
    axis = int(quant.QuantizedDimension())
    if len(zero_point) != n:
        raise BadModelFile(f"{path}: {where} has {n} quantization scales but {len(zero_point)} zero points")
    if not (np.isfinite(scale).all() and (scale > 0).all()):
        raise BadModelFile(f"{path}: {where} has a quantization scale that is not a positive number")
    if n > 1 and not (0 <= axis < len(shape) and shape[axis] == n):
        raise BadModelFile(f"{path}: {where} has {n} per-channel scales along dimension {axis} of shape {shape}")
    return Quantization(scale, zero_point, axis)


def _buffer_bytes(path: str, buf: bytes, buffer: Any, where: str) -> bytes | None:
    offset, size = int(buffer.Offset()), int(buffer.Size())
    if offset > 1:  # large models keep buffers after the flatbuffer (offset, size from file start)
        if offset + size > len(buf):
            raise BadModelFile(f"{path}: {where}: its buffer (offset {offset}, {size} bytes) runs past the end "
                               f"of the {len(buf)}-byte file")
        return buf[offset:offset + size]
    n = buffer.DataLength()
    if n == 0:
        return None
    _length(path, buf, n, where, item_bytes=1)
    start = buffer._tab.Vector(buffer._tab.Offset(4))  # the data vector's start, checked before slicing
    if start + n > len(buf):
        raise BadModelFile(f"{path}: {where}: its data ({n} bytes) runs past the end of the file")
    return buf[start:start + n]


def _options(tflite: Any, op: Any, op_type: str) -> Any:
    table = op.BuiltinOptions()
    if table is None:
        return None
    cls = getattr(tflite, OPTION_CLASSES.get(op_type, ""), None)
    if cls is None:
        return None
    options = cls()
    options.Init(table.Bytes, table.Pos)
    return options


OPTION_CLASSES = {
    "CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "TRANSPOSE_CONV": "TransposeConvOptions", "FULLY_CONNECTED": "FullyConnectedOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions", "MAX_POOL_2D": "Pool2DOptions", "ADD": "AddOptions",
    "SUB": "SubOptions", "MUL": "MulOptions", "DIV": "DivOptions", "CONCATENATION": "ConcatenationOptions",
    "RESHAPE": "ReshapeOptions", "STRIDED_SLICE": "StridedSliceOptions", "MEAN": "ReducerOptions",
    "SUM": "ReducerOptions", "REDUCE_MAX": "ReducerOptions", "SOFTMAX": "SoftmaxOptions",
    "RESIZE_BILINEAR": "ResizeBilinearOptions", "RESIZE_NEAREST_NEIGHBOR": "ResizeNearestNeighborOptions",
    "BATCH_MATMUL": "BatchMatMulOptions", "GATHER": "GatherOptions", "GELU": "GeluOptions",
    "LEAKY_RELU": "LeakyReluOptions", "UNIDIRECTIONAL_SEQUENCE_LSTM": "UnidirectionalSequenceLSTMOptions",
}

"""TFLite builtin operators -> the TF ops they came from (on the stand-in graph of tf_graph.py).

The TFLite converter fuses a bias and an activation into conv / fully-connected / arithmetic
operators and stores kernels as OHWI; lowering undoes exactly that (HWIO kernels, a BiasAdd,
then the activation), so the TF frontend's importers fold them back into nn.Conv2d / nn.Linear
with a bias and an activation, as they do for a TF graph.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tf2torch.errors import UnsupportedFeature
from tf2torch.frontends.tflite import tf_graph
from tf2torch.frontends.tflite.channel_affine import lower_channel_affine
from tf2torch.frontends.tflite.quantization import Grid, QuantizedModel
from tf2torch.frontends.tflite.reader import TFLiteModel, TFLiteOperator, TFLiteTensor
from tf2torch.frontends.tflite.shapes import NotStatic, reshape_target, shape_entries

PADDING = {0: "SAME", 1: "VALID"}
# ActivationFunctionType -> the TF op applied after the fused operator.
FUSED = {0: None, 1: "Relu", 3: "Relu6", 4: "Tanh"}
ELEMENTWISE = {
    "ADD": "AddV2", "SUB": "Sub", "MUL": "Mul", "DIV": "RealDiv", "SQUARED_DIFFERENCE": "SquaredDifference",
    "MAXIMUM": "Maximum", "MINIMUM": "Minimum", "POW": "Pow", "LESS": "Less", "GREATER": "Greater",
    "LESS_EQUAL": "LessEqual", "GREATER_EQUAL": "GreaterEqual", "EQUAL": "Equal", "NOT_EQUAL": "NotEqual",
}
UNARY = {
    "RELU": "Relu", "RELU6": "Relu6", "LOGISTIC": "Sigmoid", "TANH": "Tanh", "ELU": "Elu", "EXP": "Exp",
    "LOG": "Log", "SQRT": "Sqrt", "RSQRT": "Rsqrt", "ABS": "Abs", "NEG": "Neg", "SQUARE": "Square",
    "HARD_SWISH": "TFLiteHardSwish", "LEAKY_RELU": "LeakyRelu", "GELU": "TFLiteGelu",
}
REDUCERS = {"MEAN": "Mean", "SUM": "Sum", "REDUCE_MAX": "Max"}
# Inputs lowering does not read (positions): shape inputs, read from the output tensor's static
# shape instead, and the LSTM's state variables (zeros at the start of every invoke).
UNREAD_INPUTS = {"TRANSPOSE_CONV": {0}, "RESHAPE": {1}, "UNIDIRECTIONAL_SEQUENCE_LSTM": {18, 19}}
# UNIDIRECTIONAL_SEQUENCE_LSTM inputs: weights per gate (i, f, c, o), then the optional ones.
LSTM_INPUT_WEIGHTS, LSTM_RECURRENT_WEIGHTS, LSTM_BIASES = (1, 2, 3, 4), (5, 6, 7, 8), (12, 13, 14, 15)
# Operators that only move or select int8 values: their output is on their input's grid already,
# so --keep-quantization adds no rounding after them when the two grids are the same.
MOVES = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "PAD", "PADV2", "MAX_POOL_2D", "STRIDED_SLICE",
         "GATHER", "CONCATENATION", "RELU", "RELU6", "SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"}
# The filter dimension of each weighted operator that indexes output channels (per-channel scales).
OUTPUT_CHANNEL_AXIS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0, "TRANSPOSE_CONV": 0}
# Operators whose int8 kernel --keep-quantization emulates exactly (integer sums, the kernel's
# own requantization; converters/quantization.py), by the kernel kind the importer matches.
# Not yet: HARD_SWISH (LiteRT's kernel is fixed point: a float lookup table misses it by a step
# on a few values in ten thousand), TRANSPOSE_CONV and AVERAGE_POOL_2D (TFLite's own kernels:
# gemmlowp fixed-point requantization, rounded integer division).
INTEGER_KERNELS = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "conv", "FULLY_CONNECTED": "dense", "ADD": "add",
                   "SUB": "sub", "MUL": "mul", "MEAN": "global_pool", "LOGISTIC": "sigmoid", "TANH": "tanh"}
LSTM_UNSUPPORTED = {9: "peephole", 10: "peephole", 11: "peephole", 16: "projection", 17: "projection",
                    20: "layer norm", 21: "layer norm", 22: "layer norm", 23: "layer norm"}


class Lowering:
    """Builds the stand-in TF graph of one TFLite subgraph, operator by operator."""

    def __init__(self, model: TFLiteModel, quantized: QuantizedModel | None = None,
                 keep_quantization: bool = False) -> None:
        self.model = model
        self.quantized = quantized or QuantizedModel("")
        self.keep_quantization = keep_quantization
        # --keep-quantization: each integer kernel's float array (as lowered) and its grid.
        self.weight_grids: list[tuple[np.ndarray, Grid]] = []
        # --keep-quantization: the float output of each emulated int8 kernel (INTEGER_KERNELS),
        # with what its emulation needs (input scales, output grid, fused activation).
        self.integer_kernels: list[tuple[tf_graph.Tensor, dict[str, Any]]] = []
        # Graph inputs rounded to the file's grid: input index -> the tensor before rounding.
        self.raw_inputs: dict[int, tf_graph.Tensor] = {}
        self.ops: list[tf_graph.Op] = []
        self.tensors: dict[int, tf_graph.Tensor] = {}
        self.unsupported: dict[str, list[str]] = {}
        self.absorbed: set[int] = set()  # operators lowered together with an earlier one
        self._op: TFLiteOperator | None = None
        self.producers = {i: op for op in model.operators for i in op.outputs}
        self.consumers: dict[int, list[TFLiteOperator]] = {}
        for op in model.operators:
            for i in op.inputs:
                self.consumers.setdefault(i, []).append(op)

    # -- tensors --------------------------------------------------------------------------

    def tensor(self, index: int) -> tf_graph.Tensor:
        if index not in self.tensors:
            t = self.model.tensors[index]
            self.tensors[index] = tf_graph.tensor(_clean(t.name) or f"t{index}", t.shape, t.dtype, t.data)
        return self.tensors[index]

    def source(self, position: int) -> TFLiteTensor:
        return self.model.tensors[self._op.inputs[position]]

    def data(self, position: int, what: str) -> np.ndarray:
        data = self.source(position).data
        if data is None:
            raise self.fail(f"a run-time {what} (only a constant {what} is supported)")
        return data

    def has_input(self, position: int) -> bool:
        return position < len(self._op.inputs) and self._op.inputs[position] != -1

    # -- ops ------------------------------------------------------------------------------

    def emit(self, op_type: str, inputs: list[tf_graph.Tensor], attrs: dict[str, Any] | None = None,
             out: tf_graph.Tensor | None = None) -> tf_graph.Tensor:
        """Add a TF op; its output is the TFLite operator's output tensor unless `out` is given."""
        target = out if out is not None else self.tensor(self._op.outputs[0])
        op = tf_graph.Op(op_type, target.name, list(inputs), [target], dict(attrs or {}), self._op.op_type)
        target.op = op
        for t in inputs:
            t._consumers.append(op)
        self.ops.append(op)
        return target

    def emit_fused(self, op_type: str, inputs: list[tf_graph.Tensor], attrs: dict[str, Any] | None = None,
                   bias: tf_graph.Tensor | None = None, activation: int = 0) -> None:
        """The operator, then its bias (BiasAdd) and its fused activation."""
        if activation not in FUSED:
            raise self.fail(f"fused activation {activation} (RELU_N1_TO_1 / SIGN_BIT)")
        steps = [s for s in (bias is not None, FUSED[activation] is not None) if s]
        final = self.tensor(self._op.outputs[0])
        x = self.emit(op_type, inputs, attrs, None if not steps else self.temp(final, op_type))
        if bias is not None:
            x = self.emit("BiasAdd", [x, bias], {}, None if FUSED[activation] is None else self.temp(final, "bias"))
        if FUSED[activation] is not None:
            self.emit(FUSED[activation], [x])

    def temp(self, like: tf_graph.Tensor, suffix: str) -> tf_graph.Tensor:
        return tf_graph.tensor(f"{like.name}/{suffix.lower()}", like.shape.dims, like.dtype.name)

    def const(self, value: Any, dtype: str = "int32", suffix: str = "const") -> tf_graph.Tensor:
        return tf_graph.const(f"{self._scope()}/{suffix}", value, dtype)

    def weight(self, array: np.ndarray, suffix: str, kernel_position: int = 1) -> tf_graph.Tensor:
        """A weight, named after the layer its kernel tensor belongs to ('model/dense/MatMul' -> 'model/dense')."""
        kernel = _clean(self.source(kernel_position).name)
        scope = kernel.rsplit("/", 1)[0] if "/" in kernel else self._scope()
        const = tf_graph.const(f"{scope}/{suffix}", np.ascontiguousarray(array, np.float32), "float32")
        grid = self.quantized.weight_grids.get(self._op.inputs[kernel_position])
        if self.keep_quantization and suffix == "kernel" and grid is not None:
            if len(grid.scale) > 1 and grid.axis != OUTPUT_CHANNEL_AXIS.get(self._op.op_type):
                raise self.fail(f"per-channel weight scales along filter dimension {grid.axis}")
            self.weight_grids.append((const.value, grid))
        return const

    def _scope(self) -> str:
        """'model/conv2d' for an output 'model/conv2d/Relu': the layer the weights belong to."""
        name = self.tensor(self._op.outputs[0]).name
        return name.rsplit("/", 1)[0] if "/" in name else name

    def fail(self, what: str) -> UnsupportedFeature:
        op = self._op
        return UnsupportedFeature(f"{self.model.path}: TFLite operator {op.index} ({op.op_type}, output "
                                  f"{self.model.tensors[op.outputs[0]].name!r}): {what} is not supported yet.")

    # -- the walk -------------------------------------------------------------------------

    def lower_all(self) -> None:
        if self.keep_quantization:
            for index in self.model.inputs:
                grid = self.quantized.activation_grids.get(index)
                if grid is not None:
                    self.raw_inputs[index] = self._round_to_grid(index, grid, "TFLite input")
        for op in live_operators(self.model):
            self.lower(op)

    def lower(self, op: TFLiteOperator) -> None:
        if op.index in self.absorbed:
            return
        self._op = op
        if not op.outputs:
            raise self.fail("an operator without outputs")
        handler = LOWERINGS.get(op.op_type)
        if handler is None:
            out = self.model.tensors[op.outputs[0]].name
            self.unsupported.setdefault(op.op_type, []).append(out)
            return
        grid = self._rounded_output_grid(op)
        if grid is None:
            handler(self, op)
            return
        # The operator writes a float tensor, then it is rounded to the file's grid: what the
        # interpreter's integer kernel stores.
        final = self.tensor(op.outputs[0])
        self.tensors[op.outputs[0]] = raw = tf_graph.tensor(final.name, final.shape.dims, final.dtype.name)
        handler(self, op)
        final.shape = raw.shape
        self.tensors[op.outputs[0]] = final
        self._emit_rounding(raw, final, grid, op.op_type)
        self._note_integer_kernel(op, raw, grid)

    def _note_integer_kernel(self, op: TFLiteOperator, raw: tf_graph.Tensor, grid: Grid) -> None:
        inputs = [self.quantized.activation_grids.get(i) or self.quantized.weight_grids.get(i) for i in op.inputs[:2]]
        if op.op_type not in INTEGER_KERNELS or inputs[0] is None or len(grid.scale) != 1:
            return
        if op.op_type in ("ADD", "SUB", "MUL") and (inputs[1] is None or len(inputs[1].scale) != 1):
            return
        scales = [float(inputs[0].scale[0])] + ([float(inputs[1].scale[0])] if op.op_type in ("ADD", "SUB", "MUL") else [])
        info = {"kind": INTEGER_KERNELS[op.op_type], "input_scales": scales, "scale": float(grid.scale[0]),
                "zero_point": int(grid.zero_point[0]), "qmin": grid.qmin, "qmax": grid.qmax,
                "fused_activation": _act(op.options) if op.options is not None else 0}
        self.integer_kernels.append((raw, info))

    def _rounded_output_grid(self, op: TFLiteOperator) -> Grid | None:
        """The grid --keep-quantization rounds `op`'s output to, if any."""
        if not self.keep_quantization or len(op.outputs) != 1:
            return None
        grid = self.quantized.activation_grids.get(op.outputs[0])
        if grid is None:
            return None
        inputs = [self.quantized.activation_grids.get(i) for i in op.inputs if i in self.quantized.activation_grids]
        if op.op_type in MOVES and inputs and all(_same_grid(g, grid) for g in inputs):
            return None
        return grid

    def _round_to_grid(self, index: int, grid: Grid, origin: str) -> tf_graph.Tensor:
        final = self.tensor(index)
        raw = tf_graph.tensor(f"{final.name}/float", final.shape.dims, final.dtype.name)
        self._emit_rounding(raw, final, grid, origin)
        return raw

    def _emit_rounding(self, raw: tf_graph.Tensor, final: tf_graph.Tensor, grid: Grid, origin: str) -> None:
        if len(grid.scale) != 1:
            raise UnsupportedFeature(f"{self.model.path}: tensor {final.name!r}: per-channel activation scales "
                                     "are not supported with --keep-quantization")
        attrs = {"scale": float(grid.scale[0]), "zero_point": int(grid.zero_point[0]), "qmin": grid.qmin,
                 "qmax": grid.qmax}
        op = tf_graph.Op("TFLiteFakeQuant", f"{final.name}/quantize", [raw], [final], attrs, origin)
        final.op = op
        raw._consumers.append(op)
        self.ops.append(op)


def _same_grid(a: Grid, b: Grid) -> bool:
    return (a.qmin, a.qmax) == (b.qmin, b.qmax) and np.array_equal(a.scale, b.scale) and \
        np.array_equal(a.zero_point, b.zero_point)


def live_operators(model: TFLiteModel) -> list[TFLiteOperator]:
    """The operators the outputs depend on, in order: not the shape arithmetic that only feeds
    shape inputs read statically (e.g. Shape -> StridedSlice -> Pack for a dynamic batch)."""
    needed = set(model.outputs)
    live = []
    for op in reversed(model.operators):
        if any(i in needed for i in op.outputs):
            live.append(op)
            skip = UNREAD_INPUTS.get(op.op_type, set())
            needed.update(i for pos, i in enumerate(op.inputs) if i != -1 and pos not in skip)
    return live[::-1]


def _clean(name: str) -> str:
    """TFLite names fused tensors 'a/Relu;a/BiasAdd;a/Conv2D': the first part names it."""
    return name.split(";", 1)[0]


def _options(low: Lowering, op: TFLiteOperator) -> Any:
    if op.options is None:
        raise low.fail("an operator without its options table")
    return op.options


def _act(options: Any) -> int:
    fn = getattr(options, "FusedActivationFunction", None)
    return int(fn()) if fn is not None else 0


def _spatial(h: int, w: int) -> list[int]:
    return [1, int(h), int(w), 1]


def lower_conv(low: Lowering, op: TFLiteOperator) -> None:
    o = _options(low, op)
    filt = low.data(1, "filter")
    attrs = {"strides": _spatial(o.StrideH(), o.StrideW()), "padding": PADDING[o.Padding()],
             "dilations": _spatial(o.DilationHFactor(), o.DilationWFactor())}
    x = low.tensor(op.inputs[0])
    dilated = _dilated_conv(low, op, attrs)
    if dilated is not None:
        x = dilated
    if op.op_type == "CONV_2D":
        kernel = filt.transpose(1, 2, 3, 0)  # OHWI -> HWIO
        op_type = "Conv2D"
    else:
        channels = x.shape.dims[-1]
        if channels is None or filt.shape[-1] % channels:
            raise low.fail(f"a depthwise filter {filt.shape} for {channels} input channels")
        kernel = filt.reshape(filt.shape[1], filt.shape[2], channels, filt.shape[-1] // channels)
        op_type = "DepthwiseConv2dNative"
    bias = low.weight(low.data(2, "bias"), "bias") if low.has_input(2) else None
    low.emit_fused(op_type, [x, low.weight(kernel, "kernel")], attrs, bias, _act(o))


def _dilated_conv(low: Lowering, op: TFLiteOperator, attrs: dict[str, Any]) -> tf_graph.Tensor | None:
    """SPACE_TO_BATCH_ND -> conv (VALID, stride 1) -> BATCH_TO_SPACE_ND, how the quantized
    converter writes a dilated convolution, becomes one convolution with that dilation and the
    paddings less the crops (explicit padding); returns its input, None for a plain conv."""
    before = low.producers.get(op.inputs[0])
    if before is None or before.op_type != "SPACE_TO_BATCH_ND":
        return None
    after = low.consumers.get(op.outputs[0], [])
    if len(after) != 1 or after[0].op_type != "BATCH_TO_SPACE_ND" or attrs["padding"] != "VALID" \
            or attrs["strides"] != [1] * 4 or attrs["dilations"] != [1] * 4:
        raise low.fail("SPACE_TO_BATCH_ND other than around a VALID, stride-1 convolution (a dilated convolution)")
    tensors = low.model.tensors
    block, pads, crops = (tensors[i].data for i in (before.inputs[1], before.inputs[2], after[0].inputs[2]))
    if block is None or pads is None or crops is None:
        raise low.fail("a dilated convolution with run-time block shape, paddings or crops")
    explicit = np.asarray(pads, np.int64).reshape(-1, 2) - np.asarray(crops, np.int64).reshape(-1, 2)
    if (explicit < 0).any():
        raise low.fail("a dilated convolution cropped beyond its padding")
    attrs.update(padding="EXPLICIT", dilations=[1, *(int(b) for b in np.asarray(block).reshape(-1)), 1],
                 explicit_paddings=[0, 0, *(int(p) for p in explicit.reshape(-1)), 0, 0])
    # The convolution now writes what BATCH_TO_SPACE_ND returns (lowered as an Identity).
    low.tensor(op.outputs[0]).shape = tf_graph.Shape(tuple(tensors[after[0].outputs[0]].shape))
    return low.tensor(before.inputs[0])


def lower_space_batch(low: Lowering, op: TFLiteOperator) -> None:
    """The two halves of a dilated convolution (see _dilated_conv): the input passes through."""
    if op.op_type == "SPACE_TO_BATCH_ND":
        if any(c.op_type not in ("CONV_2D", "DEPTHWISE_CONV_2D") for c in low.consumers.get(op.outputs[0], [])):
            raise low.fail("SPACE_TO_BATCH_ND other than before a convolution (a dilated convolution)")
        return  # the convolution reads SPACE_TO_BATCH_ND's input directly
    before = low.producers.get(op.inputs[0])
    if before is None or before.op_type not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        raise low.fail("BATCH_TO_SPACE_ND other than after a dilated convolution")
    low.emit("Identity", [low.tensor(op.inputs[0])])


def lower_transpose_conv(low: Lowering, op: TFLiteOperator) -> None:
    o = _options(low, op)
    kernel = low.data(1, "filter").transpose(1, 2, 0, 3)  # (out, H, W, in) -> HWOI
    # The output's static shape (a dynamic batch as -1): what a run-time output-shape input computes.
    sizes = low.const([-1 if d is None else d for d in low.model.tensors[op.outputs[0]].shape], suffix="output_shape")
    attrs = {"strides": _spatial(o.StrideH(), o.StrideW()), "padding": PADDING[o.Padding()], "dilations": [1] * 4}
    bias = low.weight(low.data(3, "bias"), "bias") if low.has_input(3) else None
    inputs = [sizes, low.weight(kernel, "kernel"), low.tensor(op.inputs[2])]
    low.emit_fused("Conv2DBackpropInput", inputs, attrs, bias, _act(o))


def lower_fully_connected(low: Lowering, op: TFLiteOperator) -> None:
    o = _options(low, op)
    if o.WeightsFormat() != 0:
        raise low.fail("a shuffled weights format")
    weights = low.data(1, "weight matrix")  # (units, in)
    x = low.tensor(op.inputs[0])
    if x.shape.rank != 2 and not o.KeepNumDims():
        flat = tf_graph.tensor(f"{x.name}/flat", (None, weights.shape[1]), x.dtype.name)
        x = low.emit("Reshape", [x, low.const([-1, weights.shape[1]], suffix="flat_shape")], {}, flat)
    bias = low.weight(low.data(2, "bias"), "bias") if low.has_input(2) else None
    low.emit_fused("MatMul", [x, low.weight(weights.T, "kernel")], {}, bias, _act(o))


def lower_pool(low: Lowering, op: TFLiteOperator) -> None:
    o = _options(low, op)
    attrs = {"ksize": _spatial(o.FilterHeight(), o.FilterWidth()), "strides": _spatial(o.StrideH(), o.StrideW()),
             "padding": PADDING[o.Padding()]}
    kind = "AvgPool" if op.op_type == "AVERAGE_POOL_2D" else "MaxPool"
    low.emit_fused(kind, [low.tensor(op.inputs[0])], attrs, None, _act(o))


def lower_elementwise(low: Lowering, op: TFLiteOperator) -> None:
    if op.op_type == "MUL" and lower_channel_affine(low, op):
        return
    activation = _act(op.options) if op.options is not None else 0
    inputs = [low.tensor(i) for i in op.inputs[:2]]
    low.emit_fused(ELEMENTWISE[op.op_type], inputs, {}, None, activation)


def lower_select(low: Lowering, op: TFLiteOperator) -> None:
    low.emit("SelectV2", [low.tensor(i) for i in op.inputs[:3]])


def lower_unary(low: Lowering, op: TFLiteOperator) -> None:
    attrs: dict[str, Any] = {}
    if op.op_type == "LEAKY_RELU":
        attrs["alpha"] = float(_options(low, op).Alpha())
    if op.op_type == "GELU":
        attrs["approximate"] = bool(op.options.Approximate()) if op.options is not None else False
    low.emit(UNARY[op.op_type], [low.tensor(op.inputs[0])], attrs)


def lower_concat(low: Lowering, op: TFLiteOperator) -> None:
    o = _options(low, op)
    inputs = [low.tensor(i) for i in op.inputs] + [low.const(int(o.Axis()), suffix="axis")]
    low.emit_fused("ConcatV2", inputs, {}, None, _act(o))


def lower_reshape(low: Lowering, op: TFLiteOperator) -> None:
    out = low.model.tensors[op.outputs[0]]
    shape = [-1 if d is None else d for d in out.shape]
    if op.op_type == "RESHAPE" and low.has_input(1):
        try:
            target = reshape_target(shape_entries(low.model, op.inputs[1], low.producers))
        except NotStatic:
            target = None
        if target is not None:
            shape = target
    if shape.count(-1) > 1:
        raise low.fail("a reshape with several dynamic dimensions")
    target = low.tensor(op.outputs[0])
    target.shape = tf_graph.Shape(tuple(None if d == -1 else d for d in shape))
    low.emit("Reshape", [low.tensor(op.inputs[0]), low.const(shape, suffix="shape")])


def lower_transpose(low: Lowering, op: TFLiteOperator) -> None:
    perm = low.data(1, "permutation")
    low.emit("Transpose", [low.tensor(op.inputs[0]), low.const(perm, suffix="perm")])


def lower_strided_slice(low: Lowering, op: TFLiteOperator) -> None:
    o = _options(low, op)
    if hasattr(o, "Offset") and o.Offset():
        raise low.fail("a strided slice with offset=true")
    consts = [low.const(low.data(i, name), suffix=name) for i, name in ((1, "begin"), (2, "end"), (3, "strides"))]
    attrs = {"begin_mask": o.BeginMask(), "end_mask": o.EndMask(), "ellipsis_mask": o.EllipsisMask(),
             "new_axis_mask": o.NewAxisMask(), "shrink_axis_mask": o.ShrinkAxisMask()}
    low.emit("StridedSlice", [low.tensor(op.inputs[0])] + consts, attrs)


def lower_pad(low: Lowering, op: TFLiteOperator) -> None:
    inputs = [low.tensor(op.inputs[0]), low.const(low.data(1, "padding"), suffix="paddings")]
    if op.op_type == "PADV2" and low.has_input(2):
        inputs.append(low.const(low.data(2, "pad value").reshape(()), "float32", "value"))
        low.emit("PadV2", inputs)
    else:
        low.emit("Pad", inputs)


def lower_reduce(low: Lowering, op: TFLiteOperator) -> None:
    keep = bool(op.options.KeepDims()) if op.options is not None else False
    axes = low.const(low.data(1, "axes"), suffix="axes")
    low.emit(REDUCERS[op.op_type], [low.tensor(op.inputs[0]), axes], {"keep_dims": keep})


def lower_softmax(low: Lowering, op: TFLiteOperator) -> None:
    if op.options is not None and float(op.options.Beta()) != 1.0:
        raise low.fail(f"softmax with beta={op.options.Beta()}")
    low.emit("Softmax", [low.tensor(op.inputs[0])])


def lower_resize(low: Lowering, op: TFLiteOperator) -> None:
    o = op.options
    attrs = {"align_corners": bool(o.AlignCorners()) if o is not None else False,
             "half_pixel_centers": bool(o.HalfPixelCenters()) if o is not None else False}
    kind = "ResizeBilinear" if op.op_type == "RESIZE_BILINEAR" else "ResizeNearestNeighbor"
    low.emit(kind, [low.tensor(op.inputs[0]), low.const(low.data(1, "size"), suffix="size")], attrs)


def lower_batch_matmul(low: Lowering, op: TFLiteOperator) -> None:
    o = op.options
    attrs = {"adj_x": bool(o.AdjX()) if o is not None else False, "adj_y": bool(o.AdjY()) if o is not None else False}
    low.emit("BatchMatMulV2", [low.tensor(op.inputs[0]), low.tensor(op.inputs[1])], attrs)


def lower_gather(low: Lowering, op: TFLiteOperator) -> None:
    o = op.options
    axis = int(o.Axis()) if o is not None else 0
    attrs = {"batch_dims": int(o.BatchDims()) if o is not None else 0}
    inputs = [low.tensor(op.inputs[0]), low.tensor(op.inputs[1]), low.const(axis, suffix="axis")]
    low.emit("GatherV2", inputs, attrs)


def lower_embedding_lookup(low: Lowering, op: TFLiteOperator) -> None:
    inputs = [low.tensor(op.inputs[1]), low.tensor(op.inputs[0]), low.const(0, suffix="axis")]
    low.emit("GatherV2", inputs, {"batch_dims": 0})


def lower_lstm(low: Lowering, op: TFLiteOperator) -> None:
    o = _options(low, op)
    used = [name for pos, name in LSTM_UNSUPPORTED.items() if low.has_input(pos)]
    if used:
        raise low.fail(f"an LSTM with {used[0]} weights")
    if o.TimeMajor() or o.ProjClip() or o.FusedActivationFunction() != 4:
        raise low.fail("an LSTM with time_major, projection clipping or a non-tanh activation")
    # Keras' layout: (inputs, 4 * units) kernels with the gates in the order i, f, c, o.
    kernel = np.concatenate([low.data(i, "LSTM weight").T for i in LSTM_INPUT_WEIGHTS], axis=1)
    recurrent = np.concatenate([low.data(i, "LSTM weight").T for i in LSTM_RECURRENT_WEIGHTS], axis=1)
    bias = np.concatenate([low.data(i, "LSTM bias") for i in LSTM_BIASES])
    scope = low._scope()
    attrs = {"kernel": kernel, "recurrent_kernel": recurrent, "bias": bias,
             "scope": "lstm" if scope.startswith("tfl.") else scope,  # an unnamed fused op: 'tfl.unidirectional_...'
             "cell_clip": float(o.CellClip())}
    low.emit("TFLiteLSTM", [low.tensor(op.inputs[0])], attrs)


def lower_dequantize(low: Lowering, op: TFLiteOperator) -> None:
    """DEQUANTIZE / QUANTIZE: integer tensors are already seen as the real values they hold
    (quantization.py), so converting between them and float changes nothing; the rounding of
    QUANTIZE's output is --keep-quantization's (Lowering.lower)."""
    source = low.source(0)
    if source.data is not None:
        # float16 (or integer) weights: the float32 constant the interpreter computes once.
        out = low.model.tensors[op.outputs[0]]
        out.data = source.data.astype(np.float32)  # a constant from here on, for every consumer
        return
    low.emit("Identity", [low.tensor(op.inputs[0])])


LOWERINGS: dict[str, Callable[[Lowering, TFLiteOperator], None]] = {}


def _register(fn: Callable[[Lowering, TFLiteOperator], None], *op_types: str) -> None:
    for op_type in op_types:
        if op_type in LOWERINGS:
            raise ValueError(f"TFLite operator {op_type!r} lowered twice")
        LOWERINGS[op_type] = fn


_register(lower_conv, "CONV_2D", "DEPTHWISE_CONV_2D")
_register(lower_transpose_conv, "TRANSPOSE_CONV")
_register(lower_space_batch, "SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND")
_register(lower_fully_connected, "FULLY_CONNECTED")
_register(lower_pool, "AVERAGE_POOL_2D", "MAX_POOL_2D")
_register(lower_elementwise, *ELEMENTWISE)
_register(lower_unary, *UNARY)
_register(lower_select, "SELECT", "SELECT_V2")
_register(lower_concat, "CONCATENATION")
_register(lower_reshape, "RESHAPE", "SQUEEZE", "EXPAND_DIMS")
_register(lower_transpose, "TRANSPOSE")
_register(lower_strided_slice, "STRIDED_SLICE")
_register(lower_pad, "PAD", "PADV2")
_register(lower_reduce, *REDUCERS)
_register(lower_softmax, "SOFTMAX")
_register(lower_resize, "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR")
_register(lower_batch_matmul, "BATCH_MATMUL")
_register(lower_gather, "GATHER")
_register(lower_embedding_lookup, "EMBEDDING_LOOKUP")
_register(lower_dequantize, "DEQUANTIZE", "QUANTIZE")
_register(lower_lstm, "UNIDIRECTIONAL_SEQUENCE_LSTM")

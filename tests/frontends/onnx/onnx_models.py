"""Small ONNX models written with onnx.helper, with random (seeded) weights and a dynamic batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class GraphBuilder:
    """Accumulates nodes and float32 initializers; names tensors t0, t1, ..."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def tensor(self) -> str:
        self._count += 1
        return f"t{self._count}"

    def weight(self, name: str, shape: tuple[int, ...], scale: float = 0.3, positive: bool = False) -> str:
        array = self.rng.normal(0.0, scale, shape).astype(np.float32)
        if positive:
            array = np.abs(array) + 0.5
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def constant(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str | None = None, **attrs) -> str:
        out = self.tensor()
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=name or out, **attrs))
        return out

    def model(self, inputs: list[tuple[str, list]], output: tuple[str, list], path: Path, opset: int = OPSET) -> Path:
        graph_inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n, shape in inputs]
        graph_output = helper.make_tensor_value_info(output[0], TensorProto.FLOAT, output[1])
        graph = helper.make_graph(self.nodes, "net", graph_inputs, [graph_output], self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8 if opset <= 17 else 10
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
        return path


def conv_bn(g: GraphBuilder, x: str, name: str, cin: int, cout: int, k: int, **attrs) -> str:
    groups = attrs.get("group", 1)
    y = g.op("Conv", [x, g.weight(f"{name}.weight", (cout, cin // groups, k, k)), g.weight(f"{name}.bias", (cout,))],
             name=name, kernel_shape=[k, k], **attrs)
    bn = [g.weight(f"{name}_bn.{w}", (cout,), positive=w in ("scale", "var")) for w in ("scale", "bias", "mean", "var")]
    return g.op("BatchNormalization", [y, *bn], name=f"{name}_bn", epsilon=1e-3, momentum=0.95)


def small_cnn(path: Path) -> Path:
    """Conv(asymmetric pads, stride 2)+BN+Relu, grouped dilated conv, Clip, MaxPool, ConvTranspose
    with asymmetric pads, residual Add/Mul, AveragePool, Concat, GlobalAveragePool, Flatten, Gemm, Softmax."""
    g = GraphBuilder()
    x = conv_bn(g, "image", "stem", 3, 8, 3, strides=[2, 2], pads=[1, 0, 1, 1])
    x = g.op("Relu", [x])
    y = conv_bn(g, x, "grouped", 8, 8, 3, group=4, dilations=[2, 1], pads=[2, 1, 2, 1])
    y = g.op("Clip", [y, g.constant("lo", np.array(-0.5, np.float32)), g.constant("hi", np.array(2.0, np.float32))])
    x = g.op("Add", [x, y])
    x = g.op("Mul", [x, g.weight("channel_scale", (8, 1, 1))])
    x = g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1])
    up = g.op("ConvTranspose", [x, g.weight("up.weight", (8, 4, 3, 3)), g.weight("up.bias", (4,))], name="up",
              kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 0, 1], output_padding=[1, 1])
    up = g.op("Sigmoid", [up])
    pooled = g.op("AveragePool", [up], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 0, 1])
    x = g.op("Concat", [x, g.op("Tanh", [pooled])], axis=1)
    x = g.op("GlobalAveragePool", [x])
    x = g.op("Flatten", [x])
    x = g.op("Gemm", [x, g.weight("head.weight", (5, 12)), g.weight("head.bias", (5,))], name="head", transB=1)
    x = g.op("Softmax", [x], axis=-1)
    return g.model([("image", ["batch", 3, 19, 23])], (x, ["batch", 5]), path)


def small_mlp(path: Path) -> Path:
    """MatMul+Add (a Linear), Erf-based exact GELU, Gelu, Sub/Div by constants, Reshape, Transpose, ReduceMean."""
    g = GraphBuilder(1)
    x = g.op("MatMul", ["features", g.weight("fc1.weight", (7, 12))])
    h = g.op("Add", [x, g.weight("fc1.bias", (12,))])
    half = g.constant("half", np.array(0.5, np.float32))
    erf = g.op("Erf", [g.op("Div", [h, g.constant("sqrt2", np.array(np.sqrt(2.0), np.float32))])])
    h = g.op("Mul", [g.op("Mul", [h, half]), g.op("Add", [erf, g.constant("one", np.array(1.0, np.float32))])])
    h = g.op("Reshape", [h, g.constant("shape", np.array([0, 3, 4], np.int64))])
    h = g.op("Transpose", [h], perm=[0, 2, 1])
    h = g.op("Gelu", [h], approximate="tanh") if OPSET >= 20 else g.op("LeakyRelu", [h], alpha=0.2)
    h = g.op("Sub", [h, g.weight("shift", (3,))])
    h = g.op("ReduceMean", [h], axes=[1], keepdims=0)
    x = g.op("Gemm", [h, g.weight("fc2.weight", (3, 4)), g.weight("fc2.bias", (4,))], name="fc2", alpha=0.5, beta=2.0)
    return g.model([("features", ["batch", 7])], (x, ["batch", 4]), path)


def shape_ops(path: Path) -> Path:
    """Pad (reflect, constant), Resize (nearest x2, bilinear x1.5 / x0.5), Slice with steps,
    Gather on the channel axis, Unsqueeze / Squeeze, Transpose, ReduceMean over two axes."""
    g = GraphBuilder(2)
    x = g.op("Pad", ["image", g.constant("pads", np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64))], mode="reflect")
    x = g.op("Conv", [x, g.weight("conv.weight", (6, 3, 3, 3))], name="conv", kernel_shape=[3, 3])
    x = g.op("Pad", [x, g.constant("pads2", np.array([0, 0, 1, 0, 0, 0, 0, 1], np.int64)),
                     g.constant("pad_value", np.array(0.25, np.float32))])
    empty = g.constant("no_roi", np.array([], np.float32))
    up = g.op("Resize", [x, empty, g.constant("scales", np.array([1, 1, 2, 2], np.float32))], mode="nearest",
              coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    up = g.op("Resize", [up, empty, g.constant("scales2", np.array([1, 1, 1.5, 0.5], np.float32))], mode="linear")
    up = g.op("Slice", [up, g.constant("starts", np.array([1, -11], np.int64)),
                        g.constant("ends", np.array([2**62, 12], np.int64)), g.constant("axes", np.array([2, 3], np.int64)),
                        g.constant("steps", np.array([2, 3], np.int64))])
    up = g.op("Gather", [up, g.constant("channels", np.array([4, 0, 2], np.int64))], axis=1)
    up = g.op("Unsqueeze", [up, g.constant("new_axes", np.array([1, -1], np.int64))])
    up = g.op("Squeeze", [g.op("Transpose", [up], perm=[0, 2, 1, 3, 4, 5]), g.constant("old_axes", np.array([2, 5], np.int64))])
    x = g.op("ReduceMean", [up], axes=[2, 3], keepdims=0)
    return g.model([("image", ["batch", 3, 9, 11])], (x, ["batch", 3]), path)


def embedding_model(path: Path) -> Path:
    """Gather from a 2-D initializer (an embedding table) on int64 token ids, then a MatMul."""
    g = GraphBuilder(3)
    x = g.op("Gather", [g.weight("embed.weight", (11, 6)), "tokens"], name="embed")
    x = g.op("ReduceMean", [x], axes=[1], keepdims=0)
    x = g.op("MatMul", [x, g.weight("proj.weight", (6, 2))], name="proj")
    graph_inputs = [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", 5])]
    graph_output = helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", 2])
    model = helper.make_model(helper.make_graph(g.nodes, "net", graph_inputs, [graph_output], g.initializers),
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def torch_exported_cnn(path: Path) -> Path:
    """A small residual CNN written by PyTorch's TorchScript ONNX exporter with a dynamic batch:
    module-named nodes, a `view(x.size(0), -1)` as Shape/Gather/Unsqueeze/Concat/Reshape, GELU as Erf."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 6, 3, stride=2, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(6)
            self.branch = nn.Conv2d(6, 6, 3, padding=1, groups=3)
            self.up = nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1)
            self.fc = nn.Linear(4 * 3 * 4, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.relu(self.bn(self.conv(x)))
            x = x + nn.functional.gelu(self.branch(x))
            x = nn.functional.max_pool2d(x, 2)
            x = nn.functional.adaptive_avg_pool2d(self.up(x), (3, 4))
            return torch.log_softmax(self.fc(x.view(x.size(0), -1)), dim=1)

    torch.manual_seed(0)
    module = Block().eval()
    with torch.no_grad():
        module.bn.running_mean.uniform_(-0.5, 0.5)
        module.bn.running_var.uniform_(0.5, 2.0)
    torch.onnx.export(module, (torch.randn(2, 3, 13, 17),), str(path), dynamo=False, input_names=["image"],
                      output_names=["log_probs"], dynamic_axes={"image": {0: "batch"}, "log_probs": {0: "batch"}},
                      opset_version=OPSET, training=torch.onnx.TrainingMode.PRESERVE)  # keeps BatchNorm unfused
    return path


def nhwc_boundaries(path: Path) -> Path:
    """What tf2onnx writes for a Keras NHWC model: transposes around each conv, back-to-back
    pairs between them, one-sided Clips (min only, max only)."""
    g = GraphBuilder(4)
    x = g.op("Transpose", ["image"], perm=[0, 3, 1, 2])
    x = g.op("Conv", [x, g.weight("conv1.weight", (5, 3, 3, 3)), g.weight("conv1.bias", (5,))], name="conv1",
             kernel_shape=[3, 3], auto_pad="SAME_UPPER", strides=[2, 2])
    x = g.op("Transpose", [x], perm=[0, 2, 3, 1])
    x = g.op("Clip", [x, g.constant("floor", np.array(-0.1, np.float32))])
    x = g.op("Transpose", [x], perm=[0, 3, 1, 2])
    x = g.op("Transpose", [x], perm=[0, 2, 3, 1])
    x = g.op("Transpose", [x], perm=[0, 3, 1, 2])
    x = g.op("Conv", [x, g.weight("conv2.weight", (4, 5, 1, 1))], name="conv2", kernel_shape=[1, 1])
    x = g.op("Clip", [x, "", g.constant("ceiling", np.array(0.3, np.float32))])
    x = g.op("Transpose", [x], perm=[0, 2, 3, 1])
    return g.model([("image", ["batch", 11, 9, 3])], (x, ["batch", 6, 5, 4]), path)


POINTWISE = ["Abs", "Ceil", "Cos", "Exp", "Floor", "Log", "Neg", "Reciprocal", "Sin", "Sqrt", "Selu", "Softplus",
             "Softsign", "Mish", "HardSwish", "Sigmoid", "Tanh", "Relu", "Identity", "Dropout"]


def pointwise_ops(path: Path) -> Path:
    """Every unary op, Elu / LeakyRelu / Gelu (tanh) with arguments, Pow / Max / Min, ReduceMax / Min / Sum
    and GlobalMaxPool (broadcast back), on a positive input (for Log / Sqrt), concatenated on axis 1."""
    g = GraphBuilder(5)
    x = g.op("Add", [g.op("Abs", ["values"]), g.constant("offset", np.array(0.25, np.float32))])
    parts = [g.op(op, [x]) for op in POINTWISE]
    parts.append(g.op("Elu", [x], alpha=0.7))
    parts.append(g.op("Gelu", [g.op("Neg", [x])], approximate="tanh"))
    parts.append(g.op("Pow", [x, g.constant("exponent", np.array(3.0, np.float32))]))
    parts.append(g.op("Max", [x, g.weight("floor_values", (2, 1, 3))]))
    parts.append(g.op("Min", [x, g.weight("ceiling_values", (5, 3))]))
    reduce_axes = g.constant("reduce_axes", np.array([1], np.int64))  # an input since opset 18
    for op in ("ReduceMax", "ReduceMin", "ReduceSum"):
        parts.append(g.op(op, [x, reduce_axes], keepdims=1))
    parts.append(g.op("Add", [x, g.op("GlobalMaxPool", [x])]))
    out = g.op("Concat", parts, axis=1)
    return g.model([("values", ["batch", 2, 5, 3])], (out, ["batch", 55, 5, 3]), path, opset=20)


def _recurrent(g: GraphBuilder, op_type: str, inputs: list[str], n_outputs: int, name: str, **attrs) -> list[str]:
    outputs = [g.tensor() for _ in range(n_outputs)]
    g.nodes.append(helper.make_node(op_type, inputs, outputs, name=name, **attrs))
    return outputs


def time_major_recurrent(path: Path) -> Path:
    """What tf2onnx / PyTorch write (layout 0): Transpose to time-major, a reverse LSTM with
    run-time initial states, Squeeze of its direction axis, a bidirectional GRU
    (linear_before_reset=1, a full-length constant sequence_lens) and their final states."""
    g = GraphBuilder(6)
    steps, features = 7, 5
    x = g.op("Transpose", ["sequence"], perm=[1, 0, 2])
    summary = g.op("ReduceMean", ["sequence"], axes=[1], keepdims=0)
    axis0 = g.constant("axis0", np.array([0], np.int64))
    h0 = g.op("Unsqueeze", [g.op("MatMul", [summary, g.weight("h0.weight", (features, 4))]), axis0])
    c0 = g.op("Unsqueeze", [g.op("Tanh", [g.op("MatMul", [summary, g.weight("c0.weight", (features, 4))])]), axis0])
    y, _, y_c = _recurrent(g, "LSTM", [x, g.weight("lstm.W", (1, 16, features)), g.weight("lstm.R", (1, 16, 4)),
                                       g.weight("lstm.B", (1, 32)), "", h0, c0], 3, "lstm", hidden_size=4,
                           direction="reverse")
    y = g.op("Squeeze", [y, g.constant("axis1", np.array([1], np.int64))])
    lengths = g.constant("lengths", np.full((3,), steps, np.int32))
    gru_y, gru_h = _recurrent(g, "GRU", [y, g.weight("gru.W", (2, 9, 4)), g.weight("gru.R", (2, 9, 3)),
                                         g.weight("gru.B", (2, 18)), lengths], 2, "gru", hidden_size=3,
                              direction="bidirectional", linear_before_reset=1)
    both = g.op("Reshape", [g.op("Transpose", [gru_y], perm=[2, 0, 1, 3]), g.constant("bt6", np.array([0, 0, 6], np.int64))])
    final = g.op("Reshape", [g.op("Transpose", [gru_h], perm=[1, 0, 2]), g.constant("b6", np.array([0, 6], np.int64))])
    out = g.op("Concat", [g.op("ReduceMean", [both], axes=[1], keepdims=0), g.op("Squeeze", [y_c, axis0]), final],
               axis=1)
    return g.model([("sequence", [3, steps, features])], (out, [3, 16]), path)


def gru_rnn_recurrent(path: Path) -> Path:
    """A GRU with linear_before_reset=0 (Keras' reset_after=False), then a bias-free bidirectional
    RNN with Relu: its sequence and final states."""
    g = GraphBuilder(7)
    x = g.op("Transpose", ["sequence"], perm=[1, 0, 2])
    y, _ = _recurrent(g, "GRU", [x, g.weight("gru.W", (1, 12, 5)), g.weight("gru.R", (1, 12, 4)),
                                 g.weight("gru.B", (1, 24))], 2, "gru", hidden_size=4)
    y = g.op("Squeeze", [y, g.constant("axis1", np.array([1], np.int64))])
    rnn_y, rnn_h = _recurrent(g, "RNN", [y, g.weight("rnn.W", (2, 3, 4)), g.weight("rnn.R", (2, 3, 3))], 2, "rnn",
                              hidden_size=3, direction="bidirectional", activations=["Relu", "Relu"])
    seq = g.op("ReduceMean", [rnn_y], axes=[0], keepdims=0)
    seq = g.op("Reshape", [g.op("Transpose", [seq], perm=[1, 0, 2]), g.constant("b6", np.array([0, 6], np.int64))])
    final = g.op("Reshape", [g.op("Transpose", [rnn_h], perm=[1, 0, 2]), g.constant("b6_", np.array([0, 6], np.int64))])
    out = g.op("Concat", [seq, final], axis=1)
    return g.model([("sequence", ["batch", 9, 5])], (out, ["batch", 12]), path)


def batch_major_lstm(path: Path) -> Path:
    """A bidirectional LSTM with layout=1 (batch-major; onnxruntime cannot run it) and its final cell state."""
    g = GraphBuilder(8)
    y, _, c = _recurrent(g, "LSTM", ["sequence", g.weight("lstm.W", (2, 12, 5)), g.weight("lstm.R", (2, 12, 3)),
                                     g.weight("lstm.B", (2, 24))], 3, "lstm", hidden_size=3, layout=1,
                         direction="bidirectional")
    seq = g.op("Reshape", [g.op("ReduceMean", [y], axes=[1], keepdims=0), g.constant("b6", np.array([0, 6], np.int64))])
    out = g.op("Concat", [seq, g.op("Reshape", [c, g.constant("b6_", np.array([0, 6], np.int64))])], axis=1)
    return g.model([("sequence", ["batch", 6, 5])], (out, ["batch", 12]), path)


def tensordot_dense(path: Path) -> Path:
    """tf2onnx's Tensordot of a Keras Dense on an NHWC tensor with dynamic N, H, W: the free dims'
    product (ReduceProd with axes=[0]) flattens it, the MatMul's [N*H*W, units] is reshaped back
    to sizes read off the Dense's input, which the reshaped tensor does not have."""
    g = GraphBuilder(7)
    shape = g.op("Shape", ["x"])
    free = g.op("Gather", [shape, g.constant("free", np.array([0, 1, 2], np.int64))], axis=0)
    rows = g.op("Unsqueeze", [g.op("ReduceProd", [free], axes=[0], keepdims=0), g.constant("axis0", np.array([0], np.int64))])
    flat = g.op("Reshape", ["x", g.op("Concat", [rows, g.constant("channels", np.array([5], np.int64))], axis=0)])
    y = g.op("MatMul", [flat, g.weight("dense.kernel", (5, 6))])
    y = g.op("Reshape", [y, g.op("Concat", [free, g.constant("units", np.array([6], np.int64))], axis=0)])
    return g.model([("x", ["n", "h", "w", 5])], (y, ["n", "h", "w", 6]), path)

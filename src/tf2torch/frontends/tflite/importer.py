"""A TFLite model -> IR Graph: lower every operator (lowering.py), then import the lowered ops
with the TF frontend's op importers (and the two TFLite-only activations below)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from tf2torch.errors import ConversionError, unsupported_ops_message
from tf2torch.frontends.tf import ops  # noqa: F401  (fills TF_OP_IMPORTERS)
from tf2torch.frontends.tf.context import OpContext
from tf2torch.frontends.tf.importer import GraphImporter, _common_prefix
from tf2torch.frontends.tf.registry import TF_OP_IMPORTERS
from tf2torch.frontends.tf.values import TFVal, VarRef
from tf2torch.frontends.tflite import tf_graph
from tf2torch.frontends.tflite.channel_affine import OP_TYPE as CHANNEL_AFFINE
from tf2torch.frontends.tflite.lowering import Lowering
from tf2torch.frontends.tflite.quantization import QuantizedModel, dequantize_model
from tf2torch.frontends.tflite.reader import TFLiteModel, read_tflite
from tf2torch.ir import Graph, Node, Param, TensorSpec, Value


class UnsupportedTFLiteOps(ConversionError):
    """TFLite operators without a lowering: every one at once, with a count and an example."""

    def __init__(self, source: str, operators: dict[str, list[str]]) -> None:
        self.operators = operators
        super().__init__(unsupported_ops_message(source, operators, "TFLite operator", 'output '))


def _hard_swish(ctx: OpContext) -> list[TFVal]:
    return [ctx.add("activation", [ctx.value(0)], attrs={"fn": "hard_silu", "alpha": 1.0}).outputs[0]]


def _gelu(ctx: OpContext) -> list[TFVal]:
    attrs = {"fn": "gelu", "approximate": bool(ctx.attr("approximate", False))}
    return [ctx.add("activation", [ctx.value(0)], attrs=attrs).outputs[0]]


def _lstm(ctx: OpContext) -> list[TFVal]:
    """UNIDIRECTIONAL_SEQUENCE_LSTM -> the IR's `rnn` node (nn.LSTM), all steps returned, zero
    initial states (the interpreter resets its state variables on every invoke)."""
    x = ctx.value(0)
    kernel = ctx.attr("kernel")
    units = kernel.shape[1] // 4
    cell = {"kind": "lstm", "units": units, "activation": "tanh", "recurrent_activation": "sigmoid",
            "use_bias": True, "reset_after": False, "dropout": 0.0, "recurrent_dropout": 0.0, "go_backwards": False}
    attrs = {"directions": [cell], "return_sequences": True, "return_state": False, "go_backwards": False,
             "stateful": False, "zero_output_for_mask": False, "merge_mode": None, "bidirectional": False,
             "has_mask": False, "n_initial_states": 0, "input_size": int(kernel.shape[0]), "n_outputs": 1}
    params = {name: Param(np.ascontiguousarray(ctx.attr(key), np.float32), layout, True) for name, key, layout in (
        ("forward/kernel", "kernel", "IO"), ("forward/recurrent_kernel", "recurrent_kernel", "IO"),
        ("forward/bias", "bias", "O"))}
    name = ctx.importer.claim_name(ctx.importer.clean_name(ctx.attr("scope")), ctx.op.name)
    if ctx.attr("cell_clip"):
        # The TFLite converter adds a cell clip Keras' LSTM does not have; nn.LSTM follows Keras.
        ctx.importer.graph.notes.append(
            f"{name}: TFLite clips this LSTM's cell state to +-{ctx.attr('cell_clip'):g}, nn.LSTM (like the "
            "Keras source) does not: outputs differ only where the cell state exceeds it.")
    spec = TensorSpec((x.spec.shape[0], x.spec.shape[1], units), "float32")
    return [ctx.add("rnn", [x], [spec], attrs, params, name=name).outputs[0]]


def _channel_affine(ctx: OpContext) -> list[TFVal]:
    """A BatchNormalization the converter left as x * scale + offset (channel_affine.py): one
    module, named after its layer, with the two vectors as trainable parameters."""
    x, scale, offset = ctx.value(0), ctx.inputs[1], ctx.inputs[2]
    base = scale.name.rsplit("/", 1)[0] if "/" in scale.name else scale.name
    name = ctx.importer.claim_name(base.removesuffix("/batchnorm"), scale.name)
    params = {"weight": Param(scale.array, "C", True), "bias": Param(offset.array, "C", True)}
    attrs = {"channels": int(scale.array.size)}
    return [ctx.add("channel_affine", [x], [x.spec], attrs, params, name=name).outputs[0]]


def _fake_quant(ctx: OpContext) -> list[TFVal]:
    """A tensor rounded to the file's integer grid (--keep-quantization)."""
    attrs = {key: ctx.attr(key) for key in ("scale", "zero_point", "qmin", "qmax")}
    return [ctx.add("fake_quant", [ctx.value(0)], attrs=attrs).outputs[0]]


# Activations TFLite has as builtins (TF graphs spell them out in several ops), its fused LSTM,
# the rounding of an integer tensor and a BatchNormalization left as a scale and an offset.
TFLITE_ONLY: dict[str, Callable[[OpContext], list[TFVal]]] = {
    "TFLiteHardSwish": _hard_swish, "TFLiteGelu": _gelu, "TFLiteLSTM": _lstm, "TFLiteFakeQuant": _fake_quant,
    CHANNEL_AFFINE: _channel_affine,
}


def lower_model(model: TFLiteModel, quantized: QuantizedModel | None = None, keep_quantization: bool = False) -> Lowering:
    lowering = Lowering(model, quantized, keep_quantization)
    lowering.lower_all()
    return lowering


def import_tflite(path: str, keep_quantization: bool = False) -> tuple[Graph, QuantizedModel]:
    """The IR of a .tflite file's first subgraph, and what the file quantized. Integer
    tensors become the real values they stand for; with `keep_quantization` every tensor the
    file rounds (weights and int8 activations) is rounded the same way (torch fake-quant)."""
    model = read_tflite(path)
    quantized = dequantize_model(model)
    lowering = lower_model(model, quantized, keep_quantization)
    if lowering.unsupported:
        raise UnsupportedTFLiteOps(path, lowering.unsupported)
    graph = Graph(Path(path).stem, "tflite")
    importer = GraphImporter(graph, {}, path, const_weights_trainable=True)
    importer._prefix = _common_prefix([op.name for op in lowering.ops])
    env: dict[int, TFVal] = {}
    for index in model.inputs:
        t = model.tensors[index]
        if t.dtype not in ("float32", "int32", "int64"):
            raise ConversionError(f"{path}: input {t.name!r} is {t.dtype}; float32 and integer-quantized models only")
        value = Value(_input_name(t.name), TensorSpec(t.shape, t.dtype))
        graph.inputs.append(value)
        graph.input_names.append(value.name)
        env[id(lowering.raw_inputs.get(index) or lowering.tensor(index))] = value
    for op in lowering.ops:
        _import_op(importer, op, env)
    _attach_weight_grids(graph, lowering)
    _attach_integer_kernels(lowering, env)
    for index in model.outputs:
        value = env.get(id(lowering.tensor(index)))
        if not isinstance(value, Value):
            raise ConversionError(f"{path}: output {model.tensors[index].name!r} does not depend on the inputs")
        graph.outputs.append(value)
        graph.output_names.append(model.tensors[index].name)
    _drop_repeated_rounding(graph)
    return graph, quantized


def _attach_weight_grids(graph: Graph, lowering: Lowering) -> None:
    """attrs["weight_grid"] on every node whose kernel the file stores as integers
    (--keep-quantization): the converter rounds that weight in forward. A kernel is found by
    identity (or as a view of the lowered array); an importer that copied it while reshaping
    (depthwise HWCM -> HW1(CM)) kept its element order, so its flat values identify it."""
    pending = list(lowering.weight_grids)
    for node in graph.nodes:
        param = node.params.get("kernel")
        if param is None or not pending:
            continue
        chain = {id(a) for a in _array_chain(param.array)}
        match = next((i for i, (a, _) in enumerate(pending) if id(a) in chain), None)
        if match is None:
            flat = param.array.reshape(-1)
            same = [i for i, (a, _) in enumerate(pending) if a.size == flat.size and np.array_equal(a.reshape(-1), flat)]
            match = same[0] if len(same) == 1 else None
        if match is not None:
            grid = pending.pop(match)[1]
            node.attrs["weight_grid"] = {"param": "kernel", "scale": grid.scale, "zero_point": grid.zero_point,
                                         "qmin": grid.qmin, "qmax": grid.qmax}
    if pending:
        raise ConversionError(f"{graph.name}: {len(pending)} quantized kernels were not found in the imported "
                              "graph (a tf2torch bug: --keep-quantization cannot round them)")


def _attach_integer_kernels(lowering: Lowering, env: dict[int, TFVal]) -> None:
    """attrs["integer_kernel"] on the node of every int8 operator --keep-quantization emulates
    (lowering.INTEGER_KERNELS), found from the operator's float output back past its fused
    activation. An operator whose node is not the plain op expected (e.g. merged with a
    neighbour, or with a scalar operand) keeps float fake-quant; verification judges either."""
    for raw, info in lowering.integer_kernels:
        value = env.get(id(raw))
        node = value.producer if isinstance(value, Value) else None
        if node is not None and info["fused_activation"]:
            # A fused ReLU / ReLU6 clamps the integers; any other fused activation is not emulated.
            fused = node.op == "activation" and node.attrs.get("fn") in ("relu", "relu6")
            node = node.inputs[0].producer if fused else None
        if node is not None and _is_kernel_node(node, info["kind"]):
            node.attrs["integer_kernel"] = {k: v for k, v in info.items() if k != "fused_activation"}


def _drop_repeated_rounding(graph: Graph) -> None:
    """An emulated int8 kernel already returns values on its output grid, and a ReLU keeps them
    there: the fake_quant after them would change nothing, so it goes (a ReLU6's stays: 6 need
    not be on the grid)."""
    for node in list(graph.nodes):
        if node.op != "fake_quant":
            continue
        producer = node.inputs[0].producer
        if producer is not None and producer.op == "activation" and producer.attrs.get("fn") == "relu":
            producer = producer.inputs[0].producer
        kernel = producer.attrs.get("integer_kernel") if producer is not None else None
        if kernel is not None and all(kernel[k] == node.attrs[k] for k in ("scale", "zero_point", "qmin", "qmax")):
            graph.replace_uses(node.outputs[0], node.inputs[0])
            graph.nodes.remove(node)


# Emulated int8 lookup-table kernels -> the IR activation they import as.
ACTIVATION_FNS = {"sigmoid": "sigmoid", "tanh": "tanh"}


def _is_kernel_node(node: Node, kind: str) -> bool:
    if kind in ("add", "sub", "mul"):
        return node.op == "tf_binary" and node.attrs["fn"] == kind and \
            all(op[0] not in ("scalar", "sym") for op in node.attrs["operands"])
    if kind in ACTIVATION_FNS:
        return node.op == "activation" and node.attrs.get("fn") == ACTIVATION_FNS[kind]
    if kind == "global_pool":
        return node.op == "global_pool" and node.attrs.get("kind") == "avg"
    return node.op == kind and "weight_grid" in node.attrs  # conv / dense: integer weights only


def _array_chain(array: np.ndarray) -> list[np.ndarray]:
    """`array` and the arrays it is a view of (an importer may reshape or transpose a kernel)."""
    chain = [array]
    while isinstance(chain[-1].base, np.ndarray):
        chain.append(chain[-1].base)
    return chain


def _input_name(name: str) -> str:
    """'serving_default_keras_tensor:0' -> 'keras_tensor' (the converter's signature prefix)."""
    name = name.removeprefix("serving_default_").split(":", 1)[0]
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower() or "x"


def _operand(importer: GraphImporter, t: tf_graph.Tensor, env: dict[int, TFVal]) -> TFVal:
    if id(t) in env:
        return env[id(t)]
    if t.value is None:
        raise ConversionError(f"tensor {t.name!r} is read before any operator writes it (operators out of order)")
    # Float weights become trainable parameters; integer constants (shapes, axes) stay constants.
    if t.value.dtype.kind == "f" and t.value.ndim > 0:
        return VarRef(importer.clean_name(t.name), t.value, trainable=True)
    return t.value


def _import_op(importer: GraphImporter, op: tf_graph.Op, env: dict[int, TFVal]) -> None:
    inputs = [_operand(importer, t, env) for t in op.inputs]
    fn = TFLITE_ONLY.get(op.type) or TF_OP_IMPORTERS.get(op.type)
    if fn is None:
        raise ConversionError(f"{importer.file}: no importer for {op.type} (lowered from {op.origin})")
    results = fn(OpContext(importer, op, inputs))
    for tensor, result in zip(op.outputs, results):
        if isinstance(result, np.ndarray | VarRef | Value):
            env[id(tensor)] = result
            if isinstance(result, Value):
                importer.tf_uses[id(result)] = importer.tf_uses.get(id(result), 0) + len(tensor.consumers())

"""ONNX op importers onto the IR ops the Keras and TF frontends use (conv, batch_norm, dense,
pool, activation, tf_binary, tf_reshape...). Tensors are channels-first throughout; weights
are handed over in the Keras layouts the converters expect (HWIO kernels, (in, out) dense)."""

from __future__ import annotations

import numpy as np

from tf2torch.frontends.onnx.importer import OnnxContext, OnnxVal, ShapeVec
from tf2torch.frontends.onnx.registry import register_onnx_op
from tf2torch.ir import Node, Param, TensorSpec, Value

KERNEL_LAYOUTS = {1: "WIO", 2: "HWIO", 3: "DHWIO"}


def _kernel_to_keras(weight: np.ndarray) -> np.ndarray:
    """ONNX (O, I, *k) -> Keras (*k, I, O); ConvTranspose (I, O, *k) -> Keras (*k, O, I) likewise."""
    rank = weight.ndim - 2
    return weight.transpose(tuple(range(2, 2 + rank)) + (1, 0))


def _pairs(ctx: OnnxContext, rank: int) -> list[tuple[int, int]]:
    pads = ctx.attr("pads") or [0] * (2 * rank)
    return [(int(pads[i]), int(pads[i + rank])) for i in range(rank)]


def _auto_pads(ctx: OnnxContext, x: Value, kernel, stride, dilation) -> list[tuple[int, int]] | str:
    """Explicit (begin, end) pads per spatial dim, from `pads` or `auto_pad`."""
    rank = len(kernel)
    auto = ctx.attr("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        return _pairs(ctx, rank)
    if auto == "VALID":
        return [(0, 0)] * rank
    pads = []
    for size, k, s, d in zip(x.spec.shape[2:], kernel, stride, dilation):
        if size is None:
            if auto != "SAME_UPPER":
                raise ctx.unsupported("auto_pad=SAME_LOWER on a dynamic spatial size")
            return "same_dynamic"
        total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small, large = total // 2, total - total // 2
        pads.append((small, large) if auto == "SAME_UPPER" else (large, small))
    return pads


@register_onnx_op("Conv")
def import_conv(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    weight = ctx.const(1)
    rank = weight.ndim - 2
    kernel_size = tuple(int(k) for k in weight.shape[2:])
    stride = tuple(ctx.attr("strides") or [1] * rank)
    dilation = tuple(ctx.attr("dilations") or [1] * rank)
    groups = int(ctx.attr("group", 1))
    attrs = {
        "rank": rank, "in_channels": int(weight.shape[1]) * groups, "out_channels": int(weight.shape[0]),
        "kernel_size": kernel_size, "stride": stride, "dilation": dilation, "groups": groups,
        "pads": _auto_pads(ctx, x, kernel_size, stride, dilation), "module_suffix": "",
    }
    params = {"kernel": ctx.param(_kernel_to_keras(weight), KERNEL_LAYOUTS[rank])}
    bias = ctx.const(2)
    if bias is not None:
        params["bias"] = ctx.param(bias, "O")
    return [ctx.add("conv", [x], attrs, params).outputs[0]]


@register_onnx_op("ConvTranspose")
def import_conv_transpose(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    weight = ctx.const(1)
    rank = weight.ndim - 2
    if int(ctx.attr("group", 1)) != 1:
        raise ctx.unsupported("a grouped ConvTranspose")
    if ctx.attr("output_shape") is not None or ctx.attr("auto_pad", "NOTSET") not in ("NOTSET", "", "VALID"):
        raise ctx.unsupported("output_shape / auto_pad SAME (give explicit pads)")
    pads = _pairs(ctx, rank) if ctx.attr("auto_pad", "NOTSET") != "VALID" else [(0, 0)] * rank
    # Symmetric part -> torch padding; the rest is cropped from the full output's end or start.
    padding = tuple(min(b, e) for b, e in pads)
    crops = [(b - p, e - p) for (b, e), p in zip(pads, padding)]
    attrs = {
        "rank": rank, "in_channels": int(weight.shape[0]), "out_channels": int(weight.shape[1]),
        "kernel_size": tuple(int(k) for k in weight.shape[2:]),
        "stride": tuple(ctx.attr("strides") or [1] * rank), "dilation": tuple(ctx.attr("dilations") or [1] * rank),
        "padding": padding, "output_padding": tuple(ctx.attr("output_padding") or [0] * rank), "crops": crops,
    }
    params = {"kernel": ctx.param(_kernel_to_keras(weight), KERNEL_LAYOUTS[rank])}
    bias = ctx.const(2)
    if bias is not None:
        params["bias"] = ctx.param(bias, "O")
    return [ctx.add("conv_transpose", [x], attrs, params).outputs[0]]


@register_onnx_op("BatchNormalization")
def import_batch_norm(ctx: OnnxContext) -> list[OnnxVal]:
    if int(ctx.attr("training_mode", 0)) or len(ctx.node.output) > 1:
        raise ctx.unsupported("BatchNormalization in training mode (a training graph)")
    if not int(ctx.attr("spatial", 1)):
        raise ctx.unsupported("BatchNormalization with spatial=0 (opset < 9, statistics per position)")
    x = ctx.value(0)
    scale, bias, mean, var = (ctx.const(i) for i in range(1, 5))
    params = {
        "gamma": ctx.param(scale, "C"), "beta": ctx.param(bias, "C"),
        "moving_mean": ctx.param(mean, "C", trainable=False), "moving_variance": ctx.param(var, "C", trainable=False),
    }
    # ONNX momentum weighs the running statistic, as Keras' does (torch's is 1 - that); the
    # running variance is torch's unbiased one (ONNX leaves it open; PyTorch exports are the common source).
    attrs = {"num_features": int(scale.size), "eps": float(str(np.float32(ctx.attr("epsilon", 1e-5)))),
             "momentum": float(str(np.float32(ctx.attr("momentum", 0.9)))), "center": True, "scale": True,
             "unbiased_running_var": True, "frozen": False}
    return [ctx.add("batch_norm", [x], attrs, params).outputs[0]]


@register_onnx_op("Gemm")
def import_gemm(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    weight = ctx.const(1)
    if int(ctx.attr("transA", 0)) or weight.ndim != 2:
        raise ctx.unsupported("Gemm with transA=1 or a non-matrix B")
    kernel = (weight.T if int(ctx.attr("transB", 0)) else weight) * np.float32(ctx.attr("alpha", 1.0))
    params = {"kernel": ctx.param(kernel, "IO")}
    bias = ctx.const(2)
    if bias is not None:
        units = kernel.shape[1]
        bias = bias.reshape(-1) if bias.size == units else bias  # (units,) or (1, units)
        if bias.size not in (1, units) or bias.ndim > 1:
            raise ctx.unsupported(f"a Gemm bias of shape {bias.shape} (per-row biases)")
        bias = np.array(np.broadcast_to(bias * np.float32(ctx.attr("beta", 1.0)), (units,)))
        params["bias"] = ctx.param(bias, "O")
    attrs = {"in_features": int(kernel.shape[0]), "units": int(kernel.shape[1])}
    return [ctx.add("dense", [x], attrs, params).outputs[0]]


@register_onnx_op("MatMul")
def import_matmul(ctx: OnnxContext) -> list[OnnxVal]:
    if isinstance(ctx.inputs[1], np.ndarray) and ctx.inputs[1].ndim == 2 and isinstance(ctx.inputs[0], Value):
        kernel = ctx.inputs[1]
        attrs = {"in_features": int(kernel.shape[0]), "units": int(kernel.shape[1])}
        params = {"kernel": ctx.param(kernel, "IO")}
        bias = _fusable_bias(ctx, int(kernel.shape[1]))
        if bias is not None:
            params["bias"] = ctx.param(bias, "O")
        return [ctx.add("dense", [ctx.value(0)], attrs, params).outputs[0]]
    ops = _Operands(ctx)
    operands = [ops.operand(v) for v in ctx.inputs]
    return [ops.add("tf_matmul", {"operands": operands, "transpose_a": False, "transpose_b": False}).outputs[0]]


def _fusable_bias(ctx: OnnxContext, units: int) -> np.ndarray | None:
    """The bias of a `MatMul -> Add(bias)` pair (the Add is then skipped as an identity)."""
    consumers = ctx.importer.consumers.get(ctx.node.output[0], [])
    if len(consumers) != 1 or getattr(consumers[0], "op_type", None) != "Add":  # a graph output has none
        return None
    add = consumers[0]
    other = add.input[1] if add.input[0] == ctx.node.output[0] else add.input[0]
    bias = ctx.importer.initializers.get(other)
    if bias is None or bias.shape != (units,) or bias.dtype != np.float32:
        return None
    ctx.importer.absorbed.add(id(add))
    return bias


class _Operands:
    """Inputs of tf_binary-like nodes: run-time values, scalars, and initializers (parameters)."""

    def __init__(self, ctx: OnnxContext) -> None:
        self.ctx = ctx
        self.values: list[Value] = []
        self.params: dict[str, Param] = {}
        self.var_names: dict[str, str] = {}

    def operand(self, x: OnnxVal) -> tuple:
        if isinstance(x, Value):
            if x not in self.values:
                self.values.append(x)
            return ("value", self.values.index(x))
        if x is None:
            raise self.ctx.unsupported("an absent input")
        if x.ndim == 0 or (x.size == 1 and x.dtype.kind != "f"):
            return ("scalar", _scalar(x.reshape(())))
        key = f"p{len(self.params)}"
        self.params[key] = Param(np.asarray(x), "onnx", x.dtype.kind == "f")
        self.var_names[key] = f"{self.ctx.name}/const{len(self.params) - 1}"
        return ("tensor", ("param", key))

    def add(self, op: str, attrs: dict) -> object:
        return self.ctx.add(op, self.values, dict(attrs, var_names=self.var_names), self.params)


def _scalar(x: np.ndarray) -> float | int | bool:
    if x.dtype == np.float32:
        return float(str(np.float32(x)))
    return x.item()


BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow", "Max": "maximum", "Min": "minimum"}


@register_onnx_op(*BINARY)
def import_binary(ctx: OnnxContext) -> list[OnnxVal]:
    if id(ctx.node) in ctx.importer.absorbed:
        return [ctx.inputs[0] if isinstance(ctx.inputs[0], Value) else ctx.inputs[1]]
    if len(ctx.inputs) != 2:
        raise ctx.unsupported(f"{ctx.type} with {len(ctx.inputs)} inputs")
    if all(isinstance(v, np.ndarray) for v in ctx.inputs):
        raise ctx.unsupported("arithmetic on constants only")
    if any(isinstance(v, ShapeVec) for v in ctx.inputs):
        raise ctx.unsupported("arithmetic on a run-time shape")
    if ctx.type == "Div" and any(isinstance(v, Value) and v.spec.dtype.startswith(("int", "uint")) for v in ctx.inputs):
        raise ctx.unsupported("integer Div (ONNX truncates toward zero)")
    if ctx.type == "Mul":
        x = _match_erf_gelu(*ctx.inputs)
        if x is not None:  # the written-out exact GELU becomes one F.gelu (its parts are dropped as dead code)
            return [ctx.add("activation", [x], {"fn": "gelu", "approximate": False}).outputs[0]]
    ops = _Operands(ctx)
    operands = [ops.operand(v) for v in ctx.inputs]
    return [ops.add("tf_binary", {"fn": BINARY[ctx.type], "operands": operands, "exprs": []}).outputs[0]]


def _scalar_operand(value: OnnxVal, fn: str) -> tuple[Value, float] | None:
    """(x, c) if `value` is x <fn> c (or c <fn> x for add / mul) with a scalar c."""
    node = value.producer if isinstance(value, Value) else None
    if node is None or node.op != "tf_binary" or node.attrs["fn"] != fn or len(node.inputs) != 1:
        return None
    ops = node.attrs["operands"]
    if fn == "div" and ops[0][0] != "value":
        return None
    scalars = [op[1] for op in ops if op[0] == "scalar"]
    return (node.inputs[0], float(scalars[0])) if len(scalars) == 1 else None


def _erf_gate(value: OnnxVal) -> Value | None:
    """x if `value` is 1 + erf(x / sqrt(2)) (or erf(x * 1/sqrt(2)))."""
    one = _scalar_operand(value, "add")
    if one is None or one[1] != 1.0 or one[0].producer is None:
        return None
    erf = one[0].producer
    if erf.op != "tf_unary" or erf.attrs["fn"] != "erf":
        return None
    div, mul = _scalar_operand(erf.inputs[0], "div"), _scalar_operand(erf.inputs[0], "mul")
    if div is not None and abs(div[1] - 2**0.5) < 1e-6:
        return div[0]
    if mul is not None and abs(mul[1] - 0.5**0.5) < 1e-6:
        return mul[0]
    return None


def _match_erf_gelu(a: OnnxVal, b: OnnxVal) -> Value | None:
    """x for 0.5 x (1 + erf(x / sqrt 2)) written as (x * 0.5) * gate or (x * gate) * 0.5."""
    for first, second in ((a, b), (b, a)):
        half = _scalar_operand(first, "mul")
        if half is not None and half[1] == 0.5 and _erf_gate(second) is half[0]:
            return half[0]
        if isinstance(second, np.ndarray) and second.size == 1 and float(second.reshape(())) == 0.5:
            node = first.producer if isinstance(first, Value) else None
            if node is not None and node.op == "tf_binary" and node.attrs["fn"] == "mul" and len(node.inputs) == 2:
                x, y = node.inputs
                if _erf_gate(y) is x or _erf_gate(x) is y:
                    return x if _erf_gate(y) is x else y
    return None


ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Softplus": "softplus", "Softsign": "softsign",
               "Selu": "selu", "Mish": "mish", "HardSwish": "hard_silu"}
UNARY = {"Erf": "erf", "Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Abs": "abs", "Neg": "neg", "Reciprocal": "reciprocal",
         "Floor": "floor", "Ceil": "ceil", "Sin": "sin", "Cos": "cos"}


@register_onnx_op(*ACTIVATIONS)
def import_activation(ctx: OnnxContext) -> list[OnnxVal]:
    return [ctx.add("activation", [ctx.value(0)], {"fn": ACTIVATIONS[ctx.type]}).outputs[0]]


@register_onnx_op(*UNARY)
def import_unary(ctx: OnnxContext) -> list[OnnxVal]:
    return [ctx.add("tf_unary", [ctx.value(0)], {"fn": UNARY[ctx.type]}).outputs[0]]


@register_onnx_op("LeakyRelu")
def import_leaky_relu(ctx: OnnxContext) -> list[OnnxVal]:
    slope = float(str(np.float32(ctx.attr("alpha", 0.01))))
    return [ctx.add("activation", [ctx.value(0)], {"fn": "leaky_relu", "negative_slope": slope}).outputs[0]]


@register_onnx_op("Elu")
def import_elu(ctx: OnnxContext) -> list[OnnxVal]:
    alpha = float(str(np.float32(ctx.attr("alpha", 1.0))))
    return [ctx.add("activation", [ctx.value(0)], {"fn": "elu", "alpha": alpha}).outputs[0]]


@register_onnx_op("Gelu")
def import_gelu(ctx: OnnxContext) -> list[OnnxVal]:
    approximate = ctx.attr("approximate", "none") == "tanh"
    return [ctx.add("activation", [ctx.value(0)], {"fn": "gelu", "approximate": approximate}).outputs[0]]


@register_onnx_op("Clip")
def import_clip(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    low, high = ctx.const(1), ctx.const(2)
    if ctx.attr("min") is not None or ctx.attr("max") is not None:  # opset < 11
        low, high = ctx.attr("min"), ctx.attr("max")
    low = None if low is None else _scalar(np.asarray(low, np.float32).reshape(()))
    high = None if high is None else _scalar(np.asarray(high, np.float32).reshape(()))
    if low == 0.0 and high == 6.0:
        return [ctx.add("activation", [x], {"fn": "relu6"}).outputs[0]]
    if low is None and high is None:
        return [x]
    ops = _Operands(ctx)
    if low is None or high is None:  # one bound: torch.clamp(x, min=...) / (x, max=...)
        fn, bound = ("minimum", high) if low is None else ("maximum", low)
        return [ops.add("tf_binary", {"fn": fn, "operands": [ops.operand(x), ("scalar", bound)], "exprs": []}).outputs[0]]
    operands = [ops.operand(x), ("scalar", low), ("scalar", high)]
    return [ops.add("tf_nary", {"fn": "clamp", "operands": operands}).outputs[0]]


@register_onnx_op("MaxPool", "AveragePool")
def import_pool(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    kernel = tuple(int(k) for k in ctx.attr("kernel_shape"))
    rank = len(kernel)
    stride = tuple(ctx.attr("strides") or [1] * rank)
    if int(ctx.attr("ceil_mode", 0)) or any(d != 1 for d in ctx.attr("dilations") or []):
        raise ctx.unsupported("ceil_mode=1 or dilated pooling")
    if len(ctx.node.output) > 1:
        raise ctx.unsupported("MaxPool's indices output")
    pads = _auto_pads(ctx, x, kernel, stride, (1,) * rank)
    kind = "max" if ctx.type == "MaxPool" else "avg"
    if kind == "avg" and int(ctx.attr("count_include_pad", 0)) and pads != [(0, 0)] * rank:
        raise ctx.unsupported("count_include_pad=1 with padding")
    attrs = {"kind": kind, "rank": rank, "kernel_size": kernel, "stride": stride, "pads": pads}
    return [ctx.add("pool", [x], attrs).outputs[0]]


@register_onnx_op("GlobalAveragePool", "GlobalMaxPool")
def import_global_pool(ctx: OnnxContext) -> list[OnnxVal]:
    kind = "avg" if ctx.type == "GlobalAveragePool" else "max"
    return [ctx.add("global_pool", [ctx.value(0)], {"kind": kind, "keepdims": True}).outputs[0]]


@register_onnx_op("Flatten")
def import_flatten(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    if int(ctx.attr("axis", 1)) % max(x.rank, 1) != 1:
        raise ctx.unsupported(f"Flatten with axis={ctx.attr('axis')}")
    return [ctx.add("flatten", [x]).outputs[0]]


@register_onnx_op("Reshape")
def import_reshape(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    if isinstance(ctx.inputs[1], ShapeVec) and not all(isinstance(i, int) for i in ctx.inputs[1].items):
        items = [_own_dim(ctx, x, item) for item in ctx.inputs[1].items]
        return [ctx.add("tf_reshape", [x], {"shape": items}).outputs[0]]
    shape = [int(d) for d in ctx.const(1)]
    if int(ctx.attr("allowzero", 0)) and 0 in shape:
        raise ctx.unsupported("Reshape with allowzero=1 and a zero dim")
    # 0 copies the input's dim: kept symbolic (x.shape[i]) so a dynamic batch stays dynamic.
    items = [("dim", 0, i) if d == 0 else d for i, d in enumerate(shape)]
    return [ctx.add("tf_reshape", [x], {"shape": items}).outputs[0]]


def _own_dim(ctx: OnnxContext, x: Value, item: int | tuple) -> int | tuple:
    """A run-time size ("dim", input index, axis: the TF frontend's symbolic sizes) as an axis of
    the reshaped tensor `x` itself (input 0): that axis, or one ONNX's shape
    inference gave the same symbolic name (equal names are equal sizes)."""
    if isinstance(item, int):
        return item
    _, value, axis = item
    if value is x:
        return ("dim", 0, axis)
    symbol = ctx.importer.value_symbols.get(id(value), ())[axis:axis + 1]
    own = ctx.importer.value_symbols.get(id(x), ())
    if symbol and symbol[0] is not None and symbol[0] in own:
        return ("dim", 0, own.index(symbol[0]))
    raise ctx.unsupported("a Reshape to a run-time size not found among its input's dims")


@register_onnx_op("Shape")
def import_shape(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    items = [d if d is not None else ("dim", x, i) for i, d in enumerate(x.spec.shape)]
    start, end = ctx.attr("start", 0), ctx.attr("end")
    return [ShapeVec(items[start:end])]


@register_onnx_op("Transpose")
def import_transpose(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    dims = tuple(int(d) for d in ctx.attr("perm") or reversed(range(x.rank)))
    x = _through_pointwise(ctx, x, dims)
    inner = x.producer
    if inner is not None and inner.op == "tf_transpose":
        # Transpose pairs (tf2onnx leaves them around NHWC ops) merge into one, or none when they
        # cancel; the inner one is dropped as dead code if nothing else reads it.
        x, dims = inner.inputs[0], tuple(inner.attrs["dims"][d] for d in dims)
    if dims == tuple(range(x.rank)):
        return [x]
    return [ctx.add("tf_transpose", [x], {"dims": dims}).outputs[0]]


def _is_pointwise(node: Node) -> bool:
    """One run-time input, computed value by value (scalar operands only): commutes with a transpose."""
    if len(node.inputs) != 1 or len(node.outputs) != 1:
        return False
    if node.op in ("activation", "tf_unary"):
        return True
    operands = node.attrs.get("operands", ())
    return node.op in ("tf_binary", "tf_nary") and all(op[0] in ("value", "scalar") for op in operands)


def _through_pointwise(ctx: OnnxContext, x: Value, dims: tuple[int, ...]) -> Value:
    """transpose(f(transpose(y))) -> f(y) for a pointwise f when the two transposes cancel (tf2onnx
    leaves them around activations between NHWC ops). Only when this Transpose is the only reader
    of f's output; the originals stay for any other reader, else dead-code removal drops them."""
    node = x.producer
    if node is None or not _is_pointwise(node) or node.inputs[0].producer is None:
        return x
    inner = node.inputs[0].producer
    if inner.op != "tf_transpose" or len(ctx.importer.consumers.get(ctx.node.input[0], [])) != 1:
        return x
    source = inner.inputs[0]
    if tuple(inner.attrs["dims"][d] for d in dims) != tuple(range(source.rank)):
        return x
    moved = ctx.importer.graph.add_node(node.op, [source], [source.spec], node.source, node.attrs, node.params)
    # Returned as the transpose of f(y) it replaces; the caller's Transpose cancels it.
    return ctx.importer.graph.add_node("tf_transpose", [moved.outputs[0]], [x.spec], inner.source, inner.attrs).outputs[0]


@register_onnx_op("Concat")
def import_concat(ctx: OnnxContext) -> list[OnnxVal]:
    if any(isinstance(v, ShapeVec) for v in ctx.inputs):
        items: list = []
        for v in ctx.inputs:
            if not isinstance(v, (ShapeVec, np.ndarray)) or (isinstance(v, np.ndarray) and v.ndim != 1):
                raise ctx.unsupported("a Concat of a shape with a run-time tensor")
            items += v.items if isinstance(v, ShapeVec) else [int(i) for i in v]
        return [ShapeVec(items)]
    if all(isinstance(v, np.ndarray) for v in ctx.inputs):
        return [np.concatenate(ctx.inputs, axis=int(ctx.attr("axis")))]
    values = [ctx.value(i) for i in range(len(ctx.inputs))]
    axis = int(ctx.attr("axis")) % values[0].rank
    return [ctx.add("concat", values, {"axis": axis}).outputs[0]]


@register_onnx_op("Softmax", "LogSoftmax")
def import_softmax(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    axis = int(ctx.attr("axis", -1))
    if ctx.importer.opset < 13 and axis % x.rank != x.rank - 1:
        raise ctx.unsupported("opset < 13 Softmax (flattening semantics) over a non-last axis")
    return [ctx.add("softmax", [x], {"axis": axis % x.rank, "log": ctx.type == "LogSoftmax"}).outputs[0]]


@register_onnx_op("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin")
def import_reduce(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    axes = ctx.attr("axes")
    if axes is None and len(ctx.inputs) > 1:
        axes = ctx.const(1)
    if (axes is None or len(axes) == 0) and int(ctx.attr("noop_with_empty_axes", 0)):
        return [x]
    axes = tuple(range(x.rank)) if axes is None or len(axes) == 0 else tuple(int(a) % x.rank for a in axes)
    fn = {"ReduceMean": "mean", "ReduceSum": "sum", "ReduceMax": "amax", "ReduceMin": "amin"}[ctx.type]
    keep = bool(ctx.attr("keepdims", 1))
    return [ctx.add("tf_reduce", [x], {"axes": axes, "keepdims": keep, "fn": fn}).outputs[0]]


@register_onnx_op("Identity", "Dropout")
def import_identity(ctx: OnnxContext) -> list[OnnxVal]:
    return [ctx.inputs[0]] + [None] * (len(ctx.node.output) - 1)


@register_onnx_op("Constant")
def import_constant(ctx: OnnxContext) -> list[OnnxVal]:
    from onnx import numpy_helper

    tensor = ctx.attr("value")
    if tensor is None:
        raise ctx.unsupported("a Constant without a 'value' tensor")
    return [np.array(numpy_helper.to_array(tensor))]


def _axes(ctx: OnnxContext, rank: int) -> list[int] | None:
    """`axes` from the attribute (opset < 13) or the optional second input (opset >= 13)."""
    axes = ctx.attr("axes")
    if axes is None and len(ctx.inputs) > 1:
        axes = ctx.const(1)
    return None if axes is None else [int(a) % rank for a in axes]


@register_onnx_op("Squeeze")
def import_squeeze(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    axes = _axes(ctx, x.rank)
    if axes is None:
        axes = [i for i, d in enumerate(x.spec.shape) if d == 1]
        if len(axes) != sum(d in (1, None) for d in x.spec.shape):
            raise ctx.unsupported("Squeeze without axes on an input with dynamic dims")
    return [ctx.add("tf_squeeze", [x], {"dims": tuple(sorted(axes))}).outputs[0]]


@register_onnx_op("Unsqueeze")
def import_unsqueeze(ctx: OnnxContext) -> list[OnnxVal]:
    if isinstance(ctx.inputs[0], ShapeVec) and ctx.inputs[0].scalar:
        return [ShapeVec(ctx.inputs[0].items)]  # a 0-d size -> a 1-item shape
    if isinstance(ctx.inputs[0], np.ndarray):
        axes = sorted(_axes(ctx, ctx.inputs[0].ndim + len(ctx.attr("axes") or ctx.const(1))))
        return [np.expand_dims(ctx.inputs[0], tuple(axes))]
    x = ctx.value(0)
    out_rank = ctx.out_spec().rank
    axes = sorted(_axes(ctx, out_rank) or [])
    for i, axis in enumerate(axes):  # ascending: each axis is a position in the final output
        spec = ctx.out_spec() if i == len(axes) - 1 else None
        x = ctx.add("tf_unsqueeze", [x], {"axis": axis}, specs=[spec or _unsqueezed(x, axis)]).outputs[0]
    return [x]


def _unsqueezed(x: Value, axis: int) -> TensorSpec:
    shape = list(x.spec.shape)
    shape.insert(axis, 1)
    return TensorSpec(tuple(shape), x.spec.dtype)


@register_onnx_op("Slice")
def import_slice(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    starts, ends = ctx.const(1), ctx.const(2)
    axes = ctx.const(3)
    steps = ctx.const(4)
    axes = range(len(starts)) if axes is None else [int(a) % x.rank for a in axes]
    steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
    if any(s < 1 for s in steps):
        raise ctx.unsupported("a Slice with a negative step")
    index = [":"] * x.rank
    for axis, start, end, step in zip(axes, starts, ends, steps):
        start, end = int(start), int(end)
        size = x.spec.shape[axis]
        start_text = "" if start == 0 or (size is not None and start <= -size) else str(start)
        end_text = "" if end >= 2**31 - 1 or (size is not None and end >= size) else str(end)
        index[axis] = f"{start_text}:{end_text}" + (f":{step}" if step != 1 else "")
    while len(index) > 1 and index[-1] == ":":
        index.pop()
    return [ctx.add("tf_slice", [x], {"source": ("value", 0), "index": tuple(index)}).outputs[0]]


@register_onnx_op("Gather")
def import_gather(ctx: OnnxContext) -> list[OnnxVal]:
    data, indices = ctx.inputs[0], ctx.inputs[1]
    axis = int(ctx.attr("axis", 0))
    if isinstance(data, ShapeVec) and isinstance(indices, np.ndarray):
        return [ShapeVec([data.items[int(i)] for i in indices.reshape(-1)], scalar=indices.ndim == 0)]
    if isinstance(data, np.ndarray) and isinstance(indices, np.ndarray):
        return [np.take(data, indices, axis=axis)]
    if isinstance(data, np.ndarray) and data.ndim == 2 and axis == 0 and isinstance(indices, Value):
        attrs = {"num": int(data.shape[0]), "dim": int(data.shape[1])}
        return [ctx.add("embedding", [indices], attrs, {"embeddings": ctx.param(data, "VD")}).outputs[0]]
    if not isinstance(data, Value):
        raise ctx.unsupported("Gather from a constant other than an embedding table")
    ops = _Operands(ctx)
    operands = [ops.operand(data), ops.operand(indices)]
    return [ops.add("tf_gather", {"operands": operands, "axis": axis % data.rank}).outputs[0]]


@register_onnx_op("Pad")
def import_pad(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    flat = ctx.const(1) if len(ctx.inputs) > 1 else ctx.attr("pads")
    if len(ctx.inputs) > 3 and ctx.node.input[3]:
        raise ctx.unsupported("Pad with an axes input")
    mode = ctx.attr("mode", "constant")
    if mode not in ("constant", "reflect", "edge"):
        raise ctx.unsupported(f"Pad mode {mode!r}")
    flat = [int(p) for p in flat]
    if any(p < 0 for p in flat):
        raise ctx.unsupported("negative pads (cropping)")
    pads = [(flat[i], flat[i + x.rank]) for i in range(x.rank)]
    if mode != "constant" and pads[:2] != [(0, 0), (0, 0)]:
        raise ctx.unsupported(f"{mode} padding of the batch or channel axis")
    value = ctx.const(2) if len(ctx.inputs) > 2 else None
    value = 0.0 if value is None else float(np.asarray(value, np.float32))
    attrs = {"pads": pads, "mode": {"edge": "replicate"}.get(mode, mode), "value": value}
    return [ctx.add("tf_pad", [x], attrs).outputs[0]]


@register_onnx_op("Resize")
def import_resize(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    out = ctx.out_spec().shape
    if len(out) != x.rank or any(d is None for d in out[2:]) or out[1] != x.spec.shape[1]:
        raise ctx.unsupported("a Resize whose output spatial size is not static, or that resizes channels")
    mode = ctx.attr("mode", "nearest")
    transform = ctx.attr("coordinate_transformation_mode", "half_pixel")
    nearest = ctx.attr("nearest_mode", "round_prefer_floor")
    if mode == "nearest" and transform == "asymmetric" and nearest == "floor":
        torch_mode = "nearest"
    elif mode == "nearest" and transform in ("half_pixel", "pytorch_half_pixel") and nearest == "round_prefer_ceil":
        torch_mode = "nearest_half"
    elif mode == "linear" and transform in ("half_pixel", "pytorch_half_pixel") and x.rank == 4:
        torch_mode = "bilinear"
    elif mode == "linear" and transform == "align_corners" and x.rank == 4:
        torch_mode = "bilinear_align"
    else:
        raise ctx.unsupported(f"Resize mode={mode!r}, coordinate_transformation_mode={transform!r}, nearest_mode={nearest!r}")
    if any(s is None or o % s for s, o in zip(x.spec.shape[2:], out[2:])) and torch_mode.startswith("nearest"):
        raise ctx.unsupported("nearest Resize by a non-integer factor")
    scales = ctx.const(2) if len(ctx.inputs) > 2 else None
    if scales is not None and scales.size and any(
            float(s) * n != o for s, n, o in zip(scales[2:], x.spec.shape[2:], out[2:])):
        # ONNX samples at 1 / scale, torch (given a size) at in / out: different grids.
        raise ctx.unsupported("a Resize by scales whose output size is rounded")
    return [ctx.add("tf_resize", [x], {"size": tuple(int(d) for d in out[2:]), "mode": torch_mode}).outputs[0]]

"""Elementwise arithmetic, comparisons, activations-as-math, reductions, matmul, einsum."""

from __future__ import annotations

import numpy as np

from tf2torch.frontends.tf.attention import fold_attention
from tf2torch.frontends.tf.context import OpContext, dtype_name
from tf2torch.frontends.tf.operands import OperandBuilder, materialize_shape
from tf2torch.frontends.tf.ops.shapes import dims_of
from tf2torch.frontends.tf.registry import register_tf_op
from tf2torch.frontends.tf.symbolic import sym_binary
from tf2torch.frontends.tf.values import Dim, DimExpr, Item, ParamExpr, ShapeVec, Sym, TFVal, VarRef, is_param
from tf2torch.ir import Node, Param, TensorSpec, Value

UNARY = {
    "Sin": "sin", "Cos": "cos", "Tan": "tan", "Asin": "asin", "Acos": "acos", "Atan": "atan",
    "Sinh": "sinh", "Cosh": "cosh", "Asinh": "asinh", "Acosh": "acosh", "Atanh": "atanh",
    "Exp": "exp", "Expm1": "expm1", "Log": "log", "Log1p": "log1p", "Sqrt": "sqrt", "Rsqrt": "rsqrt",
    "Square": "square", "Abs": "abs", "Neg": "neg", "Sign": "sign", "Floor": "floor", "Ceil": "ceil",
    "Round": "round", "Reciprocal": "reciprocal", "Inv": "reciprocal", "Erf": "erf", "Erfc": "erfc", "Erfinv": "erfinv",
    "LogicalNot": "logical_not", "IsNan": "isnan", "IsInf": "isinf", "IsFinite": "isfinite",
}
BINARY = {
    "Add": "add", "AddV2": "add", "BiasAdd": "add", "Sub": "sub", "Mul": "mul", "RealDiv": "div", "Div": "div",
    "FloorDiv": "floordiv", "FloorMod": "mod", "Pow": "pow", "Maximum": "maximum", "Minimum": "minimum",
    "SquaredDifference": "squared_difference", "Less": "lt", "LessEqual": "le", "Greater": "gt",
    "GreaterEqual": "ge", "Equal": "eq", "NotEqual": "ne", "LogicalAnd": "logical_and", "LogicalOr": "logical_or",
    "DivNoNan": "div_no_nan", "MulNoNan": "mul", "Atan2": "atan2",
}
NUMPY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "pow": np.power,
    "maximum": np.maximum, "minimum": np.minimum, "rsqrt": lambda x: 1.0 / np.sqrt(x), "sqrt": np.sqrt,
    "neg": np.negative, "exp": np.exp, "log": np.log, "square": np.square, "reciprocal": np.reciprocal,
    "abs": np.abs, "squared_difference": lambda a, b: np.square(a - b),
}


def numpy_apply(fn: str, arrays: list[np.ndarray]) -> np.ndarray:
    return np.asarray(NUMPY[fn](*arrays), dtype=np.result_type(*arrays))


def _scalar_op(value: Value, fn: str) -> tuple[Value, float] | None:
    """(x, c) if `value` is x <fn> c (either order) for a scalar c."""
    node = value.producer
    if node is None or node.op != "tf_binary" or node.attrs["fn"] != fn or len(node.inputs) != 1:
        return None
    scalars = [op[1] for op in node.attrs["operands"] if op[0] == "scalar"]
    return (node.inputs[0], float(scalars[0])) if len(scalars) == 1 else None


def _unary_of(value: Value, fn: str) -> Value | None:
    node = value.producer
    if node is not None and node.op in ("tf_unary", "activation") and node.attrs["fn"] == fn:
        return node.inputs[0]
    return None


def _match_gelu(a: Value, b: Value) -> tuple[Value, bool] | None:
    """0.5 x * erfc(-x / sqrt 2) (exact) or 0.5 x * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    half = _scalar_op(a, "mul")
    if half is None or abs(half[1] - 0.5) > 1e-6:
        return None
    x = half[0]
    inner = _unary_of(b, "erfc")
    if inner is not None:
        scaled = _scalar_op(inner, "mul")
        if scaled and abs(scaled[1] - 0.7071067811865476) < 1e-6 and _unary_of(scaled[0], "neg") is x:
            return x, False
        return None
    one = _scalar_op(b, "add")
    if one is None or abs(one[1] - 1.0) > 1e-6:
        return None
    t = _unary_of(one[0], "tanh")
    scaled = _scalar_op(t, "mul") if t is not None else None
    if scaled is None or abs(scaled[1] - 0.7978845608028654) > 1e-6:
        return None
    sum_node = scaled[0].producer
    if sum_node is None or sum_node.op != "tf_binary" or sum_node.attrs["fn"] != "add" or len(sum_node.inputs) != 2:
        return None
    if x not in sum_node.inputs:
        return None
    cube_term = sum_node.inputs[1] if sum_node.inputs[0] is x else sum_node.inputs[0]
    coef = _scalar_op(cube_term, "mul")
    cube = _scalar_op(coef[0], "pow") if coef else None
    if coef and cube and abs(coef[1] - 0.044715) < 1e-6 and cube[0] is x and cube[1] == 3.0:
        return x, True
    return None


def _param_expr(fn: str, args: list[TFVal]) -> ParamExpr:
    return ParamExpr(fn, list(args))


@register_tf_op(*UNARY)
def import_unary(ctx: OpContext) -> list[TFVal]:
    fn = UNARY[ctx.type]
    x = ctx.inputs[0]
    if isinstance(x, ShapeVec) and fn == "neg":
        return [ShapeVec([sym_binary("sub", 0, i) for i in x.items], x.scalar, x.dtype)]
    if is_param(x):
        return [_param_expr(fn, [x])]
    return [ctx.add("tf_unary", [ctx.value(0)], attrs={"fn": fn}).outputs[0]]


def _bias_target(ctx: OpContext, x: TFVal, b: TFVal) -> Node | None:
    """A dense / conv node, used only here, without a bias yet, that can absorb `b` as one."""
    if not isinstance(x, Value) or x.producer is None or not isinstance(b, (VarRef, np.ndarray)):
        return None
    node = x.producer
    arr = b.array if isinstance(b, VarRef) else b
    graph = ctx.importer.graph
    heads = node.attrs.get("unflattens_dense")
    if node.op == "tf_reshape" and heads is not None and arr.shape == tuple(heads) and not graph.consumers(x):
        # an EinsumDense bias of shape (heads, depth) after Linear + unflatten: the Linear's bias
        inner = node.inputs[0]
        if graph.consumers(inner) != [node] or ctx.importer.tf_uses.get(id(x)) != 1:
            return None
        node = inner.producer
    if node.op not in ("dense", "conv", "conv_transpose") or "bias" in node.params:
        return None
    units = node.attrs.get("units", node.attrs.get("out_channels"))
    if arr.size != units or (arr.shape[-1:] != (units,) and heads is None) or graph.consumers(x):
        return None
    # every other TF consumer of the tensor would see the bias too
    index = 0 if ctx.inputs[0] is x else 1
    if ctx.importer.consumer_count(ctx.op.inputs[index]) != 1:
        return None
    return node


@register_tf_op(*BINARY)
def import_binary(ctx: OpContext) -> list[TFVal]:
    fn = BINARY[ctx.type]
    a, b = ctx.inputs
    if ctx.type == "BiasAdd" and ctx.attr("data_format", "NHWC") != "NHWC":
        raise ctx.unsupported("BiasAdd with data_format NCHW")
    if fn == "add":
        for x, y in ((a, b), (b, a)):
            target = _bias_target(ctx, x, y)
            if target is not None:
                target.params["bias"] = ctx.param(y.reshape(-1) if isinstance(y, np.ndarray) else _flat(y), "O")
                return [x]
            folded = _fold_batch_norm(ctx, x, y)
            if folded is not None:
                return [folded]
            if isinstance(x, Value) and isinstance(y, Value):
                folded = _fold_layer_norm(ctx, x, y)
                if folded is not None:
                    return [folded]
    shape = _shape_arithmetic(fn, a, b)
    if shape is not None:
        return [shape]
    identity = _identity_operand(ctx, fn, a, b)
    if identity is not None:
        return [identity]
    if not isinstance(a, (Value, ShapeVec)) and not isinstance(b, (Value, ShapeVec)):
        return [_param_expr(fn, [a, b])]
    if not isinstance(a, Value) and not isinstance(b, Value):  # e.g. a size ** 0.5: a tensor from here on
        a, b = (ctx.value(i) if isinstance(x, ShapeVec) else x for i, x in enumerate((a, b)))
    if fn == "mul" and isinstance(a, Value) and isinstance(b, Value):
        for first, second in ((a, b), (b, a)):
            gelu = _match_gelu(first, second)
            if gelu is not None:  # the written-out GELU becomes one F.gelu (dead parts are dropped later)
                attrs = {"fn": "gelu", "approximate": gelu[1]}
                return [ctx.add("activation", [gelu[0]], attrs=attrs).outputs[0]]
    ops = OperandBuilder(ctx)
    operands = [ops.operand(a), ops.operand(b)]
    node = ops.add("tf_binary", {"fn": fn, "operands": operands, "exprs": [a, b]}, _broadcast_spec(ctx, [a, b]))
    return [node.outputs[0]]


def _broadcast_spec(ctx: OpContext, operands: list[TFVal]) -> TensorSpec | None:
    """The output of an elementwise op whose rank TensorFlow lost (e.g. after a reshape to a
    computed shape): the operands' shapes broadcast. None when TensorFlow knows it."""
    if ctx.op.outputs[0].shape.rank is not None:
        return None
    shapes = []
    for x in operands:
        if isinstance(x, Value):
            shapes.append(x.spec.shape)
        elif isinstance(x, ShapeVec):
            shapes.append(() if x.scalar else (len(x.items),))
        else:
            shapes.append(np.shape(x.array if isinstance(x, (VarRef, ParamExpr)) else x))
    rank = max(len(s) for s in shapes)
    out: list[int | None] = []
    for axis in range(rank):
        sizes = {s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0} - {1}
        known = {d for d in sizes if d is not None}
        out.append(known.pop() if len(known) == 1 else (1 if not sizes else None))
    return TensorSpec(tuple(out), dtype_name(ctx.op.outputs[0].dtype))


def _shape_arithmetic(fn: str, a: TFVal, b: TFVal) -> ShapeVec | None:
    """Arithmetic between shape values and integer / float constants stays symbolic."""
    if not (isinstance(a, ShapeVec) or isinstance(b, ShapeVec)):
        return None
    parts = []
    for x in (a, b):
        if isinstance(x, ShapeVec):
            parts.append((x.items, x.scalar))
        elif isinstance(x, np.ndarray) and x.ndim <= 1 and x.dtype.kind in "iuf":
            parts.append(([v.item() for v in x.reshape(-1)], x.ndim == 0))
        else:
            return None
    (xs, x_scalar), (ys, y_scalar) = parts
    if len(xs) != len(ys) and 1 not in (len(xs), len(ys)):
        return None
    n = max(len(xs), len(ys))
    items = [sym_binary(fn, xs[i % len(xs)], ys[i % len(ys)]) for i in range(n)]
    if any(i is None for i in items):
        return None
    dtype = a.dtype if isinstance(a, ShapeVec) else b.dtype
    return ShapeVec(items, scalar=x_scalar and y_scalar, dtype=dtype)


IDENTITY_OPERANDS = {"add": (0.0, True), "sub": (0.0, False), "mul": (1.0, True), "div": (1.0, False)}


def _identity_operand(ctx: OpContext, fn: str, a: TFVal, b: TFVal) -> Value | None:
    """x + 0, x - 0, x * 1, x / 1 (Keras' ops write some) -> x, when the result has x's shape and dtype."""
    if fn not in IDENTITY_OPERANDS:
        return None
    neutral, commutes = IDENTITY_OPERANDS[fn]
    for x, c in ((a, b), (b, a)) if commutes else ((a, b),):
        if (isinstance(x, Value) and isinstance(c, np.ndarray) and c.size == 1 and c.ndim <= x.rank
                and c.reshape(-1)[0] == neutral and ctx.out_spec(0) == x.spec):
            return x
    return None


def _flat(var: VarRef) -> VarRef:
    return VarRef(var.name, var.array.reshape(-1), var.trainable, var.ambiguous)


def _fold_batch_norm(ctx: OpContext, y: TFVal, shift: TFVal) -> Value | None:
    """Keras 3's BatchNormalization at inference, written out by tf.nn.batch_normalization:
    x * M + (beta - mean * M), with M = rsqrt(variance + eps) * gamma -> one batch_norm."""
    if not isinstance(y, Value) or not isinstance(shift, ParamExpr) or y.producer is None:
        return None
    mul = y.producer
    if mul.op != "tf_binary" or mul.attrs["fn"] != "mul" or len(mul.inputs) != 1:
        return None
    scale = next((e for e in mul.attrs["exprs"] if isinstance(e, ParamExpr)), None)
    if scale is None:
        return None
    gamma = None
    inv = scale
    if scale.fn == "mul" and len(scale.args) == 2 and isinstance(scale.args[0], ParamExpr) and isinstance(scale.args[1], VarRef):
        inv, gamma = scale.args
    if inv.fn != "rsqrt" or not isinstance(inv.args[0], ParamExpr) or inv.args[0].fn != "add":
        return None
    var, eps = inv.args[0].args
    if not isinstance(var, VarRef) or not isinstance(eps, np.ndarray) or eps.size != 1:
        return None
    if shift.fn == "sub" and isinstance(shift.args[0], VarRef):
        beta, mean_term = shift.args
    elif shift.fn == "neg":
        beta, mean_term = None, shift.args[0]
    else:
        return None
    if not (isinstance(mean_term, ParamExpr) and mean_term.fn == "mul" and mean_term.args[1] is scale
            and isinstance(mean_term.args[0], VarRef)):
        return None
    mean = mean_term.args[0]
    x = mul.inputs[0]
    channels = var.array.size
    flat = [v for v in (var, mean, gamma, beta) if v is not None]
    if x.spec.shape[-1] != channels or any(v.array.shape[-1:] != (channels,) or v.array.size != channels for v in flat):
        return None
    if ctx.importer.graph.consumers(y):
        return None
    if ctx.importer.consumer_count(ctx.op.inputs[0 if ctx.inputs[0] is y else 1]) != 1:
        return None
    ctx.importer.graph.nodes.remove(mul)
    params = {
        "gamma": ctx.param(_flat(gamma), "C") if gamma is not None else Param(np.ones(channels, np.float32), "C", False),
        "beta": ctx.param(_flat(beta), "C") if beta is not None else Param(np.zeros(channels, np.float32), "C", False),
        "moving_mean": Param(np.asarray(mean.array).reshape(-1), "C", False),
        "moving_variance": Param(np.asarray(var.array).reshape(-1), "C", False),
    }
    attrs = {"num_features": channels, "eps": float(str(np.float32(eps.reshape(-1)[0]))), "momentum": 0.99, "center": beta is not None,
             "scale": gamma is not None, "unbiased_running_var": False, "frozen": False}
    name = ctx.layer_name(gamma if gamma is not None else var)
    return ctx.add("batch_norm", [x], [x.spec], attrs, params, name=name).outputs[0]


def _producer(value: Value, op: str, fn: str | None = None) -> Node | None:
    node = value.producer
    if node is None or node.op != op or (fn is not None and node.attrs.get("fn") != fn):
        return None
    return node


def _param_operand(node: Node) -> tuple[str, Param] | None:
    keys = [op[1] for op in node.attrs["operands"] if op[0] == "tensor" and op[1][0] == "param"]
    if len(keys) != 1:
        return None
    return node.attrs["var_names"][keys[0][1]], node.params[keys[0][1]]


def _fold_layer_norm(ctx: OpContext, p: Value, q: Value) -> Value | None:
    """x * M + (beta - mean * M), M = rsqrt(var + eps) * gamma, with mean / var the moments of x
    over the last axis (Keras 3's LayerNormalization written out) -> one nn.LayerNorm."""
    pm = _producer(p, "tf_binary", "mul")
    if pm is None or len(pm.inputs) != 2:
        return None
    for x, m in (pm.inputs, pm.inputs[::-1]):
        gm = _producer(m, "tf_binary", "mul")
        if gm is None or len(gm.inputs) != 1 or _param_operand(gm) is None:
            continue
        rsqrt = _producer(gm.inputs[0], "tf_unary", "rsqrt")
        shifted = _scalar_op(rsqrt.inputs[0], "add") if rsqrt else None
        var = _producer(shifted[0], "tf_reduce_keep", "mean") if shifted else None
        sq = _producer(var.inputs[0], "tf_binary", "squared_difference") if var else None
        if sq is None or len(sq.inputs) != 2 or sq.inputs[0] is not x:
            continue
        mean = _producer(sq.inputs[1], "tf_reduce_keep", "mean")
        last = (x.rank - 1,)
        if mean is None or mean.inputs[0] is not x or mean.attrs["axes"] != last or var.attrs["axes"] != last:
            continue
        beta = _layer_norm_shift(q, m, sq.inputs[1])
        if beta is None:
            continue
        (gname, gamma), (_, bparam) = _param_operand(gm), beta
        channels = int(x.spec.shape[-1])
        # A frozen graph's weights are constants: they train, as its other layers' do.
        trains = ctx.importer.const_weights_trainable
        params = {"gamma": Param(np.asarray(gamma.array, np.float32).reshape(-1), "C", gamma.trainable or trains),
                  "beta": Param(np.asarray(bparam.array, np.float32).reshape(-1), "C", bparam.trainable or trains)}
        if params["gamma"].array.size != channels or params["beta"].array.size != channels:
            return None
        attrs = {"normalized_shape": (channels,), "eps": shifted[1]}
        layer = gname.rsplit("/", 1)[0] if "/" in gname else gname
        if layer == gm.source.name and "/" in layer:  # named after its op (a shared variable name)
            layer = layer.rsplit("/", 1)[0]
        layer = layer.removesuffix("/batchnorm")  # tf.nn.batch_normalization's scope
        name = ctx.importer.claim_name(layer, gname)
        return ctx.add("layer_norm", [x], [x.spec], attrs, params, name=name).outputs[0]
    return None


def _layer_norm_shift(q: Value, m: Value, mean: Value) -> tuple[str, Param] | None:
    """beta's operand if `q` is `beta + (-mean) * m` (Keras 3) or `beta - mean * m`
    (`tf.nn.batch_normalization`, which tf_keras' LayerNormalization and HF models call)."""
    shift = _producer(q, "tf_binary", "add") or _producer(q, "tf_binary", "sub")
    if shift is None or len(shift.inputs) != 1:
        return None
    beta = _param_operand(shift)
    centered = _producer(shift.inputs[0], "tf_binary", "mul") if beta else None
    if centered is None or m not in centered.inputs:
        return None
    other = centered.inputs[0] if centered.inputs[1] is m else centered.inputs[1]
    if shift.attrs["fn"] == "add":
        return beta if _unary_of(other, "neg") is mean else None
    return beta if other is mean and shift.attrs["operands"][1] == ("value", 0) else None


@register_tf_op("AddN")
def import_add_n(ctx: OpContext) -> list[TFVal]:
    ops = OperandBuilder(ctx)
    operands = [ops.operand(v) for v in ctx.inputs]
    return [ops.add("tf_nary", {"fn": "sum", "operands": operands}).outputs[0]]


@register_tf_op("Select", "SelectV2")
def import_select(ctx: OpContext) -> list[TFVal]:
    ops = OperandBuilder(ctx)
    operands = [ops.operand(v) for v in ctx.inputs]
    return [ops.add("tf_nary", {"fn": "where", "operands": operands}).outputs[0]]


@register_tf_op("ClipByValue")
def import_clip(ctx: OpContext) -> list[TFVal]:
    ops = OperandBuilder(ctx)
    operands = [ops.operand(v) for v in ctx.inputs]
    return [ops.add("tf_nary", {"fn": "clamp", "operands": operands}).outputs[0]]


@register_tf_op("Cast")
def import_cast(ctx: OpContext) -> list[TFVal]:
    x = ctx.inputs[0]
    dtype = ctx.attr("DstT").name
    if isinstance(x, ShapeVec) and dtype.startswith(("int", "uint")) and all(_whole(i) for i in x.items):
        return [ShapeVec(list(x.items), x.scalar, dtype)]  # a cast does not change a size's value
    if isinstance(x, ShapeVec):
        # Float arithmetic on sizes runs in float32 tensors, as in TensorFlow (Python's float64
        # would truncate differently near whole numbers: int(s * 0.6) is off by one for some s).
        cast = ShapeVec(list(x.items), x.scalar, dtype)
        value = materialize_shape(ctx, cast)
        if all(_whole(i) for i in x.items):
            ctx.importer.cast_sizes[id(value)] = cast
        return [value]
    if isinstance(x, VarRef) and dtype == x.array.dtype.name:
        return [x]
    value = ctx.value(0)
    if value.spec.dtype == dtype:
        return [value]
    return [ctx.add("tf_cast", [value], attrs={"dtype": dtype}).outputs[0]]


def _whole(s: Sym) -> bool:
    """True if a size is an integer whatever the inputs (no true division, no float constant)."""
    if isinstance(s, DimExpr):
        return s.fn != "div" and all(_whole(a) for a in s.args)
    return isinstance(s, (int, Dim, Item))


REDUCTIONS = {"Sum": "sum", "Mean": "mean", "Max": "amax", "Min": "amin", "Prod": "prod", "All": "all", "Any": "any"}


SHAPE_REDUCTIONS = {"Prod": "mul", "Sum": "add", "Max": "maximum", "Min": "minimum"}


@register_tf_op(*REDUCTIONS)
def import_reduction(ctx: OpContext) -> list[TFVal]:
    vec = ctx.inputs[0]
    if isinstance(vec, ShapeVec) and ctx.type in SHAPE_REDUCTIONS and not vec.scalar:
        out = vec.items[0] if vec.items else (1 if ctx.type == "Prod" else 0)
        for item in vec.items[1:]:
            out = sym_binary(SHAPE_REDUCTIONS[ctx.type], out, item)
        return [ShapeVec([out], scalar=not ctx.attr("keep_dims", False), dtype=vec.dtype)]
    x = ctx.value(0)
    axes = tuple(sorted({int(a) % x.rank for a in np.asarray(ctx.const(1)).reshape(-1)}))
    keep = bool(ctx.attr("keep_dims", False))
    fn = REDUCTIONS[ctx.type]
    if x.rank in (3, 4, 5) and axes == tuple(range(1, x.rank - 1)) and fn in ("mean", "amax"):
        kind = "avg" if fn == "mean" else "max"
        return [ctx.add("global_pool", [x], attrs={"kind": kind, "keepdims": keep}).outputs[0]]
    op = "tf_reduce_keep" if keep else "tf_reduce"
    return [ctx.add(op, [x], attrs={"fn": fn, "axes": axes, "keepdims": keep}).outputs[0]]


@register_tf_op("MatMul", "BatchMatMulV2", "BatchMatMul", "BatchMatMulV3")
def import_matmul(ctx: OpContext) -> list[TFVal]:
    a, b = ctx.inputs
    ta = bool(ctx.attr("transpose_a", False) or ctx.attr("adj_x", False))
    tb = bool(ctx.attr("transpose_b", False) or ctx.attr("adj_y", False))
    weight = b.array if isinstance(b, VarRef) else (b if isinstance(b, np.ndarray) else None)
    if isinstance(a, Value) and weight is not None and weight.ndim == 2 and not ta:
        kernel = weight.T if tb else weight
        var = b if isinstance(b, VarRef) else None
        name = ctx.layer_name(var)
        if var is not None:
            param = Param(np.ascontiguousarray(kernel), "IO", var.trainable)
        else:
            param = Param(np.ascontiguousarray(kernel), "IO", ctx.importer.const_weights_trainable)
        attrs = {"in_features": int(kernel.shape[0]), "units": int(kernel.shape[1])}
        return [ctx.add("dense", [a], attrs=attrs, params={"kernel": param}, name=name).outputs[0]]
    ops = OperandBuilder(ctx)
    operands = [ops.operand(a), ops.operand(b)]
    node = ops.add("tf_matmul", {"operands": operands, "transpose_a": ta, "transpose_b": tb})
    return [fold_attention(ctx, node) or node.outputs[0]]


@register_tf_op("Einsum")
def import_einsum(ctx: OpContext) -> list[TFVal]:
    dense = _einsum_dense(ctx)
    if dense is not None:
        return [dense]
    ops = OperandBuilder(ctx)
    operands = [ops.operand(v) for v in ctx.inputs]
    node = ops.add("tf_einsum", {"operands": operands, "equation": ctx.attr("equation")})
    return [fold_attention(ctx, node) or node.outputs[0]]


def _einsum_dense(ctx: OpContext) -> Value | None:
    """einsum("...C,CO->...O", x, kernel) with a weight kernel (Keras EinsumDense, the
    projections of MultiHeadAttention) -> nn.Linear on x with its C axes flattened, the output
    unflattened to the O axes."""
    if len(ctx.inputs) != 2 or not isinstance(ctx.inputs[0], Value) or not isinstance(ctx.inputs[1], (VarRef, np.ndarray)):
        return None
    equation = ctx.attr("equation").replace(" ", "")
    if "." in equation or "->" not in equation:
        return None
    (sx, sk), out = equation.split("->")[0].split(","), equation.split("->")[1]
    x, kernel = ctx.inputs
    var = kernel if isinstance(kernel, VarRef) else None
    weight = np.asarray(kernel.array if var is not None else kernel)
    contracted = "".join(c for c in sx if c in sk and c not in out)
    kept = sx[: len(sx) - len(contracted)]
    if (not contracted or sx != kept + contracted or not sk.startswith(contracted) or out != kept + sk[len(contracted):]
            or len(set(sx + sk)) != len(sx) + len(sk) - len(contracted) or weight.dtype.kind != "f"):
        return None
    in_axes, out_axes = weight.shape[: len(contracted)], weight.shape[len(contracted):]
    if None in x.spec.shape[len(kept):]:
        return None
    lead = dims_of(ctx, x)[: len(kept)]
    if len(contracted) > 1:  # (..., n, h) -> (..., n * h)
        ops = OperandBuilder(ctx)
        ops.value(x)
        shape = _one_dynamic_as_minus_one(lead + [int(np.prod(in_axes))])
        spec = TensorSpec(tuple(x.spec.shape[: len(kept)]) + (int(np.prod(in_axes)),), x.spec.dtype)
        x = ops.add("tf_reshape", {"shape": ops.syms(shape)}, spec).outputs[0]
    units = int(np.prod(out_axes))
    param = Param(np.ascontiguousarray(weight.reshape(-1, units)), "IO",
                  var.trainable if var is not None else ctx.importer.const_weights_trainable)
    spec = TensorSpec(tuple(x.spec.shape[:-1]) + (units,), x.spec.dtype)
    attrs = {"in_features": int(np.prod(in_axes)), "units": units}
    y = ctx.add("dense", [x], [spec], attrs=attrs, params={"kernel": param}, name=ctx.layer_name(var)).outputs[0]
    if len(out_axes) > 1:  # (..., n * h) -> (..., n, h)
        ops = OperandBuilder(ctx)
        ops.value(y)
        shape = _one_dynamic_as_minus_one(lead + [int(d) for d in out_axes])
        y = ops.add("tf_reshape", {"shape": ops.syms(shape), "unflattens_dense": tuple(int(d) for d in out_axes)}).outputs[0]
    return y


def _one_dynamic_as_minus_one(items: list) -> list:
    dynamic = [i for i, s in enumerate(items) if not isinstance(s, int)]
    if len(dynamic) == 1:
        items = list(items)
        items[dynamic[0]] = -1
    return items


@register_tf_op("ArgMax", "ArgMin")
def import_argmax(ctx: OpContext) -> list[TFVal]:
    x = ctx.value(0)
    axis = int(ctx.const(1)) % x.rank
    attrs = {"fn": "argmax" if ctx.type == "ArgMax" else "argmin", "axis": axis, "dtype": ctx.attr("output_type").name}
    return [ctx.add("tf_argmax", [x], attrs=attrs).outputs[0]]


@register_tf_op("TopKV2")
def import_topk(ctx: OpContext) -> list[TFVal]:
    ops = OperandBuilder(ctx)
    ops.value(ctx.value(0))
    k = ctx.inputs[1]
    k = k.items[0] if isinstance(k, ShapeVec) else int(ctx.const(1))  # tf.argsort: k is the axis' run-time size
    node = ops.add("tf_topk", {"k": ops.sym(k), "sorted": bool(ctx.attr("sorted", True))},
                   [ctx.out_spec(0), ctx.out_spec(1)])
    return list(node.outputs)


@register_tf_op("Cumsum", "Cumprod")
def import_cumsum(ctx: OpContext) -> list[TFVal]:
    x = ctx.value(0)
    attrs = {"fn": ctx.type.lower(), "axis": int(ctx.const(1)) % x.rank,
             "exclusive": bool(ctx.attr("exclusive")), "reverse": bool(ctx.attr("reverse"))}
    return [ctx.add("tf_cumsum", [x], attrs=attrs).outputs[0]]


@register_tf_op("Cross")
def import_cross(ctx: OpContext) -> list[TFVal]:
    ops = OperandBuilder(ctx)
    operands = [ops.operand(v) for v in ctx.inputs]
    return [ops.add("tf_cross", {"operands": operands}).outputs[0]]


@register_tf_op("MatrixDeterminant")
def import_determinant(ctx: OpContext) -> list[TFVal]:
    return [ctx.add("tf_unary", [ctx.value(0)], attrs={"fn": "det"}).outputs[0]]


@register_tf_op("Bucketize")
def import_bucketize(ctx: OpContext) -> list[TFVal]:
    """The index i with boundaries[i - 1] <= x < boundaries[i]."""
    boundaries = np.asarray(ctx.attr("boundaries"), np.float32)
    ops = OperandBuilder(ctx)
    operands = [ops.operand(ctx.inputs[0]), ops.operand(boundaries)]
    return [ops.add("tf_search", {"operands": operands, "right": True, "values_first": True}).outputs[0]]


@register_tf_op("LowerBound", "UpperBound")
def import_search_sorted(ctx: OpContext) -> list[TFVal]:
    ops = OperandBuilder(ctx)
    operands = [ops.operand(ctx.inputs[1]), ops.operand(ctx.inputs[0])]
    attrs = {"operands": operands, "right": ctx.type == "UpperBound", "values_first": False,
             "int32": ctx.attr("out_type").name == "int32"}
    return [ops.add("tf_search", attrs).outputs[0]]


@register_tf_op("InTopKV2")
def import_in_top_k(ctx: OpContext) -> list[TFVal]:
    """targets[i] is in the top k of predictions[i]: fewer than k predictions beat it, and it is
    finite (TensorFlow's rule, ties included)."""
    ops = OperandBuilder(ctx)
    operands = [ops.operand(ctx.inputs[0]), ops.operand(ctx.inputs[1])]
    return [ops.add("tf_in_top_k", {"operands": operands, "k": int(ctx.const(2))}).outputs[0]]

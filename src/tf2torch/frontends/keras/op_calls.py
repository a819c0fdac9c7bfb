"""Raw TensorFlow / keras.ops calls written into functional configs, bound to named arguments.

tf.keras 2 records `tf.nn.relu(x) * 2.0` as `TFOpLambda` layers whose config names the
function (`nn.relu`, `math.multiply`); the first argument is the node's input (or a
`_CONSTANT_VALUE`), every other argument a keyword named as in TensorFlow's signature.
`x[:, :4]` is a `SlicingOpLambda` (`__operators__.getitem`, keyword `slice_spec`).
Keras 3 records `keras.ops` calls as op entries (module `keras.src.ops.*`): the op's
constructor arguments in `config`, its call arguments (tensors and constants) in the node.

Both become an `OpCall`: a canonical op name, a variant (`fn`) and arguments under one set
of canonical names, with tensors resolved to IR Values. The tables below are the whole
vocabulary; anything else is listed by name as unsupported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tf2torch.frontends.keras.layer_calls import LayerEntry, TensorRef
from tf2torch.ir import Value

TF_OP_LAYERS = ("TFOpLambda", "SlicingOpLambda")


@dataclass(frozen=True)
class OpSpec:
    """One source spelling of an op: `params` lists the call arguments in positional order as
    "source_name:canonical_name" (or one name when both agree); `config` likewise for the
    constructor arguments a Keras 3 op keeps in its config."""

    op: str
    fn: str | None
    params: str
    config: str = ""


def _spec_map(text: str) -> list[tuple[str, str]]:
    pairs = []
    for item in text.split():
        source, _, canonical = item.partition(":")
        pairs.append((source, canonical or source))
    return pairs


def _table(entries: dict[str, tuple]) -> dict[str, OpSpec]:
    return {name: OpSpec(*spec) for name, spec in entries.items()}


# -- tf.keras 2: TFOpLambda `function` -> op -------------------------------------------------

_TF_UNARY = {
    "negative": "neg", "abs": "abs", "exp": "exp", "expm1": "expm1", "log": "log", "log1p": "log1p",
    "sqrt": "sqrt", "rsqrt": "rsqrt", "square": "square", "sin": "sin", "cos": "cos", "tan": "tan",
    "asin": "asin", "acos": "acos", "atan": "atan", "sinh": "sinh", "cosh": "cosh", "asinh": "asinh",
    "acosh": "acosh", "atanh": "atanh", "sign": "sign", "floor": "floor", "ceil": "ceil", "round": "round",
    "reciprocal": "reciprocal", "erf": "erf", "erfc": "erfc", "logical_not": "logical_not",
    "is_nan": "isnan", "is_inf": "isinf", "is_finite": "isfinite",
}
_TF_BINARY = {
    "add": "add", "subtract": "sub", "multiply": "mul", "truediv": "div", "divide": "div",
    "floordiv": "floordiv", "floormod": "mod", "pow": "pow", "maximum": "maximum", "minimum": "minimum",
    "squared_difference": "squared_difference", "less": "lt", "less_equal": "le", "greater": "gt",
    "greater_equal": "ge", "equal": "eq", "not_equal": "ne", "logical_and": "logical_and",
    "logical_or": "logical_or", "divide_no_nan": "div_no_nan",
}
_TF_ACTIVATIONS = {
    "nn.relu": ("relu", "features:x"), "nn.relu6": ("relu6", "features:x"), "nn.elu": ("elu", "features:x"),
    "nn.selu": ("selu", "features:x"), "nn.gelu": ("gelu", "features:x approximate"),
    "math.sigmoid": ("sigmoid", "x"), "nn.sigmoid": ("sigmoid", "x"), "math.tanh": ("tanh", "x"),
    "nn.tanh": ("tanh", "x"), "math.softplus": ("softplus", "features:x"), "nn.softplus": ("softplus", "features:x"),
    "nn.softsign": ("softsign", "features:x"), "math.softsign": ("softsign", "features:x"),
    "nn.silu": ("silu", "features:x beta"), "nn.swish": ("silu", "features:x beta"),
    "nn.leaky_relu": ("leaky_relu", "features:x alpha:negative_slope"),
}

TF_FUNCTIONS: dict[str, OpSpec] = _table({
    **{f"math.{name}": ("unary", fn, "x") for name, fn in _TF_UNARY.items()},
    **{f"math.{name}": ("binary", fn, "x y") for name, fn in _TF_BINARY.items()},
    "__operators__.add": ("binary", "add", "x y"),
    "compat.v1.floor_div": ("binary", "floordiv", "x y"),  # `x // y`
    "__operators__.eq": ("binary", "eq", "self:x other:y"),
    "__operators__.ne": ("binary", "ne", "self:x other:y"),
    **{name: ("activation", fn, params) for name, (fn, params) in _TF_ACTIVATIONS.items()},
    "nn.softmax": ("softmax", None, "logits:x axis"),
    "math.softmax": ("softmax", None, "logits:x axis"),
    "nn.log_softmax": ("log_softmax", None, "logits:x axis"),
    "math.log_softmax": ("log_softmax", None, "logits:x axis"),
    **{f"math.reduce_{fn}": ("reduce", fn, "input_tensor:x axis keepdims")
       for fn in ("sum", "mean", "max", "min", "prod", "any", "all")},
    "reshape": ("reshape", None, "tensor:x shape"),
    "transpose": ("transpose", None, "a:x perm"),
    "concat": ("concat", None, "values axis"),
    "stack": ("stack", None, "values axis"),
    "split": ("split_sizes", None, "value:x num_or_size_splits:sections axis num"),
    "squeeze": ("squeeze", None, "input:x axis"),
    # tf.transpose / tf.squeeze dispatch to their v1 forms on Keras tensors
    "compat.v1.transpose": ("transpose", None, "a:x perm name conjugate"),
    "compat.v1.squeeze": ("squeeze", None, "input:x axis name squeeze_dims:axis"),
    "expand_dims": ("expand_dims", None, "input:x axis"),
    "__operators__.getitem": ("getitem", None, "tensor:x slice_spec:key"),
    "linalg.matmul": ("matmul", None, "a b transpose_a transpose_b adjoint_a adjoint_b a_is_sparse b_is_sparse"),
    "image.resize": ("resize", None, "images:x size method preserve_aspect_ratio antialias"),
    "nn.depth_to_space": ("depth_to_space", None, "input:x block_size data_format"),
    "nn.space_to_depth": ("space_to_depth", None, "input:x block_size data_format"),
    "where": ("where", None, "condition x y"),
    "clip_by_value": ("clip", None, "t:x clip_value_min:min clip_value_max:max"),
    "cast": ("cast", None, "x dtype"),
    "one_hot": ("one_hot", None, "indices:x depth on_value:on off_value:off axis dtype"),
})

# -- Keras 3: op entry class -> op ------------------------------------------------------------

_K3_UNARY = {
    "Negative": "neg", "Absolute": "abs", "Abs": "abs", "Exp": "exp", "Expm1": "expm1", "Log": "log",
    "Log1p": "log1p", "Sqrt": "sqrt", "Rsqrt": "rsqrt", "Square": "square", "Sin": "sin", "Cos": "cos",
    "Tan": "tan", "Arcsin": "asin", "Arccos": "acos", "Arctan": "atan", "Sinh": "sinh", "Cosh": "cosh",
    "Arcsinh": "asinh", "Arccosh": "acosh", "Arctanh": "atanh", "Sign": "sign", "Floor": "floor",
    "Ceil": "ceil", "Reciprocal": "reciprocal", "Erf": "erf", "Isnan": "isnan", "Isinf": "isinf",
    "Isfinite": "isfinite", "Tanh": "tanh",
}
_K3_BINARY = {
    "FloorDivide": "floordiv", "Mod": "mod", "Power": "pow", "Maximum": "maximum", "Minimum": "minimum",
    "Less": "lt", "LessEqual": "le", "Greater": "gt", "GreaterEqual": "ge", "Equal": "eq",
}
_K3_ACTIVATIONS = {
    "Relu": ("relu", ""), "Relu6": ("relu6", ""), "Elu": ("elu", "alpha"), "Selu": ("selu", ""),
    "Gelu": ("gelu", "approximate"), "Sigmoid": ("sigmoid", ""), "Softplus": ("softplus", ""),
    "Softsign": ("softsign", ""), "Silu": ("silu", ""), "LeakyRelu": ("leaky_relu", "negative_slope"),
}

KERAS_OPS: dict[str, OpSpec] = _table({
    **{f"ops.{name}": ("unary", fn, "x") for name, fn in _K3_UNARY.items()},
    "ops.Round": ("unary", "round", "x", "decimals"),
    **{f"ops.{name}": ("binary", fn, "x1:x x2:y") for name, fn in _K3_BINARY.items()},
    **{f"ops.{name}": ("activation", fn, "x", config) for name, (fn, config) in _K3_ACTIVATIONS.items()},
    "ops.Softmax": ("softmax", None, "x", "axis"),
    "ops.LogSoftmax": ("log_softmax", None, "x", "axis"),
    **{f"ops.{name}": ("reduce", fn, "x", "axis keepdims")
       for name, fn in (("Sum", "sum"), ("Mean", "mean"), ("Prod", "prod"))},
    **{f"ops.{name}": ("reduce", fn, "x", "axis keepdims initial") for name, fn in (("Max", "max"), ("Min", "min"))},
    "ops.Reshape": ("reshape", None, "x", "newshape:shape"),
    "ops.Transpose": ("transpose", None, "x", "axes:perm"),
    "ops.Stack": ("stack", None, "x:values", "axis"),
    "ops.Split": ("split_indices", None, "x", "indices_or_sections:sections axis"),
    "ops.GetItem": ("getitem", None, "x key"),
    "ops.Matmul": ("matmul", None, "x1:a x2:b"),
    "ops.Einsum": ("einsum", None, "*operands", "subscripts:equation"),
    "ops.Resize": ("resize", None, "x",
                   ("size interpolation:method antialias crop_to_aspect_ratio pad_to_aspect_ratio data_format "
                    "fill_mode fill_value")),
    "ops.Where": ("where", None, "condition x1:x x2:y"),
    "ops.Clip": ("clip", None, "x", "x_min:min x_max:max"),
    "ops.Cast": ("cast", None, "x", "dtype"),
    "ops.OneHot": ("one_hot", None, "x", "num_classes:depth axis dtype sparse"),
})

# Keras 3 op entries with importers of their own: mask computations (importers/recurrent.py's
# bool_op) and scalar arithmetic (importers/ops.py). Those hand other uses over to these specs.
KERAS_OPS_REGISTERED_ELSEWHERE: dict[str, OpSpec] = _table({
    "ops.Add": ("binary", "add", "x1:x x2:y"),
    "ops.Subtract": ("binary", "sub", "x1:x x2:y"),
    "ops.Multiply": ("binary", "mul", "x1:x x2:y"),
    "ops.Divide": ("binary", "div", "x1:x x2:y"),
    "ops.TrueDivide": ("binary", "div", "x1:x x2:y"),
    "ops.Concatenate": ("concat", None, "xs:values", "axis"),
    "ops.ExpandDims": ("expand_dims", None, "x", "axis"),
    "ops.Squeeze": ("squeeze", None, "x", "axis"),
})


@dataclass
class OpCall:
    op: str
    fn: str | None
    args: dict[str, Any]
    source_name: str  # as the user wrote it: tf.math.reduce_mean, keras.ops.Mean
    # Arguments set to something other than None / False that the tables do not know: refused,
    # since ignoring one could change the result silently.
    unknown: list[str] = field(default_factory=list)


def tf_function_name(entry: LayerEntry) -> str:
    return str(entry.config.get("function", "?"))


def op_spec(entry: LayerEntry) -> OpSpec | None:
    if entry.class_name in TF_OP_LAYERS:
        return TF_FUNCTIONS.get(tf_function_name(entry))
    return KERAS_OPS.get(entry.class_name) or KERAS_OPS_REGISTERED_ELSEWHERE.get(entry.class_name)


def display_name(entry: LayerEntry) -> str:
    if entry.class_name in TF_OP_LAYERS:
        return "tf." + tf_function_name(entry)
    return "keras.ops." + entry.class_name.removeprefix("ops.")


def bind_op_call(entry: LayerEntry, spec: OpSpec, call: Any, inputs: list[Value],
                 tensor_kwargs: dict[str, list[Value]]) -> OpCall:
    """The call's arguments under their canonical names (tensors as Values, constants as-is)."""
    params = _spec_map(spec.params)
    args: dict[str, Any] = {}
    if entry.class_name in TF_OP_LAYERS:
        # tf.keras 2: the first argument is the node's input tensor(s) or a constant.
        first: Any = call.args[0] if call.args else (inputs[0] if len(inputs) == 1 else list(inputs))
        args[params[0][1]] = first
        named = {k: v for k, v in call.kwargs.items() if k != "name"}
        named.update({k: v[0] if len(v) == 1 else v for k, v in tensor_kwargs.items()})
    else:
        values = iter(inputs)
        positional = [_resolve_v3(a, values) for a in call.args]
        if params and params[0][0].startswith("*"):
            args[params[0][1].lstrip("*")] = positional
        else:
            for (_, canonical), value in zip(params, positional):
                args[canonical] = value
            if len(positional) > len(params):
                args["__extra__"] = positional[len(params):]
        named = dict(call.kwargs)
        named.update({k: v[0] if len(v) == 1 else v for k, v in tensor_kwargs.items()})
        for source, canonical in _spec_map(spec.config):
            if source in entry.config:
                args.setdefault(canonical, entry.config[source])
    renames = dict(params + _spec_map(spec.config))
    unknown = [k for k, v in named.items() if k not in renames and _is_set(v)]
    if entry.class_name not in TF_OP_LAYERS:
        unknown += [k for k, v in entry.config.items() if k not in renames and k != "name" and _is_set(v)]
    for key, value in named.items():
        args[renames.get(key, key)] = value
    return OpCall(spec.op, spec.fn, args, display_name(entry), sorted(unknown))


def _is_set(value: Any) -> bool:
    return value is not None and value is not False


def _resolve_v3(obj: Any, values: Any) -> Any:
    """Keras 3 call arguments: tensors (at any depth) become the next Value, in the order
    layer_calls collected them."""
    if isinstance(obj, TensorRef) or isinstance(obj, dict) and obj.get("class_name") == "__keras_tensor__":
        return next(values)
    if isinstance(obj, dict) and obj.get("class_name") in ("__numpy__", "__tensor__"):
        return np.asarray(obj["config"]["value"], dtype=obj["config"].get("dtype") or None)
    if isinstance(obj, list):
        return [_resolve_v3(item, values) for item in obj]
    if isinstance(obj, dict) and "class_name" not in obj:
        return {k: _resolve_v3(v, values) for k, v in obj.items()}
    return obj

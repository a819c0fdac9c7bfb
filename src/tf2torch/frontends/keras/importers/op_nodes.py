"""Raw TensorFlow / keras.ops calls in functional configs (TFOpLambda, SlicingOpLambda,
Keras 3 op entries): each bound OpCall (frontends/keras/op_calls.py) becomes IR nodes.

The ops see Keras-layout tensors; the IR ops chosen here declare how they relate to layout
(ir/ops.py), so the layout pass keeps them exact."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from numbers import Number
from typing import Any

import numpy as np

from tf2torch.frontends.keras.context import LayerContext
from tf2torch.frontends.keras.importers.merge import _broadcast
from tf2torch.frontends.keras.op_calls import (
    KERAS_OPS,
    TF_OP_LAYERS,
    OpCall,
    bind_op_call,
    display_name,
    op_spec,
)
from tf2torch.frontends.keras.registry import register_importer
from tf2torch.frontends.keras.tf_available import tensorflow_available
from tf2torch.ir import Param, TensorSpec, Value

OpBuilder = Callable[[LayerContext, OpCall], list[Value]]
OP_BUILDERS: dict[str, OpBuilder] = {}


def _builds(*ops: str) -> Callable[[OpBuilder], OpBuilder]:
    def decorate(fn: OpBuilder) -> OpBuilder:
        for op in ops:
            if op in OP_BUILDERS:
                raise ValueError(f"op {op!r} has two builders")
            OP_BUILDERS[op] = fn
        return fn

    return decorate


@register_importer(*TF_OP_LAYERS, *KERAS_OPS)
def import_op_node(ctx: LayerContext) -> list[Value]:
    spec = op_spec(ctx.entry)
    if spec is None and ctx.class_name in TF_OP_LAYERS and tensorflow_available():
        from tf2torch.frontends.tf.tf_op_layers import trace_tf_op_layer

        return trace_tf_op_layer(ctx)  # a tf.<function> outside the table: TensorFlow's own code
    if spec is None:  # find_unsupported lists these before the import starts
        raise ctx.unsupported(f"the op {display_name(ctx.entry)}")
    call = bind_op_call(ctx.entry, spec, ctx.call, ctx.inputs, ctx.tensor_kwargs)
    if call.unknown:
        raise _refuse(ctx, call, f"argument(s) {', '.join(call.unknown)}")
    outputs = OP_BUILDERS[call.op](ctx, call)
    # tf.keras names the layer after the function ("tf.__operators__.getitem_2"): the
    # generated variable gets the function's own name ("getitem_2").
    short = ctx.name.rsplit("/", 1)[-1].rsplit(".", 1)[-1]
    for i, value in enumerate(outputs):
        if value.producer is not None and value.producer.source.name == ctx.name and short != ctx.name:
            value.name = short if len(outputs) == 1 else f"{short}_{i}"
    return outputs


# -- helpers ----------------------------------------------------------------------------


def _refuse(ctx: LayerContext, call: OpCall, what: str) -> Exception:
    return ctx.unsupported(f"{call.source_name} with {what}")


def _tensor(ctx: LayerContext, call: OpCall, key: str) -> Value:
    value = call.args.get(key)
    if not isinstance(value, Value):
        raise _refuse(ctx, call, f"a constant {key!r} argument ({value!r:.60})")
    return value


def _int_axes(axis: Any, rank: int) -> tuple[int, ...] | None:
    if axis is None:
        return None
    items = axis if isinstance(axis, (list, tuple)) else [axis]
    return tuple(sorted({int(a) % rank for a in items}))


def _dtype_name(dtype: Any) -> str:
    if isinstance(dtype, dict):  # a serialized DType / DTypePolicy
        dtype = dtype.get("config", {}).get("name", dtype.get("name"))
    name = str(dtype).removeprefix("tf.")
    return "float32" if name in ("float", "None") else name


class _Operands:
    """Operands of tf_binary / tf_nary nodes: Values, scalars, or constant arrays (params)."""

    def __init__(self, ctx: LayerContext) -> None:
        self.ctx = ctx
        self.values: list[Value] = []
        self.params: dict[str, Param] = {}
        self.var_names: dict[str, str] = {}
        self.shapes: list[tuple] = []

    def add(self, x: Any) -> tuple:
        if isinstance(x, Value):
            if x not in self.values:
                self.values.append(x)
            self.shapes.append(x.spec.shape)
            return ("value", self.values.index(x))
        if isinstance(x, bool | Number):
            return ("scalar", x)
        array = np.asarray(x)
        if array.dtype.kind not in "biuf":
            raise self.ctx.unsupported(f"a constant operand of type {array.dtype}")
        if array.ndim == 0:
            return ("scalar", array.item())
        key = f"p{len(self.params)}"
        self.params[key] = Param(array.astype(np.float32) if array.dtype.kind == "f" else array, "tf", False)
        self.var_names[key] = f"{self.ctx.name}/constant{len(self.params) - 1}"
        self.shapes.append(array.shape)
        return ("tensor", ("param", key))

    def attrs(self, **extra: Any) -> dict[str, Any]:
        attrs = dict(extra)
        if self.params:
            attrs["var_names"] = self.var_names
        return attrs

    def shape(self) -> tuple:
        if not self.shapes:
            raise self.ctx.unsupported("an op on constants only")
        return _broadcast(self.shapes)


# -- elementwise ------------------------------------------------------------------------

COMPARISONS = {"lt", "le", "gt", "ge", "eq", "ne", "logical_and", "logical_or"}


@_builds("unary")
def build_unary(ctx: LayerContext, call: OpCall) -> list[Value]:
    x = _tensor(ctx, call, "x")
    if call.args.get("decimals", 0):
        raise _refuse(ctx, call, "decimals != 0")
    dtype = "bool" if call.fn in ("logical_not", "isnan", "isinf", "isfinite") else x.spec.dtype
    return ctx.add("tf_unary", [x], [TensorSpec(x.spec.shape, dtype)], {"fn": call.fn}).outputs


@_builds("binary")
def build_binary(ctx: LayerContext, call: OpCall) -> list[Value]:
    ops = _Operands(ctx)
    operands = [ops.add(call.args.get("x")), ops.add(call.args.get("y"))]
    shape = ops.shape()
    dtype = "bool" if call.fn in COMPARISONS else ops.values[0].spec.dtype
    attrs = ops.attrs(fn=call.fn, operands=operands)
    return ctx.add("tf_binary", ops.values, [TensorSpec(shape, dtype)], attrs, ops.params).outputs


@_builds("where", "clip")
def build_ternary(ctx: LayerContext, call: OpCall) -> list[Value]:
    keys = ("condition", "x", "y") if call.op == "where" else ("x", "min", "max")
    if call.op == "where" and call.args.get("x") is None:
        raise _refuse(ctx, call, "one argument (the indices form)")
    ops = _Operands(ctx)
    operands = [ops.add(call.args.get(k)) for k in keys]
    shape = ops.shape()
    data = [v for v in ops.values if v.spec.dtype != "bool"] or ops.values
    attrs = ops.attrs(fn=call.op, operands=operands)
    return ctx.add("tf_nary", ops.values, [TensorSpec(shape, data[0].spec.dtype)], attrs, ops.params).outputs


@_builds("activation")
def build_activation(ctx: LayerContext, call: OpCall) -> list[Value]:
    x = _tensor(ctx, call, "x")
    attrs: dict[str, Any] = {"fn": call.fn}
    if call.fn == "elu":
        attrs["alpha"] = float(call.args.get("alpha", 1.0))
    elif call.fn == "gelu":
        attrs["approximate"] = bool(call.args.get("approximate", False))
    elif call.fn == "leaky_relu":
        attrs["negative_slope"] = float(call.args.get("negative_slope", 0.2))
    elif call.fn == "silu" and float(call.args.get("beta", 1.0)) != 1.0:
        raise _refuse(ctx, call, "beta != 1")
    return ctx.add("activation", [x], [x.spec], attrs).outputs


@_builds("softmax", "log_softmax")
def build_softmax(ctx: LayerContext, call: OpCall) -> list[Value]:
    x = _tensor(ctx, call, "x")
    axis = call.args.get("axis")
    axis = -1 if axis is None else axis
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            raise _refuse(ctx, call, "several axes")
        axis = axis[0]
    attrs = {"axis": int(axis) % x.rank, "log": call.op == "log_softmax"}
    return ctx.add("softmax", [x], [x.spec], attrs).outputs


@_builds("cast")
def build_cast(ctx: LayerContext, call: OpCall) -> list[Value]:
    x = _tensor(ctx, call, "x")
    dtype = _dtype_name(call.args.get("dtype"))
    from tf2torch.converters.tf_ops import TORCH_DTYPES

    if dtype not in TORCH_DTYPES:
        raise _refuse(ctx, call, f"dtype {dtype!r}")
    return ctx.add("tf_cast", [x], [TensorSpec(x.spec.shape, dtype)], {"dtype": dtype}).outputs


# -- reductions -------------------------------------------------------------------------

TORCH_REDUCTIONS = {"sum": "sum", "mean": "mean", "max": "amax", "min": "amin", "prod": "prod", "any": "any", "all": "all"}


@_builds("reduce")
def build_reduce(ctx: LayerContext, call: OpCall) -> list[Value]:
    x = _tensor(ctx, call, "x")
    axes = _int_axes(call.args.get("axis"), x.rank)
    axes = tuple(range(x.rank)) if axes is None else axes
    keep = bool(call.args.get("keepdims", False))
    if call.args.get("initial") is not None:
        raise _refuse(ctx, call, "initial")
    fn = TORCH_REDUCTIONS[call.fn]
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.spec.shape) if keep or i not in axes)
    dtype = "bool" if fn in ("any", "all") else x.spec.dtype
    if x.rank in (4, 5) and axes == tuple(range(1, x.rank - 1)) and fn in ("mean", "amax"):
        # A global pooling over the spatial axes: computed on channels-first maps, no permute.
        attrs = {"kind": "avg" if fn == "mean" else "max", "keepdims": keep}
        return ctx.add("global_pool", [x], [TensorSpec(shape, dtype)], attrs).outputs
    op = "tf_reduce_keep" if keep else "tf_reduce"
    return ctx.add(op, [x], [TensorSpec(shape, dtype)], {"fn": fn, "axes": axes, "keepdims": keep}).outputs


# -- shapes -----------------------------------------------------------------------------


def _constant_ints(ctx: LayerContext, call: OpCall, key: str) -> list[int]:
    value = call.args.get(key)
    if isinstance(value, Value) or value is None:
        raise _refuse(ctx, call, f"a computed {key!r}")
    items = value if isinstance(value, (list, tuple)) else [value]
    return [-1 if v is None else int(v) for v in items]


@_builds("reshape")
def build_reshape(ctx: LayerContext, call: OpCall) -> list[Value]:
    x = _tensor(ctx, call, "x")
    dims = _constant_ints(ctx, call, "shape")
    if dims.count(-1) > 1:
        raise _refuse(ctx, call, "more than one unknown (-1) dimension")
    shape: list[int | None] = [None if d == -1 else d for d in dims]
    known_in = [d for d in x.spec.shape]
    if -1 in dims and None not in known_in:
        rest = math.prod(d for d in dims if d != -1)
        shape[dims.index(-1)] = math.prod(known_in) // rest
    if dims and dims[0] != -1 and x.spec.shape[0] is None and -1 not in dims:
        dims[0] = -1  # the batch size stays symbolic
    return ctx.add("tf_reshape", [x], [TensorSpec(tuple(shape), x.spec.dtype)], {"shape": dims}).outputs


@_builds("transpose")
def build_transpose(ctx: LayerContext, call: OpCall) -> list[Value]:
    x = _tensor(ctx, call, "x")
    perm = call.args.get("perm")
    dims = tuple(reversed(range(x.rank))) if perm is None else tuple(int(p) % x.rank for p in perm)
    if call.args.get("conjugate"):
        raise _refuse(ctx, call, "conjugate=True")
    shape = tuple(x.spec.shape[d] for d in dims)
    return ctx.add("tf_transpose", [x], [TensorSpec(shape, x.spec.dtype)], {"dims": dims}).outputs


def _tensor_list(ctx: LayerContext, call: OpCall, key: str) -> list[Value]:
    values = call.args.get(key)
    values = values if isinstance(values, list) else [values]
    if not values or not all(isinstance(v, Value) for v in values):
        raise _refuse(ctx, call, f"constants in {key!r}")
    return values


@_builds("concat")
def build_concat(ctx: LayerContext, call: OpCall) -> list[Value]:
    values = _tensor_list(ctx, call, "values")
    axis = int(call.args.get("axis", 0)) % values[0].rank
    shape = list(values[0].spec.shape)
    sizes = [v.spec.shape[axis] for v in values]
    shape[axis] = None if None in sizes else sum(sizes)
    return ctx.add("concat", values, [TensorSpec(tuple(shape), values[0].spec.dtype)], {"axis": axis}).outputs


@_builds("stack")
def build_stack(ctx: LayerContext, call: OpCall) -> list[Value]:
    values = _tensor_list(ctx, call, "values")
    axis = int(call.args.get("axis", 0)) % (values[0].rank + 1)
    shape = list(_broadcast([v.spec.shape for v in values]))
    shape.insert(axis, len(values))
    return ctx.add("tf_stack", values, [TensorSpec(tuple(shape), values[0].spec.dtype)], {"axis": axis}).outputs


@_builds("split_sizes", "split_indices")
def build_split(ctx: LayerContext, call: OpCall) -> list[Value]:
    x = _tensor(ctx, call, "x")
    axis = int(call.args.get("axis", 0)) % x.rank
    size = x.spec.shape[axis]
    sections = call.args.get("sections")
    if size is None:
        raise _refuse(ctx, call, "a split along an axis of unknown size")
    if isinstance(sections, int):
        if size % sections:
            raise _refuse(ctx, call, f"{sections} sections of an axis of size {size}")
        sizes = [size // sections] * sections
    elif call.op == "split_sizes":
        sizes = [int(s) for s in sections]
        if -1 in sizes:
            sizes[sizes.index(-1)] = size - sum(s for s in sizes if s != -1)
    else:  # numpy-style split points
        bounds = [0, *(int(i) for i in sections), None]
        sizes = [len(range(size)[start:stop]) for start, stop in itertools.pairwise(bounds)]
    specs = [TensorSpec(x.spec.shape[:axis] + (s,) + x.spec.shape[axis + 1:], x.spec.dtype) for s in sizes]
    return ctx.add("tf_split", [x], specs, {"sizes": tuple(sizes), "axis": axis}).outputs


@_builds("squeeze")
def build_squeeze(ctx: LayerContext, call: OpCall) -> list[Value]:
    x = _tensor(ctx, call, "x")
    axes = _int_axes(call.args.get("axis"), x.rank)
    if axes is None:
        axes = tuple(i for i, d in enumerate(x.spec.shape) if d == 1)
    if any(x.spec.shape[a] != 1 for a in axes):
        raise _refuse(ctx, call, "an axis whose size is not known to be 1")
    shape = tuple(d for i, d in enumerate(x.spec.shape) if i not in axes)
    return ctx.add("tf_squeeze", [x], [TensorSpec(shape, x.spec.dtype)], {"dims": axes}).outputs


@_builds("expand_dims")
def build_expand_dims(ctx: LayerContext, call: OpCall) -> list[Value]:
    x = _tensor(ctx, call, "x")
    axis = call.args.get("axis")
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            raise _refuse(ctx, call, "several axes")
        axis = axis[0]
    axis = int(axis) % (x.rank + 1)
    shape = x.spec.shape[:axis] + (1,) + x.spec.shape[axis:]
    return ctx.add("tf_unsqueeze", [x], [TensorSpec(shape, x.spec.dtype)], {"axis": axis}).outputs


# -- indexing ---------------------------------------------------------------------------


def _slice_item(item: Any) -> tuple | str | None:
    """One index of a serialized slice key: ("slice", start, stop, step), ("index", i),
    "new" (newaxis), "..." (ellipsis), or None if it is not a constant index."""
    if item is None:
        return "new"
    if isinstance(item, bool):
        return None
    if isinstance(item, int):
        return ("index", item)
    if isinstance(item, dict):
        if item.get("class_name") == "__ellipsis__":
            return "..."
        bounds = item.get("config", item) if item.get("class_name") == "__slice__" else item
        if set(bounds) == {"start", "stop", "step"}:
            parts = (bounds["start"], bounds["stop"], bounds["step"])
            if all(p is None or isinstance(p, int) and not isinstance(p, bool) for p in parts):
                return ("slice", *parts)
    return None


def _sliced_size(size: int | None, start: int | None, stop: int | None, step: int | None) -> int | None:
    if size is None:
        return None
    return len(range(*slice(start, stop, step).indices(size)))


@_builds("getitem")
def build_getitem(ctx: LayerContext, call: OpCall) -> list[Value]:
    x = _tensor(ctx, call, "x")
    key = call.args.get("key")
    raw = key if isinstance(key, list) else [key]
    items = [_slice_item(item) for item in raw]
    if any(item is None for item in items):
        raise _refuse(ctx, call, "a tensor or non-integer index")
    if items.count("...") > 1:
        raise _refuse(ctx, call, "two ellipses")
    consumed = sum(1 for item in items if isinstance(item, tuple))
    if consumed > x.rank:
        raise _refuse(ctx, call, f"{consumed} indices into a rank-{x.rank} tensor")
    if "..." in items:
        at = items.index("...")
        items[at:at + 1] = [("slice", None, None, None)] * (x.rank - consumed)
    else:
        items += [("slice", None, None, None)] * (x.rank - consumed)
    shape: list[int | None] = []
    axis = 0
    for item in items:
        if item == "new":
            shape.append(1)
            continue
        size = x.spec.shape[axis]
        axis += 1
        if item[0] == "slice":
            if item[3] is not None and item[3] <= 0:
                raise _refuse(ctx, call, f"step {item[3]} (torch slices take positive steps)")
            shape.append(_sliced_size(size, *item[1:]))
        elif size is not None and not -size <= item[1] < size:
            raise _refuse(ctx, call, f"index {item[1]} out of range for size {size}")
    dropped = None if "new" in items else tuple(i for i, item in enumerate(items) if item[0] == "index")
    attrs = {"items": tuple(items), "dropped": dropped}
    return ctx.add("getitem", [x], [TensorSpec(tuple(shape), x.spec.dtype)], attrs).outputs


# -- linear algebra ---------------------------------------------------------------------


@_builds("matmul")
def build_matmul(ctx: LayerContext, call: OpCall) -> list[Value]:
    a, b = _tensor(ctx, call, "a"), _tensor(ctx, call, "b")
    if a.rank < 2 or b.rank < 2:
        raise _refuse(ctx, call, "a rank-1 operand")
    if any(call.args.get(k) for k in ("a_is_sparse", "b_is_sparse")):
        raise _refuse(ctx, call, "sparse operands")
    ta = bool(call.args.get("transpose_a") or call.args.get("adjoint_a"))
    tb = bool(call.args.get("transpose_b") or call.args.get("adjoint_b"))
    a_shape, b_shape = list(a.spec.shape), list(b.spec.shape)
    if ta:
        a_shape[-2:] = a_shape[-2:][::-1]
    if tb:
        b_shape[-2:] = b_shape[-2:][::-1]
    batch = _broadcast([tuple(a_shape[:-2]), tuple(b_shape[:-2])]) if a.rank > 2 or b.rank > 2 else ()
    shape = tuple(batch) + (a_shape[-2], b_shape[-1])
    values = [a] if a is b else [a, b]
    operands = [("value", 0), ("value", 0 if a is b else 1)]
    attrs = {"operands": operands, "transpose_a": ta, "transpose_b": tb}
    return ctx.add("tf_matmul", values, [TensorSpec(shape, a.spec.dtype)], attrs).outputs


@_builds("einsum")
def build_einsum(ctx: LayerContext, call: OpCall) -> list[Value]:
    equation = str(call.args.get("equation", "")).replace(" ", "")
    values = _tensor_list(ctx, call, "operands")
    if "..." in equation or "->" not in equation:
        raise _refuse(ctx, call, f"equation {equation!r} (write explicit output indices, no ellipsis)")
    inputs, output = equation.split("->")
    sizes: dict[str, int | None] = {}
    for letters, value in zip(inputs.split(","), values):
        for letter, size in zip(letters, value.spec.shape):
            sizes[letter] = size if sizes.get(letter) is None else sizes[letter]
    unique: list[Value] = []
    operands = []
    for v in values:
        if v not in unique:
            unique.append(v)
        operands.append(("value", unique.index(v)))
    shape = tuple(sizes.get(letter) for letter in output)
    attrs = {"equation": equation, "operands": operands}
    return ctx.add("tf_einsum", unique, [TensorSpec(shape, values[0].spec.dtype)], attrs).outputs


# -- images -----------------------------------------------------------------------------

RESIZE_MODES = {"bilinear": "bilinear", "nearest": "nearest_half"}


@_builds("resize")
def build_resize(ctx: LayerContext, call: OpCall) -> list[Value]:
    x = _tensor(ctx, call, "x")
    method = str(call.args.get("method", "bilinear")).lower().removeprefix("resizemethod.")
    if x.rank != 4:
        raise _refuse(ctx, call, f"a rank-{x.rank} input (a batch of images is rank 4)")
    if method not in RESIZE_MODES:
        raise _refuse(ctx, call, f"method {method!r} (bilinear and nearest are)")
    for flag in ("antialias", "preserve_aspect_ratio", "crop_to_aspect_ratio", "pad_to_aspect_ratio"):
        if call.args.get(flag):
            raise _refuse(ctx, call, f"{flag}=True")
    if call.args.get("data_format") not in (None, "channels_last"):
        raise _refuse(ctx, call, f"data_format={call.args['data_format']!r}")
    size = tuple(_constant_ints(ctx, call, "size"))
    shape = (x.spec.shape[0], *size, x.spec.shape[3])
    attrs = {"size": size, "mode": RESIZE_MODES[method]}
    return ctx.add("tf_resize", [x], [TensorSpec(shape, x.spec.dtype)], attrs).outputs


@_builds("depth_to_space", "space_to_depth")
def build_depth_space(ctx: LayerContext, call: OpCall) -> list[Value]:
    x = _tensor(ctx, call, "x")
    block = int(call.args.get("block_size", 0))
    if call.args.get("data_format", "NHWC") != "NHWC":
        raise _refuse(ctx, call, f"data_format={call.args['data_format']!r}")
    if x.rank != 4 or block < 2:
        raise _refuse(ctx, call, f"a rank-{x.rank} input or block_size {block}")
    n, h, w, c = x.spec.shape

    def scaled(d: int | None, f: float) -> int | None:
        return None if d is None else int(d * f)

    if call.op == "depth_to_space":
        if c is None or c % (block * block):
            raise _refuse(ctx, call, f"{c} channels (not divisible by block_size**2)")
        shape = (n, scaled(h, block), scaled(w, block), c // (block * block))
    else:
        if any(d is None or d % block for d in (h, w)):
            raise _refuse(ctx, call, f"spatial size {h}x{w} (not divisible by block_size)")
        shape = (n, h // block, w // block, scaled(c, block * block))
    return ctx.add(call.op, [x], [TensorSpec(shape, x.spec.dtype)], {"block_size": block}).outputs


@_builds("one_hot")
def build_one_hot(ctx: LayerContext, call: OpCall) -> list[Value]:
    x = _tensor(ctx, call, "x")
    axis = call.args.get("axis")
    if axis not in (None, -1, x.rank):
        raise _refuse(ctx, call, f"axis={axis}")
    if call.args.get("sparse"):
        raise _refuse(ctx, call, "sparse=True")
    depth = int(call.args["depth"])
    on = call.args.get("on", 1)
    off = call.args.get("off", 0)
    dtype = _dtype_name(call.args.get("dtype") or "float32")
    attrs = {"depth": depth, "dtype": dtype, "on": 1 if on is None else on, "off": 0 if off is None else off}
    return ctx.add("tf_one_hot", [x], [TensorSpec(x.spec.shape + (depth,), dtype)], attrs).outputs

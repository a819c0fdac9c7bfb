"""Shape values and the ops that take them: Shape, ShapeN, Size, Rank, BroadcastArgs ->
symbolic `ShapeVec`s; Range, Fill, BroadcastTo with run-time sizes -> torch calls reading
`x.shape[i]`. Arithmetic on shape values is in math.py (it shares the ops' importers)."""

from __future__ import annotations

import numpy as np

from tf2torch.frontends.tf.context import OpContext
from tf2torch.frontends.tf.operands import OperandBuilder
from tf2torch.frontends.tf.registry import register_tf_op
from tf2torch.frontends.tf.symbolic import broadcast_dims, is_number, static_size, sym_product
from tf2torch.frontends.tf.values import Dim, Item, ShapeVec, Sym, TFVal, VarRef
from tf2torch.ir import TensorSpec, Value


def dims_of(ctx: OpContext, x: TFVal) -> list[Sym]:
    """The shape of `x`: ints where known, `Dim`s where only known at run time."""
    if isinstance(x, VarRef):
        return [int(d) for d in x.array.shape]
    if isinstance(x, np.ndarray):
        return [int(d) for d in x.shape]
    if isinstance(x, ShapeVec):
        return [] if x.scalar else [len(x.items)]
    if not isinstance(x, Value):
        raise ctx.unsupported(f"the shape of a {type(x).__name__}")
    return [d if d is not None else Dim(x, i) for i, d in enumerate(x.spec.shape)]


def shape_items(ctx: OpContext, index: int) -> list[Sym]:
    """Input `index` as a list of (possibly run-time) sizes: a shape vector or one size."""
    value = ctx.inputs[index]
    if isinstance(value, ShapeVec):
        return list(value.items)
    if isinstance(value, np.ndarray):
        return [v.item() for v in value.reshape(-1)]
    if isinstance(value, Value) and value.rank == 0 and value.spec.dtype.startswith(("int", "uint")):
        return [Item(value)]
    cast = ctx.importer.cast_sizes.get(id(value)) if isinstance(value, Value) else None
    if cast is not None:  # sizes cast to float (`ops.arange(seq_len, dtype="float32")`): whole, exact
        return list(cast.items)
    raise ctx.unsupported(f"a run-time tensor as the shape argument (input {index})")


def spec_from_items(ctx: OpContext, items: list[Sym], dtype: str) -> TensorSpec:
    """TensorFlow's inferred output shape where it has one, else what the items say."""
    tensor = ctx.op.outputs[0]
    if tensor.shape.rank is not None:
        return TensorSpec(tuple(tensor.shape.as_list()), dtype)
    return TensorSpec(tuple(static_size(s) if is_number(s) and s >= 0 else None for s in items), dtype)


def _out_dtype(ctx: OpContext) -> str:
    return ctx.attr("out_type").name


@register_tf_op("Shape")
def import_shape(ctx: OpContext) -> list[TFVal]:
    if isinstance(ctx.inputs[0], Value) and ctx.op.inputs[0].shape.rank is None:
        raise ctx.unsupported("the shape of a tensor of unknown rank")
    return [ShapeVec(dims_of(ctx, ctx.inputs[0]), dtype=_out_dtype(ctx))]


@register_tf_op("ShapeN")
def import_shape_n(ctx: OpContext) -> list[TFVal]:
    return [ShapeVec(dims_of(ctx, x), dtype=_out_dtype(ctx)) for x in ctx.inputs]


@register_tf_op("Size")
def import_size(ctx: OpContext) -> list[TFVal]:
    return [ShapeVec([sym_product(dims_of(ctx, ctx.inputs[0]))], scalar=True, dtype=_out_dtype(ctx))]


@register_tf_op("Rank")
def import_rank(ctx: OpContext) -> list[TFVal]:
    if ctx.op.inputs[0].shape.rank is None:
        raise ctx.unsupported("the rank of a tensor of unknown rank")
    return [np.asarray(ctx.op.inputs[0].shape.rank, np.int32)]


@register_tf_op("BroadcastArgs")
def import_broadcast_args(ctx: OpContext) -> list[TFVal]:
    out = broadcast_dims(shape_items(ctx, 0), shape_items(ctx, 1))
    return [ShapeVec(out, dtype=ctx.attr("T").name)]


@register_tf_op("Range")
def import_range(ctx: OpContext) -> list[TFVal]:
    start, limit, delta = (_one(ctx, i) for i in range(3))
    dtype = ctx.attr("Tidx").name
    ops = OperandBuilder(ctx)
    attrs = {"start": ops.sym(start), "limit": ops.sym(limit), "delta": ops.sym(delta), "dtype": dtype}
    return [ops.add("tf_range", attrs, TensorSpec((static_size(limit) if start == 0 and delta == 1 else None,), dtype)).outputs[0]]


def _one(ctx: OpContext, index: int) -> Sym:
    items = shape_items(ctx, index)
    if len(items) != 1:
        raise ctx.unsupported(f"a non-scalar input {index}")
    return items[0]


@register_tf_op("Fill")
def import_fill(ctx: OpContext) -> list[TFVal]:
    items = shape_items(ctx, 0)
    value = ctx.inputs[1]
    ops = OperandBuilder(ctx)
    if isinstance(value, np.ndarray):
        fill = ("scalar", value.item())
    else:
        fill = ops.operand(value)  # a run-time scalar: expanded
    dtype = ctx.attr("T").name
    attrs = {"shape": ops.syms(items), "value": fill, "dtype": dtype}
    return [ops.add("tf_fill", attrs, spec_from_items(ctx, items, dtype)).outputs[0]]


@register_tf_op("BroadcastTo")
def import_broadcast_to(ctx: OpContext) -> list[TFVal]:
    items = shape_items(ctx, 1)
    x = ctx.inputs[0]
    ops = OperandBuilder(ctx)
    dtype = ctx.attr("T").name
    if isinstance(x, np.ndarray) and x.size == 1:  # one value everywhere: torch.full
        attrs = {"shape": ops.syms(items), "value": ("scalar", x.item()), "dtype": dtype}
        return [ops.add("tf_fill", attrs, spec_from_items(ctx, items, dtype)).outputs[0]]
    source = ops.operand(x)
    have = dims_of(ctx, x) if not isinstance(x, ShapeVec) else [len(x.items)]
    # keep a dimension x already has (-1): x.expand(-1, 7) rather than x.expand(x.shape[0], 7)
    shift = len(items) - len(have)
    target = [(-1 if i >= shift and not is_number(s) and s == have[i - shift] else s) for i, s in enumerate(items)]
    attrs = {"source": source, "shape": ops.syms(target)}
    return [ops.add("tf_broadcast_to", attrs, spec_from_items(ctx, items, dtype)).outputs[0]]

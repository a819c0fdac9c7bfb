"""Shape and indexing ops: Reshape, Transpose, ExpandDims, Squeeze, ConcatV2, Pack, Unpack,
Split(V), Slice, StridedSlice, Gather(V2), GatherNd, Tile, Pad(V2), MirrorPad, Fill, Shape,
OneHot, Where. Run-time shapes (`tf.shape(x)[0]`) stay symbolic (`ShapeVec`), so a dynamic
batch survives into `x.reshape(-1, ...)` / `x.shape[0]`."""

from __future__ import annotations

import math

import numpy as np

from tf2torch.frontends.tf.context import OpContext
from tf2torch.frontends.tf.ops.math import OperandBuilder
from tf2torch.frontends.tf.registry import register_tf_op
from tf2torch.frontends.tf.values import Dim, ShapeVec, TFVal, VarRef
from tf2torch.ir import Param, TensorSpec, Value


def _shape_items(ctx: OpContext, index: int) -> list[int | Dim]:
    value = ctx.inputs[index]
    if isinstance(value, ShapeVec):
        return list(value.items)
    return [int(v) for v in np.asarray(ctx.const(index)).reshape(-1)]


def _as_shape_item(ctx: OpContext, value: TFVal) -> list[int | Dim] | None:
    if isinstance(value, ShapeVec):
        return list(value.items)
    if isinstance(value, np.ndarray) and value.dtype.kind in "iu" and value.ndim <= 1:
        return [int(v) for v in value.reshape(-1)]
    return None


@register_tf_op("Shape")
def import_shape(ctx: OpContext) -> list[TFVal]:
    x = ctx.inputs[0]
    if isinstance(x, (VarRef, np.ndarray)):
        return [np.asarray(np.shape(x.array if isinstance(x, VarRef) else x), dtype=ctx.attr("out_type").as_numpy_dtype)]
    x = ctx.value(0)
    items: list[int | Dim] = [d if d is not None else Dim(x, i) for i, d in enumerate(x.spec.shape)]
    if all(isinstance(i, int) for i in items):
        return [np.asarray(items, dtype=ctx.attr("out_type").as_numpy_dtype)]
    return [ShapeVec(items)]


def _reshape_var(var: VarRef, shape: list[int]) -> VarRef:
    return VarRef(var.name, var.array.reshape(shape), var.trainable)


@register_tf_op("Reshape")
def import_reshape(ctx: OpContext) -> list[TFVal]:
    items = _shape_items(ctx, 1)
    x = ctx.inputs[0]
    if isinstance(x, VarRef) and all(isinstance(i, int) for i in items):
        return [_reshape_var(x, items)]
    x = ctx.value(0)
    out = ctx.out_spec(0)
    if (x.rank >= 3 and out.rank == 2 and x.spec.shape[1:].count(None) == 0
            and out.shape[1] == math.prod(x.spec.shape[1:]) and _is_batch(items[0], x, out)):
        return [ctx.add("flatten", [x], [TensorSpec((x.spec.shape[0], out.shape[1]), x.spec.dtype)]).outputs[0]]
    shape: list = []
    for pos, item in enumerate(items):
        if isinstance(item, Dim):
            if item.value is x:
                shape.append(("dim", item.axis))
            elif out.shape[pos] is not None:
                shape.append(int(out.shape[pos]))
            else:
                shape.append(-1)
        else:
            shape.append(int(item))
    if shape.count(-1) > 1:
        raise ctx.unsupported("a reshape with several run-time dimensions")
    if -1 not in shape and sum(isinstance(s, tuple) for s in shape) == 1 and shape[0] == ("dim", 0):
        shape[0] = -1  # x.reshape(-1, ...) reads better than x.reshape(x.shape[0], ...)
    return [ctx.add("tf_reshape", [x], attrs={"shape": shape}).outputs[0]]


def _is_batch(item: int | Dim, x: Value, out: TensorSpec) -> bool:
    if isinstance(item, Dim):
        return item.value is x and item.axis == 0
    return item == -1 or (x.spec.shape[0] is not None and item == x.spec.shape[0])


@register_tf_op("Transpose")
def import_transpose(ctx: OpContext) -> list[TFVal]:
    perm = tuple(int(p) for p in ctx.const(1))
    x = ctx.inputs[0]
    if isinstance(x, VarRef):
        return [VarRef(x.name, np.transpose(x.array, perm), x.trainable)]
    x = ctx.value(0)
    chain = _elementwise_chain(ctx, x)
    producer = (chain[0].inputs[0] if chain else x).producer
    single = ctx.importer.consumer_count(ctx.op.inputs[0]) == 1
    first = chain[0].inputs[0] if chain else x
    if (producer is not None and producer.op == "tf_transpose" and single
            and not [n for n in ctx.importer.graph.consumers(first) if n not in chain]
            and (not chain or ctx.importer.tf_uses.get(id(first)) == 1)):
        # Fold a transpose pair (e.g. NHWC -> NCHW -> NHWC) into one, or none, also across
        # elementwise ops in between: those then run in the original layout.
        ctx.importer.graph.nodes.remove(producer)
        inner = producer.attrs["dims"]
        source = producer.inputs[0]
        for node in chain:
            node.inputs = [source if v is first else v for v in node.inputs]
            out = node.outputs[0]
            out.spec = TensorSpec(source.spec.shape, out.spec.dtype)
            first, source = out, out
        perm = tuple(inner[p] for p in perm)
        x = source
    if perm == tuple(range(len(perm))):
        return [x]
    return [ctx.add("tf_transpose", [x], attrs={"dims": perm}).outputs[0]]


def _elementwise_chain(ctx: OpContext, x: Value) -> list:
    """Single-use unary elementwise nodes (scalar operands only) ending in `x`, first first."""
    chain = []
    while (x.producer is not None and len(x.producer.inputs) == 1 and len(x.producer.outputs) == 1
           and x.producer.op in ("tf_unary", "tf_binary", "activation", "tf_cast")
           and all(op[0] != "tensor" for op in x.producer.attrs.get("operands", ()))
           and ctx.importer.tf_uses.get(id(x)) == 1 and not ctx.importer.graph.consumers(x)):
        chain.insert(0, x.producer)
        x = x.producer.inputs[0]
    return chain


@register_tf_op("ExpandDims")
def import_expand_dims(ctx: OpContext) -> list[TFVal]:
    x = ctx.inputs[0]
    axis = int(np.asarray(ctx.const(1)).reshape(-1)[0])
    if isinstance(x, VarRef):
        return [VarRef(x.name, np.expand_dims(x.array, axis), x.trainable)]
    if isinstance(x, ShapeVec) and x.scalar:
        return [ShapeVec(x.items)]
    x = ctx.value(0)
    return [ctx.add("tf_unsqueeze", [x], attrs={"axis": axis % (x.rank + 1)}).outputs[0]]


@register_tf_op("Squeeze")
def import_squeeze(ctx: OpContext) -> list[TFVal]:
    x = ctx.inputs[0]
    dims = list(ctx.attr("squeeze_dims") or [])
    if isinstance(x, VarRef):
        return [VarRef(x.name, np.squeeze(x.array, tuple(dims) or None), x.trainable)]
    x = ctx.value(0)
    if not dims:
        dims = [i for i, d in enumerate(x.spec.shape) if d == 1]
    return [ctx.add("tf_squeeze", [x], attrs={"dims": tuple(sorted(d % x.rank for d in dims))}).outputs[0]]


@register_tf_op("ConcatV2")
def import_concat(ctx: OpContext) -> list[TFVal]:
    parts = ctx.inputs[:-1]
    axis = int(ctx.const(len(ctx.inputs) - 1))
    shapes = [_as_shape_item(ctx, p) for p in parts]
    if any(isinstance(p, ShapeVec) for p in parts) and all(s is not None for s in shapes):
        return [ShapeVec([i for s in shapes for i in s])]
    values = [ctx.value(i) for i in range(len(parts))]
    return [ctx.add("concat", values, attrs={"axis": axis % values[0].rank}).outputs[0]]


@register_tf_op("Pack")
def import_pack(ctx: OpContext) -> list[TFVal]:
    parts = ctx.inputs
    if any(isinstance(p, ShapeVec) for p in parts):
        items: list[int | Dim] = []
        for p in parts:
            if isinstance(p, ShapeVec) and p.scalar:
                items.extend(p.items)
            elif isinstance(p, np.ndarray) and p.ndim == 0:
                items.append(int(p))
            else:
                raise ctx.unsupported("packing a shape vector with tensors")
        return [ShapeVec(items)]
    values = [ctx.value(i) for i in range(len(parts))]
    axis = int(ctx.attr("axis")) % (values[0].rank + 1)
    return [ctx.add("tf_stack", values, attrs={"axis": axis}).outputs[0]]


@register_tf_op("Unpack")
def import_unpack(ctx: OpContext) -> list[TFVal]:
    x = ctx.inputs[0]
    if isinstance(x, ShapeVec):
        return [ShapeVec([i], scalar=True) for i in x.items]
    x = ctx.value(0)
    axis = int(ctx.attr("axis")) % x.rank
    return list(ctx.add("tf_unstack", [x], attrs={"axis": axis}).outputs)


@register_tf_op("Split", "SplitV")
def import_split(ctx: OpContext) -> list[TFVal]:
    if ctx.type == "Split":
        x, axis = ctx.value(1), int(ctx.const(0))
        n = int(ctx.attr("num_split"))
        size = x.spec.shape[axis]
        if size is None:
            raise ctx.unsupported("splitting a dynamic axis")
        sizes = [size // n] * n
    else:
        x, axis = ctx.value(0), int(ctx.const(2))
        sizes = [int(s) for s in ctx.const(1)]
        if -1 in sizes:
            size = x.spec.shape[axis]
            if size is None:
                raise ctx.unsupported("splitting a dynamic axis")
            sizes[sizes.index(-1)] = size - (sum(sizes) + 1)
    return list(ctx.add("tf_split", [x], attrs={"sizes": tuple(sizes), "axis": axis % x.rank}).outputs)


def _slice_text(begin: int | None, end: int | None, stride: int = 1) -> str:
    text = f"{'' if not begin else begin}:{'' if end is None else end}"
    return text + (f":{stride}" if stride != 1 else "")


@register_tf_op("Slice")
def import_slice(ctx: OpContext) -> list[TFVal]:
    begin = [int(b) for b in ctx.const(1)]
    size = [int(s) for s in ctx.const(2)]
    x = ctx.inputs[0]
    if isinstance(x, ShapeVec):
        return [ShapeVec(x.items[begin[0]:None if size[0] == -1 else begin[0] + size[0]])]
    x = ctx.value(0)
    index = [_slice_text(b, None if s == -1 else b + s) for b, s in zip(begin, size)]
    return [ctx.add("tf_slice", [x], attrs={"index": _trim(index)}).outputs[0]]


def _trim(index: list[str]) -> tuple[str, ...]:
    while index and index[-1] == ":":
        index = index[:-1]
    return tuple(index) or (":",)


@register_tf_op("StridedSlice")
def import_strided_slice(ctx: OpContext) -> list[TFVal]:
    begin, end, strides = (np.asarray(ctx.const(i)).reshape(-1) for i in (1, 2, 3))
    masks = {k: int(ctx.attr(k, 0)) for k in ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")}
    x = ctx.inputs[0]
    if isinstance(x, ShapeVec):
        if len(begin) != 1 or masks["ellipsis_mask"] or masks["new_axis_mask"]:
            raise ctx.unsupported("this slice of a shape vector")
        if masks["shrink_axis_mask"] & 1:
            return [ShapeVec([x.items[int(begin[0])]], scalar=True)]
        b = None if masks["begin_mask"] & 1 else int(begin[0])
        e = None if masks["end_mask"] & 1 else int(end[0])
        return [ShapeVec(x.items[b:e:int(strides[0])])]
    x = ctx.value(0)
    index: list[str] = []
    for i in range(len(begin)):
        bit = 1 << i
        if masks["ellipsis_mask"] & bit:
            index.append("...")
        elif masks["new_axis_mask"] & bit:
            index.append("None")
        elif masks["shrink_axis_mask"] & bit:
            index.append(str(int(begin[i])))
        else:
            if int(strides[i]) < 0:
                raise ctx.unsupported("a negative slice stride")
            b = None if masks["begin_mask"] & bit else int(begin[i])
            e = None if masks["end_mask"] & bit else int(end[i])
            if e is not None and e >= 2**31 - 1:
                e = None
            index.append(_slice_text(b, e, int(strides[i])))
    return [ctx.add("tf_slice", [x], attrs={"index": _trim(index)}).outputs[0]]


@register_tf_op("GatherV2", "Gather", "ResourceGather")
def import_gather(ctx: OpContext) -> list[TFVal]:
    params, indices = ctx.inputs[0], ctx.inputs[1]
    axis = int(ctx.const(2)) if ctx.type == "GatherV2" else 0
    if int(ctx.attr("batch_dims", 0) or 0):
        raise ctx.unsupported("gather with batch_dims")
    if isinstance(params, ShapeVec) and isinstance(indices, np.ndarray):
        picked = [params.items[int(i)] for i in indices.reshape(-1)]
        return [ShapeVec(picked, scalar=indices.ndim == 0)]
    if isinstance(params, VarRef) and params.array.ndim == 2 and axis == 0 and isinstance(indices, Value):
        name = ctx.layer_name(params)
        node = ctx.add("embedding", [indices], attrs={"num": int(params.array.shape[0]), "dim": int(params.array.shape[1])},
                       params={"embeddings": Param(np.asarray(params.array, np.float32), "VD", params.trainable)}, name=name)
        return [node.outputs[0]]
    ops = OperandBuilder(ctx)
    operands = [ops.operand(params), ops.operand(indices)]
    rank = len(ctx.op.inputs[0].shape)
    return [ops.add("tf_gather", {"operands": operands, "axis": axis % rank}).outputs[0]]


@register_tf_op("GatherNd")
def import_gather_nd(ctx: OpContext) -> list[TFVal]:
    ops = OperandBuilder(ctx)
    operands = [ops.operand(ctx.inputs[0]), ops.operand(ctx.inputs[1])]
    return [ops.add("tf_gather_nd", {"operands": operands}).outputs[0]]


@register_tf_op("Tile")
def import_tile(ctx: OpContext) -> list[TFVal]:
    multiples = tuple(int(m) for m in ctx.const(1))
    return [ctx.add("tf_tile", [ctx.value(0)], attrs={"multiples": multiples}).outputs[0]]


@register_tf_op("Pad", "PadV2", "MirrorPad")
def import_pad(ctx: OpContext) -> list[TFVal]:
    x = ctx.value(0)
    pads = [(int(a), int(b)) for a, b in np.asarray(ctx.const(1)).reshape(-1, 2)]
    value = float(ctx.const(2)) if ctx.type == "PadV2" else 0.0
    mode = "constant"
    if ctx.type == "MirrorPad":
        mode = {"REFLECT": "reflect", "SYMMETRIC": "symmetric"}[ctx.attr("mode")]
        if mode == "symmetric":
            raise ctx.unsupported("MirrorPad mode SYMMETRIC")
    if (mode == "constant" and value == 0.0 and x.rank in (4, 5) and pads[0] == (0, 0) and pads[-1] == (0, 0)):
        return [ctx.add("pad", [x], attrs={"pads": pads[1:-1]}).outputs[0]]
    return [ctx.add("tf_pad", [x], attrs={"pads": tuple(pads), "mode": mode, "value": value}).outputs[0]]


@register_tf_op("Fill")
def import_fill(ctx: OpContext) -> list[TFVal]:
    items = _shape_items(ctx, 0)
    value = ctx.const(1)
    sources: list[Value] = []
    shape: list = []
    for item in items:
        if isinstance(item, Dim):
            if item.value not in sources:
                sources.append(item.value)
            shape.append(("dim", sources.index(item.value), item.axis))
        else:
            shape.append(int(item))
    attrs = {"shape": shape, "value": value.item(), "dtype": value.dtype.name}
    return [ctx.add("tf_fill", sources, attrs=attrs).outputs[0]]


@register_tf_op("ZerosLike", "OnesLike")
def import_zeros_like(ctx: OpContext) -> list[TFVal]:
    fn = "zeros_like" if ctx.type == "ZerosLike" else "ones_like"
    return [ctx.add("tf_unary", [ctx.value(0)], attrs={"fn": fn}).outputs[0]]


@register_tf_op("OneHot")
def import_one_hot(ctx: OpContext) -> list[TFVal]:
    indices = ctx.value(0)
    axis = int(ctx.attr("axis"))
    if axis not in (-1, indices.rank):
        raise ctx.unsupported("OneHot on an axis other than the last")
    attrs = {"depth": int(ctx.const(1)), "on": ctx.const(2).item(), "off": ctx.const(3).item(),
             "dtype": ctx.attr("T").name}
    return [ctx.add("tf_one_hot", [indices], attrs=attrs).outputs[0]]


@register_tf_op("Where")
def import_where(ctx: OpContext) -> list[TFVal]:
    return [ctx.add("tf_nonzero", [ctx.value(0)]).outputs[0]]


@register_tf_op("Range")
def import_range(ctx: OpContext) -> list[TFVal]:
    raise ctx.unsupported("Range with run-time bounds")

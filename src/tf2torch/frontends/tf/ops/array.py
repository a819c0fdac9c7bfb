"""Shape and indexing ops: Reshape, Transpose, ExpandDims, Squeeze, ConcatV2, Pack, Unpack,
Split(V), Slice, StridedSlice, Gather(V2), GatherNd, Tile, Pad(V2), MirrorPad, OneHot, Where,
ReverseV2, Roll, MatrixBandPart, MatrixDiagPartV3, TensorScatterUpdate / Add, ScatterNd,
XlaDynamicUpdateSlice.
Shape values (`tf.shape(x)[0]`, see shapes.py) stay symbolic through the ones that build
them (Pack, ConcatV2, StridedSlice...) and become `x.shape[i]` in the ones that take them
(Reshape, Slice, Tile...), so a dynamic batch and sequence length survive."""

from __future__ import annotations

import math

import numpy as np

from tf2torch.frontends.tf.context import OpContext
from tf2torch.frontends.tf.operands import OperandBuilder
from tf2torch.frontends.tf.ops.shapes import dims_of, shape_items, spec_from_items
from tf2torch.frontends.tf.registry import register_tf_op
from tf2torch.frontends.tf.symbolic import is_nonnegative, is_number, sym_binary, sym_equal, sym_product
from tf2torch.frontends.tf.values import Dim, Item, ShapeVec, Sym, TFVal, VarRef
from tf2torch.ir import Param, TensorSpec, Value


def _reshape_var(var: VarRef, shape: list[int]) -> VarRef:
    return VarRef(var.name, var.array.reshape(shape), var.trainable, var.ambiguous)


@register_tf_op("Reshape")
def import_reshape(ctx: OpContext) -> list[TFVal]:
    items = shape_items(ctx, 1)
    x = ctx.inputs[0]
    if isinstance(x, ShapeVec):  # a shape value reshaped to a vector or a scalar
        return [ShapeVec(list(x.items), scalar=not items, dtype=x.dtype)]
    if isinstance(x, VarRef) and all(is_number(i) for i in items):
        return [_reshape_var(x, [int(i) for i in items])]
    x = ctx.value(0)
    out = spec_from_items(ctx, items, x.spec.dtype)
    dense = _fold_tensordot(ctx, x, items)
    if dense is not None:
        return [dense]
    if (x.rank >= 3 and out.rank == 2 and x.spec.shape[1:].count(None) == 0
            and out.shape[1] == math.prod(x.spec.shape[1:]) and _is_batch(items[0], x)):
        return [ctx.add("flatten", [x], [TensorSpec((x.spec.shape[0], out.shape[1]), x.spec.dtype)]).outputs[0]]
    # TensorFlow's static shape wins; of the sizes known only at run time, a single one
    # becomes -1 (x.reshape(-1, 7) reads better than x.reshape(x.shape[0] * x.shape[1], 7)).
    shape: list[Sym] = [out.shape[i] if out.shape[i] is not None else s for i, s in enumerate(items)]
    dynamic = [i for i, s in enumerate(shape) if not is_number(s)]
    if -1 not in shape and len(dynamic) == 1:
        shape[dynamic[0]] = -1
    ops = OperandBuilder(ctx)
    ops.value(x)
    attrs = {"shape": ops.syms(shape)}
    lead = dims_of(ctx, x)[:-1]
    if x.rank >= 3 and len(items) == 2 and items[1] == x.spec.shape[-1] and (
            items[0] == -1 or sym_equal(items[0], sym_product(lead))):
        attrs["merges_leading"] = True  # (batch, ..., features) -> (-1, features), as Tensordot does
    return [ops.add("tf_reshape", attrs, out).outputs[0]]


def _fold_tensordot(ctx: OpContext, y: Value, items: list[Sym]) -> Value | None:
    """reshape(matmul(reshape(v, [-1, features]), kernel), [*v.shape[:-1], units]), which is how
    TensorFlow writes a Dense on a rank > 2 input (Tensordot), -> one dense on v (nn.Linear)."""
    dense = y.producer
    if dense is None or dense.op != "dense" or dense.inputs[0].producer is None:
        return None
    flat = dense.inputs[0]
    merge = flat.producer
    if merge.op != "tf_reshape" or not merge.attrs.get("merges_leading"):
        return None
    v = merge.inputs[0]
    lead = dims_of(ctx, v)[:-1]
    if len(items) != len(lead) + 1 or not all(sym_equal(a, b) for a, b in zip(items, lead)):
        return None
    if items[-1] not in (-1, dense.attrs["units"]):
        return None
    graph, uses = ctx.importer.graph, ctx.importer.tf_uses
    if graph.consumers(flat) != [dense] or graph.consumers(y) or uses.get(id(flat)) != 1 or uses.get(id(y)) != 1:
        return None
    graph.nodes.remove(merge)
    dense.inputs = [v]
    y.spec = TensorSpec(tuple(v.spec.shape[:-1]) + (dense.attrs["units"],), y.spec.dtype)
    return y


def _is_batch(item: Sym, x: Value) -> bool:
    if isinstance(item, Dim):
        return item.value is x and item.axis == 0
    return item == -1 or (x.spec.shape[0] is not None and item == x.spec.shape[0])


@register_tf_op("Transpose")
def import_transpose(ctx: OpContext) -> list[TFVal]:
    perm = tuple(int(p) for p in ctx.const(1))
    x = ctx.inputs[0]
    if isinstance(x, VarRef):
        return [VarRef(x.name, np.transpose(x.array, perm), x.trainable, x.ambiguous)]
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
        return [VarRef(x.name, np.expand_dims(x.array, axis), x.trainable, x.ambiguous)]
    if isinstance(x, ShapeVec) and x.scalar:
        return [ShapeVec(x.items, dtype=x.dtype)]
    x = ctx.value(0)
    return [ctx.add("tf_unsqueeze", [x], attrs={"axis": axis % (x.rank + 1)}).outputs[0]]


@register_tf_op("Squeeze")
def import_squeeze(ctx: OpContext) -> list[TFVal]:
    x = ctx.inputs[0]
    dims = list(ctx.attr("squeeze_dims") or [])
    if isinstance(x, ShapeVec) and len(x.items) == 1:
        return [ShapeVec(x.items, scalar=True, dtype=x.dtype)]
    if isinstance(x, VarRef):
        return [VarRef(x.name, np.squeeze(x.array, tuple(dims) or None), x.trainable, x.ambiguous)]
    x = ctx.value(0)
    if not dims:
        dims = [i for i, d in enumerate(x.spec.shape) if d == 1]
    return [ctx.add("tf_squeeze", [x], attrs={"dims": tuple(sorted(d % x.rank for d in dims))}).outputs[0]]


@register_tf_op("ConcatV2")
def import_concat(ctx: OpContext) -> list[TFVal]:
    parts = ctx.inputs[:-1]
    axis = int(ctx.const(len(ctx.inputs) - 1))
    if any(isinstance(p, ShapeVec) for p in parts) and all(_is_shape_like(p) for p in parts):
        return [ShapeVec([i for p in parts for i in _shape_like_items(p)], dtype=_shape_dtype(parts))]
    values = [ctx.value(i) for i in range(len(parts))]
    return [ctx.add("concat", values, attrs={"axis": axis % values[0].rank}).outputs[0]]


def _is_shape_like(value: TFVal) -> bool:
    """A shape value, a constant that can take part in shape arithmetic, or a run-time int scalar."""
    if isinstance(value, Value):
        return value.rank == 0 and value.spec.dtype.startswith(("int", "uint"))
    return isinstance(value, ShapeVec) or (isinstance(value, np.ndarray) and value.dtype.kind in "iuf" and value.ndim <= 1)


def _shape_like_items(value: TFVal) -> list[Sym]:
    if isinstance(value, ShapeVec):
        return list(value.items)
    if isinstance(value, Value):
        return [Item(value)]
    return [v.item() for v in np.asarray(value).reshape(-1)]


def _shape_dtype(parts: list[TFVal]) -> str:
    return next(p.dtype if isinstance(p, ShapeVec) else p.spec.dtype for p in parts if isinstance(p, (ShapeVec, Value)))


SIZE_CONSUMERS = {"StridedSlice", "Slice", "Reshape", "Fill", "Tile", "BroadcastTo", "Range"}


def _feeds_sizes(ctx: OpContext) -> bool:
    """Run-time int scalars packed for a slice bound or a shape (not a tensor computation)."""
    return all(c.type in SIZE_CONSUMERS for c in ctx.op.outputs[0].consumers())


def _packs_sizes(ctx: OpContext, parts: list[TFVal]) -> bool:
    """Scalars packed into a shape vector: shape values with constants, or run-time int scalars
    that feed only slice bounds and shapes."""
    scalars = all(_is_shape_like(p) and (p.scalar if isinstance(p, ShapeVec) else np.ndim(p) == 0 if isinstance(
        p, np.ndarray) else True) for p in parts)
    if not scalars:
        return False
    if any(isinstance(p, ShapeVec) for p in parts):
        return True
    return any(isinstance(p, Value) for p in parts) and bool(ctx.op.outputs[0].consumers()) and _feeds_sizes(ctx)


@register_tf_op("Pack")
def import_pack(ctx: OpContext) -> list[TFVal]:
    parts = ctx.inputs
    if _packs_sizes(ctx, parts):
        return [ShapeVec([i for p in parts for i in _shape_like_items(p)], dtype=_shape_dtype(parts))]
    values = [ctx.value(i) for i in range(len(parts))]
    axis = int(ctx.attr("axis")) % (values[0].rank + 1)
    return [ctx.add("tf_stack", values, attrs={"axis": axis}).outputs[0]]


@register_tf_op("Unpack")
def import_unpack(ctx: OpContext) -> list[TFVal]:
    x = ctx.inputs[0]
    if isinstance(x, ShapeVec):
        return [ShapeVec([i], scalar=True, dtype=x.dtype) for i in x.items]
    x = ctx.value(0)
    axis = int(ctx.attr("axis")) % x.rank
    return list(ctx.add("tf_unstack", [x], attrs={"axis": axis}).outputs)


@register_tf_op("Split", "SplitV")
def import_split(ctx: OpContext) -> list[TFVal]:
    data = ctx.inputs[1 if ctx.type == "Split" else 0]
    if isinstance(data, VarRef):  # e.g. a GRU cell's bias split into its input and recurrent parts
        return _split_variable(ctx, data)
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


def _slice_entry(ops: OperandBuilder, begin: Sym | None, end: Sym | None, stride: int = 1) -> str | tuple:
    """`b:e:s` as text when static, else ("slice", b, e, s) with encoded run-time bounds."""
    if all(v is None or is_number(v) for v in (begin, end)):
        text = f"{'' if not begin else begin}:{'' if end is None else end}"
        return text + (f":{stride}" if stride != 1 else "")
    return ("slice", None if begin is None else ops.sym(begin), None if end is None else ops.sym(end), stride)


def _trim(index: list) -> tuple:
    while index and index[-1] == ":":
        index = index[:-1]
    return tuple(index) or (":",)


def _slice_node(ctx: OpContext, ops: OperandBuilder, source: tuple, index: list) -> list[TFVal]:
    return [ops.add("tf_slice", {"source": source, "index": _trim(index)}).outputs[0]]


@register_tf_op("Slice")
def import_slice(ctx: OpContext) -> list[TFVal]:
    begin = shape_items(ctx, 1)
    size = shape_items(ctx, 2)
    x = ctx.inputs[0]
    if isinstance(x, ShapeVec):
        if not (is_number(begin[0]) and is_number(size[0])):
            raise ctx.unsupported("a run-time slice of a shape value")
        b, n = int(begin[0]), int(size[0])
        return [ShapeVec(x.items[b:None if n == -1 else b + n], dtype=x.dtype)]
    ops = OperandBuilder(ctx)
    source = ops.operand(x)
    index = [_slice_entry(ops, b, None if n == -1 else sym_binary("add", b, n)) for b, n in zip(begin, size)]
    return _slice_node(ctx, ops, source, index)


@register_tf_op("StridedSlice")
def import_strided_slice(ctx: OpContext) -> list[TFVal]:
    begin, end = shape_items(ctx, 1), shape_items(ctx, 2)
    strides = [int(v) for v in np.asarray(ctx.const(3)).reshape(-1)]
    masks = {k: int(ctx.attr(k, 0)) for k in ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")}
    x = ctx.inputs[0]
    if isinstance(x, ShapeVec):
        if len(begin) != 1 or masks["ellipsis_mask"] or masks["new_axis_mask"] or not all(map(is_number, begin + end)):
            raise ctx.unsupported("this slice of a shape value")
        if masks["shrink_axis_mask"] & 1:
            return [ShapeVec([x.items[int(begin[0])]], scalar=True, dtype=x.dtype)]
        b = None if masks["begin_mask"] & 1 else int(begin[0])
        e = None if masks["end_mask"] & 1 else int(end[0])
        return [ShapeVec(x.items[b:e:strides[0]], dtype=x.dtype)]
    flips = [i for i, s in enumerate(strides) if s < 0]
    if flips:  # x[:, ::-k] -> x.flip(1)[:, ::k]
        full = all((masks["begin_mask"] >> i) & 1 and (masks["end_mask"] >> i) & 1 for i in flips)
        if not full or masks["ellipsis_mask"] or masks["new_axis_mask"] or not isinstance(x, Value):
            raise ctx.unsupported("a negative slice stride other than a full reversal (::-k)")
        x = ctx.add("tf_flip", [x], [x.spec], attrs={"dims": tuple(flips)}).outputs[0]
        strides = [abs(s) for s in strides]
    ops = OperandBuilder(ctx)
    source = ops.operand(x)
    index: list = []
    for i in range(len(begin)):
        bit = 1 << i
        if masks["ellipsis_mask"] & bit:
            index.append("...")
        elif masks["new_axis_mask"] & bit:
            index.append("None")
        elif masks["shrink_axis_mask"] & bit:
            index.append(str(int(begin[i])) if is_number(begin[i]) else ("at", ops.sym(begin[i])))
        else:
            b = None if masks["begin_mask"] & bit else begin[i]
            e = None if masks["end_mask"] & bit else end[i]
            if e is not None and is_number(e) and e >= 2**31 - 1:
                e = None
            index.append(_slice_entry(ops, b, e, strides[i]))
    return _slice_node(ctx, ops, source, index)


@register_tf_op("GatherV2", "Gather", "ResourceGather")
def import_gather(ctx: OpContext) -> list[TFVal]:
    params, indices = ctx.inputs[0], ctx.inputs[1]
    axis = int(ctx.const(2)) if ctx.type == "GatherV2" else 0
    batch_dims = int(ctx.attr("batch_dims", 0) or 0)
    if isinstance(params, ShapeVec) and isinstance(indices, np.ndarray):
        picked = [params.items[int(i)] for i in indices.reshape(-1)]
        return [ShapeVec(picked, scalar=indices.ndim == 0, dtype=params.dtype)]
    if (isinstance(params, VarRef) and params.array.ndim == 2 and axis == 0 and isinstance(indices, Value)
            and params.array.dtype.kind == "f"):
        name = ctx.layer_name(params)
        node = ctx.add("embedding", [indices], attrs={"num": int(params.array.shape[0]), "dim": int(params.array.shape[1])},
                       params={"embeddings": Param(np.asarray(params.array, np.float32), "VD", params.trainable)}, name=name)
        return [node.outputs[0]]
    ops = OperandBuilder(ctx)
    operands = [ops.operand(params), ops.operand(indices)]
    rank = len(ctx.op.inputs[0].shape)
    index_rank = len(ctx.op.inputs[1].shape)
    if batch_dims:
        batch_dims %= index_rank
        if axis % rank != batch_dims:
            raise ctx.unsupported("gather with batch_dims on an axis after the first non-batch one")
    attrs = {"operands": operands, "axis": axis % rank, "batch_dims": batch_dims, "index_rank": index_rank}
    return [ops.add("tf_gather", attrs).outputs[0]]


@register_tf_op("GatherNd")
def import_gather_nd(ctx: OpContext) -> list[TFVal]:
    if int(ctx.attr("batch_dims", 0) or 0):
        raise ctx.unsupported("GatherNd with batch_dims")
    ops = OperandBuilder(ctx)
    operands = [ops.operand(ctx.inputs[0]), ops.operand(ctx.inputs[1])]
    return [ops.add("tf_gather_nd", {"operands": operands}).outputs[0]]


@register_tf_op("Tile")
def import_tile(ctx: OpContext) -> list[TFVal]:
    multiples = shape_items(ctx, 1)
    ops = OperandBuilder(ctx)
    source = ops.operand(ctx.inputs[0])
    return [ops.add("tf_tile", {"source": source, "multiples": ops.syms(multiples)}).outputs[0]]


@register_tf_op("Pad", "PadV2", "MirrorPad")
def import_pad(ctx: OpContext) -> list[TFVal]:
    x = ctx.value(0)
    pads = [(int(a), int(b)) for a, b in np.asarray(ctx.const(1)).reshape(-1, 2)]
    value = float(ctx.const(2)) if ctx.type == "PadV2" else 0.0
    mode = "constant"
    if ctx.type == "MirrorPad":
        mode = {"REFLECT": "reflect", "SYMMETRIC": "symmetric"}[ctx.attr("mode")]
    if (mode == "constant" and value == 0.0 and x.rank in (4, 5) and pads[0] == (0, 0) and pads[-1] == (0, 0)):
        return [ctx.add("pad", [x], attrs={"pads": pads[1:-1]}).outputs[0]]
    return [ctx.add("tf_pad", [x], attrs={"pads": tuple(pads), "mode": mode, "value": value}).outputs[0]]


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


@register_tf_op("ReverseV2")
def import_reverse(ctx: OpContext) -> list[TFVal]:
    x = ctx.value(0)
    dims = tuple(sorted({int(a) % x.rank for a in np.asarray(ctx.const(1)).reshape(-1)}))
    return [ctx.add("tf_flip", [x], attrs={"dims": dims}).outputs[0]]


@register_tf_op("Roll")
def import_roll(ctx: OpContext) -> list[TFVal]:
    x = ctx.value(0)
    shifts = [int(s) for s in np.asarray(ctx.const(1)).reshape(-1)]
    axes = [int(a) % x.rank for a in np.asarray(ctx.const(2)).reshape(-1)]
    return [ctx.add("tf_roll", [x], attrs={"shifts": tuple(shifts), "dims": tuple(axes)}).outputs[0]]


@register_tf_op("MatrixBandPart")
def import_band_part(ctx: OpContext) -> list[TFVal]:
    """Keep the band -lower <= j - i <= upper (a negative bound keeps that whole triangle).

    A run-time bound (Gemma's sliding window: `min(steps, window - 1)`) must be provably
    non-negative: `torch.tril` / `triu` cannot express "keep all" for a value known only later."""
    ops = OperandBuilder(ctx)
    ops.value(ctx.value(0))
    bounds = {}
    for name, index in (("lower", 1), ("upper", 2)):
        (bound,) = shape_items(ctx, index)
        if not is_number(bound) and not is_nonnegative(bound):
            raise ctx.unsupported(f"a run-time {name} bound that may be negative")
        bounds[name] = int(bound) if is_number(bound) else ops.sym(bound)
    return [ops.add("tf_band_part", bounds).outputs[0]]


@register_tf_op("MatrixDiagPartV3")
def import_diag_part(ctx: OpContext) -> list[TFVal]:
    k = np.asarray(ctx.const(1)).reshape(-1)
    if k.size != 1:
        raise ctx.unsupported("several diagonals at once")
    return [ctx.add("tf_diagonal", [ctx.value(0)], attrs={"offset": int(k[0])}).outputs[0]]


@register_tf_op("TensorScatterUpdate", "TensorScatterAdd", "ScatterNd")
def import_scatter_nd(ctx: OpContext) -> list[TFVal]:
    """x with x[indices] = updates (TensorScatterUpdate) or += (TensorScatterAdd, and ScatterNd
    into zeros): torch.index_put, which returns a new tensor as TensorFlow does."""
    ops = OperandBuilder(ctx)
    if ctx.type == "ScatterNd":
        indices, updates = ops.operand(ctx.inputs[0]), ops.operand(ctx.inputs[1])
        attrs = {"indices": indices, "updates": updates, "zeros": ops.syms(shape_items(ctx, 2)),
                 "dtype": ctx.attr("T").name, "accumulate": True}
    else:
        attrs = {"source": ops.operand(ctx.inputs[0]), "indices": ops.operand(ctx.inputs[1]),
                 "updates": ops.operand(ctx.inputs[2]), "accumulate": ctx.type == "TensorScatterAdd"}
    return [ops.add("tf_scatter_nd", attrs).outputs[0]]


@register_tf_op("XlaDynamicUpdateSlice")
def import_update_slice(ctx: OpContext) -> list[TFVal]:
    """x with the block at `starts` replaced by `update` (Keras' slice_update, e.g. a KV cache);
    TensorFlow clamps each start so that the block fits."""
    ops = OperandBuilder(ctx)
    source = ops.operand(ctx.inputs[0])
    update = ops.operand(ctx.inputs[1])
    starts = shape_items(ctx, 2)
    index = []
    for start, size, extent in zip(starts, dims_of(ctx, ctx.inputs[1]), dims_of(ctx, ctx.inputs[0])):
        if is_number(size) and is_number(extent) and size == extent:
            index.append(":")
            continue
        if start == 0:  # the block fits from 0 (an update is never larger than x)
            fitted: Sym = 0
        else:
            fitted = sym_binary("minimum", sym_binary("maximum", start, 0), sym_binary("sub", extent, size))
        index.append(_slice_entry(ops, fitted, sym_binary("add", fitted, size)))
    return [ops.add("tf_update_slice", {"source": source, "update": update, "index": tuple(index)}).outputs[0]]


def _split_variable(ctx: OpContext, var: VarRef) -> list[TFVal]:
    """A variable split at conversion time: one parameter per part, named after the variable."""
    if ctx.type == "Split":
        axis = int(ctx.const(0))
        parts = np.split(var.array, int(ctx.attr("num_split")), axis=axis)
    else:
        axis, sizes = int(ctx.const(2)), [int(n) for n in ctx.const(1)]
        if -1 in sizes:
            sizes[sizes.index(-1)] = var.array.shape[axis] - (sum(sizes) + 1)
        parts = np.split(var.array, np.cumsum(sizes)[:-1], axis=axis)
    return [VarRef(f"{var.name}_{i}", np.ascontiguousarray(p), var.trainable, var.ambiguous) for i, p in enumerate(parts)]

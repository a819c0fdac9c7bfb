"""Shape bookkeeping: Reshape, Transpose (tf2onnx's NHWC pairs cancelled), Concat, Squeeze /
Unsqueeze, Slice, Gather, Flatten, Identity and Constant; `Shape` yields a ShapeVec of run-time sizes."""

from __future__ import annotations

import numpy as np

from tf2torch.frontends.onnx.importer import ONNX_DTYPES, Filled, OnnxContext, OnnxVal, ShapeVec
from tf2torch.frontends.onnx.operands import Operands
from tf2torch.frontends.onnx.registry import register_onnx_op
from tf2torch.ir import Node, TensorSpec, Value


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
        items, others = _run_time_shape(ctx, x, ctx.inputs[1].items)
        # Sizes ONNX's shape inference could not know (a reshape to computed sizes) but we do: later
        # `Shape`s of tensors with the same symbolic dim see the number.
        for symbol, item in zip(ctx.importer.symbols.get(ctx.node.output[0], ()), items):
            if symbol is not None and isinstance(item, int) and item >= 0:
                ctx.importer.symbol_sizes[symbol] = item
        return [ctx.add("tf_reshape", [x] + others, {"shape": items}).outputs[0]]
    shape = [int(d) for d in ctx.const(1)]
    if int(ctx.attr("allowzero", 0)) and 0 in shape:
        raise ctx.unsupported("Reshape with allowzero=1 and a zero dim")
    # 0 copies the input's dim: kept symbolic (x.shape[i]) so a dynamic batch stays dynamic.
    items = [("dim", 0, i) if d == 0 else d for i, d in enumerate(shape)]
    return [ctx.add("tf_reshape", [x], {"shape": items}).outputs[0]]


class _NotOwnDim(Exception):
    pass


def _run_time_shape(ctx: OnnxContext, x: Value, items: list) -> tuple[list, list[Value]]:
    """The target sizes in terms of `x`'s own dims, and the other tensors whose sizes they read.
    One size that cannot be (e.g. the larger of two tensors' batch sizes) is left to torch as -1:
    the element count fixes it, as ONNX requires. Several are read off the tensors they come
    from (tf2onnx's Tensordot of a Dense on NHWC: [N*H*W, C] back to the input's N, H, W)."""
    resolved: list = []
    for item in items:
        try:
            resolved.append(_own_dim(ctx, x, item))
        except _NotOwnDim:
            resolved.append(None)
    if resolved.count(None) == 1 and -1 not in resolved:
        return [-1 if item is None else item for item in resolved], []
    if None not in resolved:
        return resolved, []
    others: list[Value] = []
    return [_other_dim(ctx, item, others) if r is None else r for r, item in zip(resolved, items)], others


def _other_dim(ctx: OnnxContext, item: tuple, others: list[Value]) -> tuple:
    """A run-time size of another tensor, as ("dim", its input index on the reshape, axis)."""
    if item[0] == "fn":
        return ("fn", item[1], tuple(a if isinstance(a, int) else _other_dim(ctx, a, others) for a in item[2]))
    if item[0] != "dim" or not isinstance(item[1], Value):
        raise ctx.unsupported("a Reshape to a run-time size not found among its input's dims")
    if item[1] not in others:
        others.append(item[1])
    return ("dim", 1 + others.index(item[1]), item[2])


def _own_dim(ctx: OnnxContext, x: Value, item: int | tuple) -> int | tuple:
    """A run-time size ("dim", input index, axis: the TF frontend's symbolic sizes, or ("fn", op,
    args) of them) as an axis of the reshaped tensor `x` itself (input 0): that axis, or one ONNX's
    shape inference gave the same symbolic name (equal names are equal sizes)."""
    if isinstance(item, int):
        return item
    if item[0] == "fn":
        return ("fn", item[1], tuple(_own_dim(ctx, x, arg) for arg in item[2]))
    _, value, axis = item
    if value is x:
        return ("dim", 0, axis)
    symbol = ctx.importer.value_symbols.get(id(value), ())[axis:axis + 1]
    own = ctx.importer.value_symbols.get(id(x), ())
    if symbol and symbol[0] is not None and symbol[0] in own:
        return ("dim", 0, own.index(symbol[0]))
    raise _NotOwnDim


def shape_product(items: list) -> int | tuple:
    """The product of sizes; run-time ones as the symbolic ("fn", "mul", (a, b))."""
    static = int(np.prod([i for i in items if isinstance(i, int)], dtype=np.int64))
    result: int | tuple = static
    for item in (i for i in items if not isinstance(i, int)):
        result = item if result == 1 else ("fn", "mul", (result, item))
    return result


def shape_extreme(fn: str, a: int | tuple, b: int | tuple) -> int | tuple:
    """max / min of two sizes ("maximum" / "minimum"): equal ones are themselves."""
    if a == b or (isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0] == "dim" and a[1] is b[1]
                  and a[2] == b[2]):
        return a
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b) if fn == "maximum" else min(a, b)
    return ("fn", fn, (a, b))


@register_onnx_op("Shape")
def import_shape(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    symbols = ctx.importer.value_symbols.get(id(x), ())
    known = [ctx.importer.symbol_sizes.get(symbols[i]) if i < len(symbols) and symbols[i] else None
             for i in range(x.rank)]
    items = [d if d is not None else known[i] if known[i] is not None else ("dim", x, i)
             for i, d in enumerate(x.spec.shape)]
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
    # the permuted input spec: files often declare no shape for inner tensors (a Loop's outputs)
    spec = TensorSpec(tuple(x.spec.shape[d] for d in dims), x.spec.dtype)
    return [ctx.add("tf_transpose", [x], {"dims": dims}, specs=[spec]).outputs[0]]


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
    if all(isinstance(v, Filled) for v in ctx.inputs) and len({v.value for v in ctx.inputs}) == 1:
        axis = int(ctx.attr("axis"))
        sizes = [v.shape.items[axis] for v in ctx.inputs]
        if all(isinstance(n, int) for n in sizes):
            items = list(ctx.inputs[0].shape.items)
            items[axis] = sum(sizes)
            return [Filled(ctx.inputs[0].value, ShapeVec(items))]
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
    sizes = [v.spec.shape[axis] for v in values]
    shape = list(values[0].spec.shape)
    shape[axis] = sum(sizes) if all(isinstance(n, int) for n in sizes) else None
    # the computed spec, for files that declare none (the outputs of a Loop); a declared one wins
    return [ctx.add("concat", values, {"axis": axis}, specs=[TensorSpec(tuple(shape), values[0].spec.dtype)]).outputs[0]]


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
    if isinstance(ctx.inputs[0], ShapeVec) and len(ctx.inputs[0].items) == 1:
        return [ShapeVec(ctx.inputs[0].items, scalar=True)]  # a 1-item shape -> a 0-d size (a step count)
    if isinstance(ctx.inputs[0], np.ndarray):
        axes = _axes(ctx, ctx.inputs[0].ndim)
        return [np.squeeze(ctx.inputs[0], axis=None if axes is None else tuple(axes))]
    x = ctx.value(0)
    axes = _axes(ctx, x.rank)
    inner = x.producer
    if axes is not None and inner is not None and inner.op == "tf_unsqueeze" and [inner.attrs["axis"]] == axes:
        return [inner.inputs[0]]  # undoes an axis an importer added (a recurrent op's direction axis)
    if axes is None:
        axes = [i for i, d in enumerate(x.spec.shape) if d == 1]
        if len(axes) != sum(d in (1, None) for d in x.spec.shape):
            raise ctx.unsupported("Squeeze without axes on an input with dynamic dims")
    return [ctx.add("tf_squeeze", [x], {"dims": tuple(sorted(axes))}).outputs[0]]


@register_onnx_op("Unsqueeze")
def import_unsqueeze(ctx: OnnxContext) -> list[OnnxVal]:
    if isinstance(ctx.inputs[0], Filled):
        items = list(ctx.inputs[0].shape.items)
        for axis in sorted(_axes(ctx, len(items) + len(ctx.attr("axes") or ctx.const(1)))):
            items.insert(axis, 1)
        return [Filled(ctx.inputs[0].value, ShapeVec(items))]
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
    if isinstance(ctx.inputs[0], ShapeVec):  # part of a run-time shape
        start, end = int(ctx.const(1)[0]), int(ctx.const(2)[0])
        step = 1 if ctx.const(4) is None else int(ctx.const(4)[0])
        return [ShapeVec(ctx.inputs[0].items[start:min(end, 2**31 - 1):step])]
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
    ops = Operands(ctx)
    operands = [ops.operand(data), ops.operand(indices)]
    return [ops.add("tf_gather", {"operands": operands, "axis": axis % data.rank}).outputs[0]]


@register_onnx_op("Expand")
def import_expand(ctx: OnnxContext) -> list[OnnxVal]:
    value, shape = ctx.inputs[0], ctx.inputs[1]
    if isinstance(value, ShapeVec) and all(isinstance(i, int) for i in value.items):
        value = ctx.const(0)  # a static size (tf2onnx's sequence lengths of a reversal)
    if not isinstance(value, np.ndarray) or value.size != 1:
        raise ctx.unsupported("Expand of a run-time tensor or of a non-scalar constant")
    if isinstance(shape, ShapeVec):
        return [Filled(value.reshape(()).item(), shape)]
    return [np.array(np.broadcast_to(value.reshape(()), tuple(int(d) for d in ctx.const(1))))]


@register_onnx_op("Cast")
def import_cast(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.inputs[0]
    dtype = ONNX_DTYPES.get(int(ctx.attr("to")))
    if dtype is None:
        raise ctx.unsupported(f"a Cast to ONNX type {ctx.attr('to')}")
    if isinstance(x, (ShapeVec, Filled)):
        return [x]  # sizes (and fill values) are kept as Python numbers
    if isinstance(x, np.ndarray):
        return [x.astype(dtype)]
    return [ctx.add("tf_cast", [ctx.value(0)], {"dtype": dtype}).outputs[0]]


@register_onnx_op("Tile")
def import_tile(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    repeats = [int(r) for r in ctx.const(1)]
    return [ctx.add("tf_tile", [x], {"source": ("value", 0), "multiples": repeats}).outputs[0]]


@register_onnx_op("ReverseSequence")
def import_reverse_sequence(ctx: OnnxContext) -> list[OnnxVal]:
    """tf2onnx's reversal of a sequence (Keras go_backwards, the backward half of Bidirectional):
    every length must be the whole sequence, the case a flip of the time axis computes."""
    x = ctx.value(0)
    time_axis = int(ctx.attr("time_axis", 0))
    steps = x.spec.shape[time_axis]
    lengths = ctx.inputs[1]
    full = (isinstance(lengths, Filled) and lengths.value == steps) or (
        isinstance(lengths, np.ndarray) and np.all(lengths == steps))
    if steps is None or not full:
        raise ctx.unsupported("ReverseSequence with lengths other than the whole (static) sequence (padded batches)")
    return [ctx.add("tf_flip", [x], {"dims": (time_axis,)}, specs=[x.spec]).outputs[0]]

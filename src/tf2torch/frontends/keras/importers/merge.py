"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot."""

from __future__ import annotations

from tf2torch.frontends.keras.context import LayerContext
from tf2torch.frontends.keras.registry import register_importer
from tf2torch.ir import TensorSpec, Value

ELEMENTWISE_MERGES = {
    "Add": "add", "Subtract": "subtract", "Multiply": "multiply",
    "Average": "average", "Maximum": "maximum", "Minimum": "minimum",
}


def _broadcast(shapes: list[tuple]) -> tuple:
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    out = []
    for dims in zip(*padded):
        known = [d for d in dims if d not in (None, 1)]
        out.append(known[0] if known else (None if None in dims else 1))
    return tuple(out)


@register_importer(*ELEMENTWISE_MERGES)
def import_elementwise_merge(ctx: LayerContext) -> list[Value]:
    shape = _broadcast([v.spec.shape for v in ctx.inputs])
    if ctx.class_name == "Subtract" and len(ctx.inputs) != 2:
        raise ctx.unsupported("Subtract with other than two inputs")
    op = ELEMENTWISE_MERGES[ctx.class_name]
    return ctx.add(op, ctx.inputs, [TensorSpec(shape, ctx.inputs[0].spec.dtype)]).outputs


@register_importer("Concatenate")
def import_concatenate(ctx: LayerContext) -> list[Value]:
    axis = int(ctx.config.get("axis", -1)) % ctx.inputs[0].rank
    shape = list(ctx.inputs[0].spec.shape)
    sizes = [v.spec.shape[axis] for v in ctx.inputs]
    shape[axis] = None if any(s is None for s in sizes) else sum(sizes)
    return ctx.add("concat", ctx.inputs, [TensorSpec(tuple(shape))], {"axis": axis}).outputs


@register_importer("Dot")
def import_dot(ctx: LayerContext) -> list[Value]:
    a, b = ctx.inputs
    axes = ctx.config["axes"]
    axes = [axes, axes] if isinstance(axes, int) else list(axes)
    axes = [int(axes[0]) % a.rank, int(axes[1]) % b.rank]
    if a.rank != 2 and a.rank != 3 or b.rank != a.rank:
        raise ctx.unsupported("Dot on inputs other than two rank-2 or two rank-3 tensors")
    if axes[0] == 0 or axes[1] == 0:
        raise ctx.unsupported("Dot over the batch axis")
    a_rest = [d for i, d in enumerate(a.spec.shape[1:], 1) if i != axes[0]]
    b_rest = [d for i, d in enumerate(b.spec.shape[1:], 1) if i != axes[1]]
    shape = (a.spec.shape[0],) + tuple(a_rest + b_rest)
    if len(shape) == 1:
        shape = shape + (1,)
    attrs = {"axes": tuple(axes), "normalize": bool(ctx.config.get("normalize", False))}
    return ctx.add("dot", [a, b], [TensorSpec(shape)], attrs).outputs

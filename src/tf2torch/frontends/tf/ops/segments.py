"""Segment reductions: UnsortedSegmentSum/Max/Min/Prod (num_segments given) and
SegmentSum/Max/Min/Mean/Prod (sorted ids; num_segments = last id + 1), as `index_add` /
`scatter_reduce` on a tensor filled with TensorFlow's value for an empty segment."""

from __future__ import annotations

import numpy as np

from tf2torch.frontends.tf.context import OpContext
from tf2torch.frontends.tf.operands import OperandBuilder
from tf2torch.frontends.tf.ops.shapes import shape_items
from tf2torch.frontends.tf.registry import register_tf_op
from tf2torch.frontends.tf.values import TFVal

UNSORTED = {"UnsortedSegmentSum": "sum", "UnsortedSegmentMax": "amax", "UnsortedSegmentMin": "amin",
            "UnsortedSegmentProd": "prod"}
SORTED = {"SegmentSum": "sum", "SegmentMax": "amax", "SegmentMin": "amin", "SegmentMean": "mean",
          "SegmentProd": "prod", "SegmentSumV2": "sum", "SegmentMaxV2": "amax", "SegmentMinV2": "amin",
          "SegmentProdV2": "prod"}


def _empty_value(fn: str, dtype: str, unsorted: bool) -> float | int:
    """What TensorFlow puts in a segment no id points to."""
    if not unsorted and fn != "prod" or fn == "sum":
        return 0
    if fn == "prod":
        return 1
    info = np.finfo(dtype) if dtype.startswith(("float", "bfloat")) else np.iinfo(dtype)
    return (info.min if fn == "amax" else info.max).item()


@register_tf_op(*UNSORTED, *SORTED)
def import_segment(ctx: OpContext) -> list[TFVal]:
    unsorted = ctx.type in UNSORTED
    fn = (UNSORTED if unsorted else SORTED)[ctx.type]
    data = ctx.value(0)
    ops = OperandBuilder(ctx)
    ops.value(data)
    ids = ops.operand(ctx.inputs[1])
    id_rank = len(ctx.op.inputs[1].shape)
    if len(ctx.inputs) > 2:
        num = shape_items(ctx, 2)
        count = ops.sym(num[0])
    elif isinstance(ctx.inputs[1], np.ndarray):
        count = int(ctx.inputs[1].max()) + 1 if ctx.inputs[1].size else 0
    else:
        count = "last_id"  # sorted ids known at run time only
    dtype = data.spec.dtype
    empty = _empty_value(fn, dtype, unsorted)
    # an empty sorted segment is 0 for every reduction: the ids' values replace the fill
    include_self = unsorted and fn != "sum"
    attrs = {"fn": fn, "ids": ids, "count": count, "id_rank": id_rank, "empty": empty,
             "include_self": include_self, "dtype": dtype}
    return [ops.add("tf_segment", attrs).outputs[0]]

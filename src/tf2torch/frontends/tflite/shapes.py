"""Shape arithmetic TFLite keeps for a dynamic batch (Shape -> Gather / StridedSlice /
ReduceProd -> Pack / Concatenation -> Reshape), evaluated at conversion time.

Each entry of a shape vector is batch**power * factor: the batch is the only dimension
allowed to be dynamic, so a reshape target has at most one batch-dependent entry (-1).
"""

from __future__ import annotations

import numpy as np

from tf2torch.frontends.tflite.reader import TFLiteModel

Entry = tuple[int, int]  # (power of the batch size, constant factor)


class NotStatic(Exception):
    """The shape vector depends on something other than the batch size."""


def shape_entries(model: TFLiteModel, index: int, producers: dict[int, object], depth: int = 0) -> list[Entry]:
    """The entries of the 1-D (or scalar, as one entry) int tensor `index`."""
    t = model.tensors[index]
    if t.data is not None:
        return [(0, int(v)) for v in np.asarray(t.data).reshape(-1)]
    op = producers.get(index)
    if op is None or depth > 32:
        raise NotStatic(t.name)

    def arg(position: int) -> list[Entry]:
        return shape_entries(model, op.inputs[position], producers, depth + 1)

    def const(position: int) -> np.ndarray:
        data = model.tensors[op.inputs[position]].data
        if data is None:
            raise NotStatic(t.name)
        return np.asarray(data).reshape(-1)

    if op.op_type == "SHAPE":
        dims = model.tensors[op.inputs[0]].shape
        if any(d is None for d in dims[1:]):
            raise NotStatic(t.name)
        return [(1, 1) if d is None else (0, int(d)) for d in dims]
    if op.op_type == "GATHER":
        items = arg(0)
        return [items[int(i)] for i in const(1)]
    if op.op_type == "REDUCE_PROD":
        items = arg(0)
        return [(sum(p for p, _ in items), int(np.prod([c for _, c in items], dtype=np.int64)))]
    if op.op_type in ("PACK", "CONCATENATION"):
        return [e for position in range(len(op.inputs)) for e in arg(position)]
    if op.op_type == "STRIDED_SLICE":
        items, begin, end, stride = arg(0), const(1), const(2), const(3)
        o = op.options
        if o is None or o.EllipsisMask() or o.NewAxisMask() or len(begin) != 1:
            raise NotStatic(t.name)
        if o.ShrinkAxisMask() & 1:
            return [items[int(begin[0])]]
        b = None if o.BeginMask() & 1 else int(begin[0])
        e = None if o.EndMask() & 1 else int(end[0])
        return items[b:e:int(stride[0])]
    raise NotStatic(t.name)


def reshape_target(entries: list[Entry]) -> list[int] | None:
    """The reshape target with the batch-dependent entry as -1; None if not expressible."""
    dynamic = [i for i, (p, _) in enumerate(entries) if p != 0]
    if len(dynamic) > 1 or any(entries[i][0] != 1 for i in dynamic):
        return None
    return [-1 if p else c for p, c in entries]

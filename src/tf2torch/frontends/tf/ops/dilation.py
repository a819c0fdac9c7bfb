"""SpaceToBatchND -> Conv2D / DepthwiseConv2dNative (VALID, stride 1) -> BatchToSpaceND is
how TensorFlow writes a dilated convolution (Keras Conv1D / Conv2D with dilation_rate, in
tf.nn.convolution): it becomes one convolution with that dilation, padded by the
SpaceToBatchND paddings less the BatchToSpaceND crops.

SpaceToBatchND passes its input on unchanged and leaves a note for its BatchToSpaceND, which
then gives the convolution its dilation, padding and true output shape."""

from __future__ import annotations

from typing import Any

import numpy as np

from tf2torch.frontends.tf.context import OpContext, spec_of
from tf2torch.frontends.tf.registry import register_tf_op
from tf2torch.frontends.tf.values import TFVal
from tf2torch.ir import TensorSpec

CONVS = ("Conv2D", "DepthwiseConv2dNative")


def _single_consumer(op: Any) -> Any | None:
    consumers = op.outputs[0].consumers()
    return consumers[0] if len(consumers) == 1 else None


def _dilated_conv_chain(op: Any) -> tuple[Any, Any, bool] | None:
    """(conv op, BatchToSpaceND op, whether ExpandDims / Squeeze wrap the conv) or None."""
    nxt = _single_consumer(op)
    wrapped = nxt is not None and nxt.type == "ExpandDims"
    conv = _single_consumer(nxt) if wrapped else nxt
    if conv is None or conv.type not in CONVS or conv.inputs[0].op is not (nxt if wrapped else op):
        return None
    plain = all(int(v) == 1 for v in conv.get_attr("strides")) and all(int(v) == 1 for v in conv.get_attr("dilations"))
    if conv.get_attr("padding") != b"VALID" or not plain:
        return None
    after = _single_consumer(conv)
    if wrapped:
        if after is None or after.type != "Squeeze":
            return None
        after = _single_consumer(after)
    if after is None or after.type != "BatchToSpaceND":
        return None
    return conv, after, wrapped


@register_tf_op("SpaceToBatchND")
def import_space_to_batch(ctx: OpContext) -> list[TFVal]:
    chain = _dilated_conv_chain(ctx.op)
    if chain is None:
        raise ctx.unsupported("SpaceToBatchND other than around a convolution (a dilated convolution)")
    _, batch_to_space, wrapped = chain
    block = [int(b) for b in np.asarray(ctx.const(1)).reshape(-1)]
    pads = [tuple(int(p) for p in pair) for pair in np.asarray(ctx.const(2)).reshape(-1, 2)]
    ctx.importer.pending_dilations[batch_to_space.name] = {"block": block, "pads": pads, "wrapped": wrapped}
    return [ctx.value(0)]


@register_tf_op("BatchToSpaceND")
def import_batch_to_space(ctx: OpContext) -> list[TFVal]:
    note = ctx.importer.pending_dilations.pop(ctx.op.name, None)
    if note is None:
        raise ctx.unsupported("BatchToSpaceND other than after a SpaceToBatchND convolution")
    y = ctx.value(0)
    squeeze = y.producer if note["wrapped"] else None
    conv = squeeze.inputs[0].producer if squeeze is not None else y.producer
    if conv is None or conv.op != "conv":
        raise ctx.unsupported("BatchToSpaceND after this op")
    block = list(note["block"])
    crops = [tuple(int(c) for c in pair) for pair in np.asarray(ctx.const(2)).reshape(-1, 2)]
    pads = [(p[0] - c[0], p[1] - c[1]) for p, c in zip(note["pads"], crops)]
    if any(p < 0 for pair in pads for p in pair):
        raise ctx.unsupported("a dilated convolution cropped beyond its padding")
    if note["wrapped"]:  # Conv1D: the conv runs on (batch, 1, steps, channels)
        block, pads = [1] + block, [(0, 0)] + pads
        expanded = conv.inputs[0]
        if expanded.producer is not None and expanded.producer.op == "tf_unsqueeze":
            source = expanded.producer.inputs[0].spec
            expanded.spec = TensorSpec(source.shape[:1] + (1,) + source.shape[1:], source.dtype)
    conv.attrs["dilation"] = tuple(block)
    conv.attrs["pads"] = pads
    out = spec_of(ctx.op.outputs[0])
    if squeeze is not None:
        conv.outputs[0].spec = TensorSpec((out.shape[0], 1) + tuple(out.shape[1:]), out.dtype)
    y.spec = out
    return [y]

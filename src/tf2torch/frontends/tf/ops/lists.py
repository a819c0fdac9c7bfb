"""TensorLists (what `tf.TensorArray` and a Keras RNN's time loop in a SavedModel are made
of), as plain Python values in `forward`: a list made from a tensor is that tensor (indexing
its first axis reads an element), a reserved list is a Python list of `num_elements` slots
written functionally, and stacking is `torch.stack`."""

from __future__ import annotations

import numpy as np

from tf2torch.frontends.tf.context import OpContext
from tf2torch.frontends.tf.registry import register_tf_op
from tf2torch.frontends.tf.values import TFVal
from tf2torch.ir import TensorSpec

LIST = TensorSpec((), "variant")  # no tensor shape: the generated code holds a tensor or a list


@register_tf_op("TensorListFromTensor")
def import_from_tensor(ctx: OpContext) -> list[TFVal]:
    return [ctx.value(0)]  # the tensor itself: element i is tensor[i]


@register_tf_op("TensorListReserve")
def import_reserve(ctx: OpContext) -> list[TFVal]:
    count = ctx.inputs[1]
    if isinstance(count, np.ndarray):
        return [ctx.add("tf_list_reserve", [], [LIST], attrs={"count": int(count)}).outputs[0]]
    return [ctx.add("tf_list_reserve", [ctx.value(1)], [LIST], attrs={"count": None}).outputs[0]]


def _index(ctx: OpContext) -> tuple[list, int | None]:
    """The element index (input 1): an int when constant, else a run-time input."""
    index = ctx.inputs[1]
    if isinstance(index, np.ndarray):
        return [], int(index)
    return [ctx.value(1)], None


@register_tf_op("TensorListGetItem")
def import_get_item(ctx: OpContext) -> list[TFVal]:
    index, constant = _index(ctx)
    return [ctx.add("tf_list_get", [ctx.value(0), *index], attrs={"index": constant}).outputs[0]]


@register_tf_op("TensorListSetItem")
def import_set_item(ctx: OpContext) -> list[TFVal]:
    index, constant = _index(ctx)
    node = ctx.add("tf_list_set", [ctx.value(0), ctx.value(2), *index], [LIST], attrs={"index": constant})
    return [node.outputs[0]]


@register_tf_op("TensorListStack")
def import_stack(ctx: OpContext) -> list[TFVal]:
    return [ctx.add("tf_list_stack", [ctx.value(0)]).outputs[0]]


@register_tf_op("TensorListLength")
def import_length(ctx: OpContext) -> list[TFVal]:
    return [ctx.add("tf_list_length", [ctx.value(0)]).outputs[0]]

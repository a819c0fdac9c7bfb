"""Constants, identities, variable reads and function calls (inlined)."""

from __future__ import annotations

import numpy as np

from tf2torch.frontends.tf.context import OpContext
from tf2torch.frontends.tf.registry import register_tf_op
from tf2torch.frontends.tf.values import TFVal


@register_tf_op("Const")
def import_const(ctx: OpContext) -> list[TFVal]:
    from tensorflow.python.framework import tensor_util

    return [np.asarray(tensor_util.MakeNdarray(ctx.op.node_def.attr["value"].tensor))]


@register_tf_op("Identity", "StopGradient", "PreventGradient", "Snapshot", "EnsureShape", "CheckNumerics")
def import_identity(ctx: OpContext) -> list[TFVal]:
    return [ctx.inputs[0]]


@register_tf_op("IdentityN")
def import_identity_n(ctx: OpContext) -> list[TFVal]:
    return list(ctx.inputs)


@register_tf_op("ReadVariableOp")
def import_read_variable(ctx: OpContext) -> list[TFVal]:
    # Reads of captured variables are rewritten to bound placeholders before import;
    # a read reaching here reads a resource that is already a VarRef (or a constant).
    return [ctx.inputs[0]]


@register_tf_op("PartitionedCall", "StatefulPartitionedCall")
def import_call(ctx: OpContext) -> list[TFVal]:
    return ctx.importer.import_function(ctx.op.get_attr("f").name, list(ctx.inputs))

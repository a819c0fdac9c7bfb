"""Random ops (`keras.random.*`, `tf.random.*`): the converted module draws with torch's
generator. Keras' seed state cannot carry over (TensorFlow's Philox streams are not
torch's), so an output that depends on a draw matches Keras in distribution, not value;
verification compares such outputs on shape only and says so."""

from __future__ import annotations

from tf2torch.frontends.tf.context import OpContext
from tf2torch.frontends.tf.operands import OperandBuilder
from tf2torch.frontends.tf.ops.shapes import shape_items, spec_from_items
from tf2torch.frontends.tf.registry import register_tf_op
from tf2torch.frontends.tf.values import TFVal

# TF op -> distribution. The stateless ops (keras.random with a SeedGenerator) are rewritten
# into these before import, without their seed inputs (see importer._random_ops_unseeded).
DISTRIBUTIONS = {"RandomStandardNormal": "normal", "RandomUniform": "uniform", "TruncatedNormal": "truncated_normal"}


@register_tf_op(*DISTRIBUTIONS)
def import_random(ctx: OpContext) -> list[TFVal]:
    items = shape_items(ctx, 0)
    dtype = ctx.attr("dtype").name
    ops = OperandBuilder(ctx)
    attrs = {"distribution": DISTRIBUTIONS[ctx.type], "shape": ops.syms(items), "dtype": dtype}
    return [ops.add("tf_random", attrs, spec_from_items(ctx, items, dtype)).outputs[0]]

"""`data_format="channels_first"` for layers whose importers compute channels-last.

The wrapped importer sees its inputs through a `layout_view` to channels-last and its
rank >= 3 outputs go back through the inverse view. A layout_view moves no data: the layout
pass gives its output the perm under which the torch tensor stays the same tensor
(passes/layout.py), so a channels-first Keras model has NCHW tensors in torch, as Keras
has, and no runtime permute at all.

    x[N,C,H,W] -> layout_view(0,2,3,1) -> conv (channels-last IR) -> layout_view(0,3,1,2) -> y[N,C,H,W]
"""

from __future__ import annotations

import dataclasses
import functools

from tf2torch.frontends.keras.context import LayerContext
from tf2torch.frontends.keras.registry import ImporterFn
from tf2torch.ir import TensorSpec, Value


def to_channels_last(rank: int) -> tuple[int, ...]:
    return (0,) + tuple(range(2, rank)) + (1,)


def to_channels_first(rank: int) -> tuple[int, ...]:
    return (0, rank - 1) + tuple(range(1, rank - 1))


def layout_view(ctx: LayerContext, x: Value, dims: tuple[int, ...]) -> Value:
    shape = tuple(x.spec.shape[d] for d in dims)
    return ctx.add("layout_view", [x], [TensorSpec(shape, x.spec.dtype)], {"dims": dims}).outputs[0]


def accepts_channels_first(importer: ImporterFn) -> ImporterFn:
    """Let a channels-last importer take `data_format="channels_first"` too."""

    @functools.wraps(importer)
    def import_either_format(ctx: LayerContext) -> list[Value]:
        if (ctx.config.get("data_format") or "channels_last") != "channels_first":
            return importer(ctx)
        outputs = import_as_channels_last(ctx, importer, {"data_format": "channels_last"})
        _refuse_tf_bias_guess(ctx, outputs)
        return outputs

    return import_either_format


def import_as_channels_last(ctx: LayerContext, importer: ImporterFn, config: dict) -> list[Value]:
    """Run `importer` on channels-last views of the inputs, with `config` replacing entries of
    the layer's config; its rank >= 3 outputs are viewed back as channels-first."""
    if any(m is not None for m in ctx.input_masks):
        raise ctx.unsupported("a channels-first layer with a mask")
    inputs = [layout_view(ctx, x, to_channels_last(x.rank)) if x.rank >= 3 else x for x in ctx.inputs]
    entry = dataclasses.replace(ctx.entry, config={**ctx.config, **config})
    outputs = importer(dataclasses.replace(ctx, entry=entry, inputs=inputs))
    return [layout_view(ctx, y, to_channels_first(y.rank)) if y.rank >= 3 else y for y in outputs]


def _refuse_tf_bias_guess(ctx: LayerContext, outputs: list[Value]) -> None:
    """Keras 3 on TensorFlow adds a bias with tf.nn.bias_add and guesses its data format from
    the shapes (keras/src/backend/tensorflow/numpy.py `add`): when a channels-first output's
    last axis has as many entries as it has channels, the bias goes along the last axis.
    The file does not say which backend computed the model, so no answer is safe."""
    if ctx.keras_major != 3 or not ctx.config.get("use_bias", False):
        return
    for y in outputs:
        channels, last = y.spec.shape[1], y.spec.shape[-1]
        if y.rank >= 3 and channels is not None and channels > 1 and last == channels:
            raise ctx.unsupported(
                f"a channels_first output whose last axis has as many entries ({last}) as it has channels "
                "(Keras 3 on TensorFlow adds the bias along the last axis there, other backends along the "
                "channels)"
            )

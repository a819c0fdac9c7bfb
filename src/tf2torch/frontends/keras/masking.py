"""Keras masks in the importer: which steps of a sequence are real.

Keras attaches a boolean mask to a tensor (`Embedding(mask_zero=True)`, `Masking`) and every
mask-aware layer downstream reads it. The model walker tracks the same thing per IR Value:

- `ctx.input_masks[i]` is the Keras mask of `ctx.inputs[i]`: a bool Value, Keras layout,
  shape `(batch, steps)` (Masking on rank-4+ inputs: every axis but the last), or None.
- `call_mask(ctx)` is the mask a layer's `call(..., mask=)` receives: an explicit `mask=`
  tensor argument if the call has one, else the first input's mask (what Keras does).
- `ctx.set_output_masks([...])`: an importer that computes its outputs' masks (RNNs, Masking,
  Embedding) sets them, one per output (None: unmasked). Importers that do not call it get
  `default_output_masks`, Keras' rules:
    * layers that support masking without changing it (`MASK_PASSTHROUGH`: Dense, activations,
      dropouts, normalizations, attention, ...) give every output the first input's mask;
    * merge layers combine their inputs' masks (Keras 3: `or`, None if any input is unmasked;
      Keras 2: `and` of the masked inputs); Concatenate along the feature axis likewise;
    * every other layer drops the mask (Keras warns; e.g. Conv1D, Flatten, Reshape, ops).
- Helpers that add the IR nodes: `tokens_mask(ctx, ids)`, `combine_masks(ctx, masks, mode)`,
  `mask_spec(x)`. Consumers of a mask take it as an ordinary extra input of their node (the
  layout pass keeps every bool value in the Keras layout, also as an input or output of a
  CHANNELS_FIRST op such as conv_lstm).

Masks are values of the graph like any other: generated code computes them once
(`mask = x != 0`) and passes them to the layers that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tf2torch.ir import TensorSpec, Value

if TYPE_CHECKING:
    from tf2torch.frontends.keras.context import LayerContext

# Layers with supports_masking whose compute_mask returns the first input's mask
# (keras/src/layers and tf_keras/src/layers: `supports_masking = True`, no compute_mask).
MASK_PASSTHROUGH = frozenset({
    "InputLayer", "Activation", "ELU", "LeakyReLU", "PReLU", "ReLU", "Softmax", "ThresholdedReLU",
    "Dense", "Identity", "BatchNormalization", "GroupNormalization", "LayerNormalization",
    "UnitNormalization", "Normalization", "ActivityRegularization", "AlphaDropout", "Dropout",
    "GaussianDropout", "GaussianNoise", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "MultiHeadAttention", "GroupQueryAttention", "GroupedQueryAttention", "Attention",
    "AdditiveAttention",
})
# Keras 3 only (tf_keras' versions of these do not support masking).
MASK_PASSTHROUGH_K3 = frozenset({"Rescaling"})
MERGE_CLASSES = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"})


def mask_spec(x: Value) -> TensorSpec:
    """The spec of a mask over `x`: every axis but the last (features)."""
    return TensorSpec(x.spec.shape[:-1], "bool")


def call_mask(ctx: LayerContext) -> Value | None:
    """The `mask` a layer's call receives: the explicit argument, else the first input's."""
    explicit = ctx.tensor_kwargs.get("mask")
    if explicit:
        return explicit[0]
    return ctx.input_masks[0] if ctx.input_masks else None


def tokens_mask(ctx: LayerContext, ids: Value) -> Value:
    """Embedding(mask_zero=True): `ids != 0`."""
    return ctx.add("tokens_mask", [ids], [TensorSpec(ids.spec.shape, "bool")]).outputs[0]


def combine_masks(ctx: LayerContext, masks: list[Value], mode: str) -> Value:
    """Elementwise `and` / `or` of several masks (one mask is returned as it is)."""
    if len(masks) == 1:
        return masks[0]
    return ctx.add("mask_combine", masks, [masks[0].spec], {"mode": mode}).outputs[0]


def default_output_masks(ctx: LayerContext, outputs: list[Value]) -> list[Value | None]:
    masks = ctx.input_masks
    if not masks or all(m is None for m in masks):
        return [None] * len(outputs)
    name = ctx.class_name
    if name in MASK_PASSTHROUGH or (ctx.keras_major >= 3 and name in MASK_PASSTHROUGH_K3):
        return [masks[0]] * len(outputs)
    if name in MERGE_CLASSES or name == "Concatenate":
        return [_merge_mask(ctx)] * len(outputs)
    return [None] * len(outputs)


def _merge_mask(ctx: LayerContext) -> Value | None:
    masks = ctx.input_masks
    if ctx.class_name == "Concatenate":
        rank = ctx.inputs[0].rank
        if int(ctx.config.get("axis", -1)) % rank != rank - 1:
            raise ctx.unsupported("Concatenate of masked tensors along an axis other than the last")
    present = [m for m in masks if m is not None]
    if ctx.keras_major >= 3:
        # keras/src/layers/merging: `logical_or` of the masks, None if any input is unmasked
        # (Concatenate: unmasked inputs count as all-True, so the `or` is all-True: no mask).
        if len(present) != len(masks):
            return None
        return combine_masks(ctx, present, "or")
    # tf_keras: `all` over the masks of the masked inputs.
    return combine_masks(ctx, present, "and")


def record_output_masks(ctx: LayerContext, outputs: list[Value], table: dict[int, Value | None]) -> None:
    """Store the masks of a call's outputs in the walker's table (called by the walker)."""
    masks = ctx.output_masks if ctx.output_masks is not None else default_output_masks(ctx, outputs)
    if len(masks) != len(outputs):
        raise ValueError(f"layer {ctx.name!r}: {len(masks)} output masks for {len(outputs)} outputs")
    for value, mask in zip(outputs, masks):
        if mask is None and any(value is v for v in ctx.inputs):
            continue  # a pass-through returning its input keeps that tensor's mask
        table[id(value)] = mask


def softmax_mask_attrs(ctx: LayerContext) -> dict:
    """How Softmax(x, mask) masks. Keras 3: masked logits -> -1e9, masked outputs -> 0.
    Keras 2: adds (1 - mask) * -1e9 (or, with robust_masking, sets them to -1e9)."""
    if ctx.keras_major >= 3:
        return {"style": "keras3"}
    return {"style": "where" if ctx.config.get("robust_masking") else "add"}

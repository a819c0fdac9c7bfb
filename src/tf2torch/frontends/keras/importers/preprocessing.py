"""Importers for preprocessing layers: Normalization (Rescaling lives in core.py)."""

from __future__ import annotations

import numpy as np

from tf2torch.frontends.keras.context import LayerContext
from tf2torch.frontends.keras.registry import register_importer
from tf2torch.ir import TensorSpec, Value

KERAS_EPSILON = 1e-7  # keras.backend.epsilon(): the floor of the standard deviation


def _kept_axes(ctx: LayerContext, rank: int) -> tuple[int, ...]:
    axis = ctx.config.get("axis", -1)
    if axis is None:
        return ()
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    kept = tuple(sorted(int(a) % rank for a in axes))
    if 0 in kept:
        raise ctx.unsupported("Normalization that keeps the batch axis")
    return kept


def _broadcast(ctx: LayerContext, array: np.ndarray, shape: tuple[int, ...], kept: tuple[int, ...]) -> np.ndarray:
    """`array` (scalar, or aligned right-to-left with the kept axes, as Keras does) as an
    array of the input's rank, with 1 on the batch axis and on every reduced axis."""
    array = np.asarray(array, dtype=np.float32)
    full = [1] * len(shape)
    if array.ndim:
        if array.ndim > len(kept):
            raise ctx.unsupported(f"a Normalization mean/variance of shape {array.shape} for axis {kept}")
        for i in range(1, array.ndim + 1):
            full[kept[-i]] = array.shape[-i]
    array = array.reshape(full)
    target = [1] + [int(shape[d]) if d in kept else 1 for d in range(1, len(shape))]
    return np.ascontiguousarray(np.broadcast_to(array, target), dtype=np.float32)


@register_importer("Normalization")
def import_normalization(ctx: LayerContext) -> list[Value]:
    """(x - mean) / max(sqrt(variance), epsilon), or `mean + x * std` with invert=True.

    mean/variance come from the config (passed to the constructor) or, for an adapted
    layer, from its weights (mean, variance, count)."""
    x = ctx.inputs[0]
    cfg = ctx.config
    kept = _kept_axes(ctx, x.rank)
    for d in kept:
        if x.spec.shape[d] is None:
            raise ctx.unsupported(f"Normalization over axis {d} of unknown size")
    if cfg.get("mean") is not None and cfg.get("variance") is not None:
        mean, variance = cfg["mean"], cfg["variance"]
    else:
        weights = ctx.weights()
        if len(weights) not in (2, 3):
            raise ctx.unsupported("a Normalization with neither mean/variance in its config nor adapted weights")
        mean, variance = weights[0], weights[1]
    mean = _broadcast(ctx, mean, x.spec.shape, kept)
    variance = _broadcast(ctx, variance, x.spec.shape, kept)
    params = {"mean": ctx.param(mean, "source", trainable=False),
              "variance": ctx.param(variance, "source", trainable=False)}
    out = TensorSpec(x.spec.shape, "float32")
    attrs = {"invert": bool(cfg.get("invert", False)), "epsilon": KERAS_EPSILON}
    return ctx.add("normalize", [x], [out], attrs, params).outputs

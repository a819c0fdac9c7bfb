"""Importers for preprocessing layers: Normalization, Resizing, CenterCrop, AutoContrast,
Pipeline (Rescaling lives in core.py)."""

from __future__ import annotations

import numpy as np

from tf2torch.frontends.keras.context import LayerContext, channels_last
from tf2torch.frontends.keras.data_format import accepts_channels_first
from tf2torch.frontends.keras.registry import register_importer
from tf2torch.ir import TensorSpec, Value

KERAS_EPSILON = 1e-7
# tf.image.resize methods (Keras 3 offers the first six, tf_keras all of them).
RESIZE_METHODS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian", "mitchellcubic")  # keras.backend.epsilon(): the floor of the standard deviation


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


def _image_size(ctx: LayerContext) -> tuple[int, int]:
    x = ctx.inputs[0]
    if x.rank != 4:
        raise ctx.unsupported(f"a rank-{x.rank} input (a batch of images, rank 4, is expected)")
    height, width = x.spec.shape[1:3]
    if height is None or width is None:
        raise ctx.unsupported("an image input of unknown height or width (the resize weights are computed for a fixed size)")
    if x.spec.dtype not in ("float32", "float16", "float64"):
        raise ctx.unsupported(f"a {x.spec.dtype} image (Keras rounds integer images back)")
    return int(height), int(width)


def _f32_int(value: float) -> int:
    """TF's int32(float32(value)): truncation of the float32 rounding."""
    return int(np.float32(value))


def _aspect_crop(height: int, width: int, target: tuple[int, int]) -> tuple[int, int, int, int]:
    """The centered window with the target's aspect ratio, as Keras' crop_to_aspect_ratio
    (and smart_resize) compute it: (top, left, height, width)."""
    crop_h = max(min(height, _f32_int(np.float32(width * target[0]) / np.float32(target[1]))), 1)
    crop_w = max(min(width, _f32_int(np.float32(height * target[1]) / np.float32(target[0]))), 1)
    return (_f32_int(np.float32(height - crop_h) / 2), _f32_int(np.float32(width - crop_w) / 2), crop_h, crop_w)


def _aspect_pad(height: int, width: int, target: tuple[int, int]) -> tuple[int, int]:
    """Keras 3's pad_to_aspect_ratio: rows added above and below, columns left and right
    (the same number on both sides)."""
    pad_h = max(height, _f32_int(np.float32(width * target[0]) / np.float32(target[1])))
    pad_w = max(width, _f32_int(np.float32(height * target[1]) / np.float32(target[0])))
    return _f32_int(np.float32(pad_h - height) / 2), _f32_int(np.float32(pad_w - width) / 2)


def _resize_node(ctx: LayerContext, size: tuple[int, int], method: str, antialias: bool,
                 crop: tuple[int, int, int, int] | None = None,
                 pad: tuple[int, int, float] | None = None) -> list[Value]:
    """tf.image.resize to `size`, after an optional crop (top, left, height, width) or an
    optional constant pad (rows on each side, columns on each side, fill value)."""
    x = ctx.inputs[0]
    height, width = _image_size(ctx)
    if crop is not None:
        height, width = crop[2], crop[3]
    if pad is not None:
        height, width = height + 2 * pad[0], width + 2 * pad[1]
    attrs = {"size": size, "in_size": (height, width), "method": method, "antialias": antialias,
             "crop": crop, "pad": pad}
    out = TensorSpec((x.spec.shape[0], size[0], size[1], x.spec.shape[3]), "float32")
    return ctx.add("resize", [x], [out], attrs).outputs


@register_importer("Resizing")
@accepts_channels_first
def import_resizing(ctx: LayerContext) -> list[Value]:
    channels_last(ctx)
    cfg = ctx.config
    size = (int(cfg["height"]), int(cfg["width"]))
    if cfg.get("fill_mode", "constant") != "constant":
        raise ctx.unsupported(f"fill_mode={cfg['fill_mode']!r}")
    return import_resizing_to(
        ctx, size, cfg.get("interpolation", "bilinear"), antialias=bool(cfg.get("antialias", False)),
        crop_to_aspect_ratio=bool(cfg.get("crop_to_aspect_ratio")),
        pad_to_aspect_ratio=bool(cfg.get("pad_to_aspect_ratio")), fill_value=float(cfg.get("fill_value", 0.0)),
    )


def import_resizing_to(ctx: LayerContext, size: tuple[int, int], method: str, *, antialias: bool = False,
                       crop_to_aspect_ratio: bool = False, pad_to_aspect_ratio: bool = False,
                       fill_value: float = 0.0) -> list[Value]:
    """keras.layers.Resizing's computation (also RandomCrop's and CenterCrop's in inference)."""
    if method not in RESIZE_METHODS:
        raise ctx.unsupported(f"interpolation={method!r}")
    height, width = _image_size(ctx)
    crop = pad = None
    if crop_to_aspect_ratio:
        crop = _aspect_crop(height, width, size)
    elif pad_to_aspect_ratio:
        rows, cols = _aspect_pad(height, width, size)
        pad = (rows, cols, fill_value) if rows or cols else None
    return _resize_node(ctx, size, method, antialias, crop, pad)


@register_importer("CenterCrop")
@accepts_channels_first
def import_center_crop(ctx: LayerContext) -> list[Value]:
    """The centered window of the target size; an image smaller than it (on either axis) is
    cropped to the target's aspect ratio and resized bilinearly, as Keras does."""
    channels_last(ctx)
    x = ctx.inputs[0]
    size = (int(ctx.config["height"]), int(ctx.config["width"]))
    height, width = _image_size(ctx)
    if height < size[0] or width < size[1]:
        return _resize_node(ctx, size, "bilinear", False, crop=_aspect_crop(height, width, size))
    top, left = (height - size[0]) // 2, (width - size[1]) // 2
    crops = [(top, height - size[0] - top), (left, width - size[1] - left)]
    out = TensorSpec((x.spec.shape[0], size[0], size[1], x.spec.shape[3]), "float32")
    return ctx.add("crop", [x], [out], {"crops": crops}).outputs


@register_importer("AutoContrast")
@accepts_channels_first
def import_auto_contrast(ctx: LayerContext) -> list[Value]:
    channels_last(ctx)
    x = ctx.inputs[0]
    if x.rank != 4:
        raise ctx.unsupported(f"a rank-{x.rank} input (a batch of images, rank 4, is expected)")
    low, high = (float(v) for v in ctx.config.get("value_range", (0, 255)))
    return ctx.add("auto_contrast", [x], [TensorSpec(x.spec.shape, "float32")], {"value_range": (low, high)}).outputs


@register_importer("Pipeline")
def import_pipeline(ctx: LayerContext) -> list[Value]:
    """Keras 3 Pipeline: its layers applied in order (in inference, as a model applies them)."""
    from tf2torch.frontends.keras.layer_calls import LayerCall, LayerEntry
    from tf2torch.frontends.keras.registry import LAYER_IMPORTERS

    values = list(ctx.inputs)
    for i, inner in enumerate(ctx.config.get("layers", [])):
        class_name = inner.get("class_name")
        if class_name not in LAYER_IMPORTERS or class_name == "Pipeline":
            raise ctx.unsupported(f"a Pipeline holding {class_name}")
        config = dict(inner.get("config", {}))
        name = f"{ctx.name}/{config.get('name', i)}"
        entry = LayerEntry(class_name, name, config, [LayerCall([])], inner)
        inner_ctx = LayerContext(
            graph=ctx.graph, entry=entry, call=LayerCall([]), call_index=ctx.call_index, inputs=values,
            tensor_kwargs={}, keras_major=ctx.keras_major, name=name, file=ctx.file, _weights=[],
            scope=ctx.scope,
        )
        values = LAYER_IMPORTERS[class_name](inner_ctx)
    return values

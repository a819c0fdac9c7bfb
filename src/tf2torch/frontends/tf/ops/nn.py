"""Convolutions, pooling, batch norm, activations, softmax, resize: NHWC ops onto the IR's
layout-aware ops (conv, pool, batch_norm...) so the layout pass makes them NCHW."""

from __future__ import annotations

import numpy as np

from tf2torch.frontends.keras.importers.shapes import same_padding
from tf2torch.frontends.tf.context import OpContext
from tf2torch.frontends.tf.registry import register_tf_op
from tf2torch.frontends.tf.values import ParamExpr, TFVal, VarRef, is_param
from tf2torch.ir import Param, Value

KERNEL_LAYOUTS = {1: "WIO", 2: "HWIO", 3: "DHWIO"}


def _weight(ctx: OpContext, index: int) -> tuple[np.ndarray, VarRef | None]:
    w = ctx.inputs[index]
    if isinstance(w, VarRef):
        return np.asarray(w.array), w
    if isinstance(w, np.ndarray):
        return w, None
    raise ctx.unsupported(f"a computed (non-variable) weight as input {index}")


def _weight_param(ctx: OpContext, array: np.ndarray, var: VarRef | None, layout: str) -> Param:
    trainable = var.trainable if var is not None else ctx.importer.const_weights_trainable
    return Param(np.ascontiguousarray(array, dtype=np.float32), layout, trainable)


def _layer_name(ctx: OpContext, var: VarRef | None) -> str:
    if var is None and len(ctx.op.inputs) > 1 and ctx.op.inputs[1].op.type == "Const":
        name = ctx.importer.clean_name(ctx.op.inputs[1].op.name)  # a frozen graph's weight constant
        if "/" in name:
            return ctx.importer.claim_name(name.rsplit("/", 1)[0], name)
    return ctx.layer_name(var)


def _spatial(ctx: OpContext, values: list[int], rank: int, what: str) -> tuple[int, ...]:
    fmt = ctx.attr("data_format", "NHWC")
    if fmt not in ("NHWC", "NDHWC", "NWC"):
        raise ctx.unsupported(f"data_format={fmt!r}")
    if values[0] != 1 or values[-1] != 1:
        raise ctx.unsupported(f"a {what} over the batch or channel axis")
    return tuple(int(v) for v in values[1:1 + rank])


def _pads(ctx: OpContext, sizes, kernel, stride, dilation) -> list[tuple[int, int]] | str:
    padding = ctx.attr("padding")
    if padding == "VALID":
        return [(0, 0)] * len(kernel)
    if padding == "EXPLICIT":
        flat = list(ctx.attr("explicit_paddings"))
        pairs = [(flat[2 * i], flat[2 * i + 1]) for i in range(len(flat) // 2)]
        return pairs[1:-1]
    pads = []
    for size, k, s, d in zip(sizes, kernel, stride, dilation):
        if size is None:
            if s != 1:
                return "same_dynamic"
            total = (k - 1) * d
            pads.append((total // 2, total - total // 2))
        else:
            pads.append(same_padding(size, k, s, d))
    return pads


def _masked_kernel(ctx: OpContext) -> tuple[np.ndarray, VarRef, np.ndarray] | None:
    """`kernel * mask` with a constant mask (a masked convolution writing its kernel in call(),
    as PixelCNN's): the variable, the mask broadcast to the kernel's shape."""
    w = ctx.inputs[1]
    if not (isinstance(w, ParamExpr) and w.fn == "mul" and len(w.args) == 2):
        return None
    var = next((a for a in w.args if isinstance(a, VarRef)), None)
    mask = next((a for a in w.args if isinstance(a, np.ndarray)), None)
    if var is None or mask is None:
        return None
    kernel = np.asarray(var.array)
    return kernel, var, np.broadcast_to(mask, kernel.shape).astype(np.float32)


@register_tf_op("Conv2D", "Conv3D", "DepthwiseConv2dNative")
def import_conv(ctx: OpContext) -> list[TFVal]:
    x = ctx.value(0)
    masked = _masked_kernel(ctx) if ctx.type != "DepthwiseConv2dNative" else None
    kernel, var = masked[:2] if masked is not None else _weight(ctx, 1)
    rank = x.rank - 2
    stride = _spatial(ctx, ctx.attr("strides"), rank, "stride")
    dilation = _spatial(ctx, ctx.attr("dilations") or [1] * (rank + 2), rank, "dilation")
    kernel_size = tuple(int(k) for k in kernel.shape[:rank])
    in_channels = int(kernel.shape[-2])
    groups = 1
    if ctx.type == "DepthwiseConv2dNative":
        multiplier = int(kernel.shape[-1])
        groups = in_channels
        kernel = kernel.reshape(kernel.shape[:rank] + (1, in_channels * multiplier))
    elif x.spec.shape[-1] is not None and x.spec.shape[-1] != in_channels:
        groups = int(x.spec.shape[-1]) // in_channels  # grouped convolution
        in_channels = int(x.spec.shape[-1])
    attrs = {
        "rank": rank, "in_channels": in_channels, "out_channels": int(kernel.shape[-1]),
        "kernel_size": kernel_size, "stride": stride, "dilation": dilation, "groups": groups,
        "pads": _pads(ctx, x.spec.shape[1:-1], kernel_size, stride, dilation), "module_suffix": "",
    }
    params = {"kernel": _weight_param(ctx, kernel, var, KERNEL_LAYOUTS[rank])}
    if masked is not None:
        params["kernel_mask"] = Param(np.ascontiguousarray(masked[2]), KERNEL_LAYOUTS[rank], False)
    return [ctx.add("conv", [x], attrs=attrs, params=params, name=_layer_name(ctx, var)).outputs[0]]


@register_tf_op("Conv2DBackpropInput", "Conv3DBackpropInputV2")
def import_conv_transpose(ctx: OpContext) -> list[TFVal]:
    x = ctx.value(2)
    kernel, var = _weight(ctx, 1)
    rank = x.rank - 2
    out_shape = ctx.out_spec(0).shape
    stride = _spatial(ctx, ctx.attr("strides"), rank, "stride")
    dilation = _spatial(ctx, ctx.attr("dilations") or [1] * (rank + 2), rank, "dilation")
    if any(d != 1 for d in dilation):
        raise ctx.unsupported("a dilated transposed convolution")
    if ctx.attr("padding") not in ("SAME", "VALID"):
        raise ctx.unsupported(f"padding={ctx.attr('padding')!r}")
    kernel_size = tuple(int(k) for k in kernel.shape[:rank])
    torch_padding, output_padding, crops = [], [], []
    for n, out, k, s in zip(x.spec.shape[1:-1], out_shape[1:-1], kernel_size, stride):
        if n is None or out is None:
            raise ctx.unsupported("a transposed convolution with a dynamic spatial size")
        full = (n - 1) * s + k
        crop_left = max(full - out, 0) // 2 if ctx.attr("padding") == "SAME" else 0
        crop_right = full - out - crop_left
        sym = max(min(crop_left, crop_right), 0)
        extra = -crop_right if crop_right < 0 else 0
        if extra >= s:
            raise ctx.unsupported("an output size this large")
        torch_padding.append(sym)
        output_padding.append(extra)
        crops.append((crop_left - sym, max(crop_right, 0) - sym))
    attrs = {
        "rank": rank, "in_channels": int(kernel.shape[-1]), "out_channels": int(kernel.shape[-2]),
        "kernel_size": kernel_size, "stride": stride, "dilation": dilation, "padding": tuple(torch_padding),
        "output_padding": tuple(output_padding), "crops": crops,
    }
    params = {"kernel": _weight_param(ctx, kernel, var, KERNEL_LAYOUTS[rank])}
    return [ctx.add("conv_transpose", [x], attrs=attrs, params=params, name=_layer_name(ctx, var)).outputs[0]]


@register_tf_op("MaxPool", "AvgPool", "MaxPool3D", "AvgPool3D")
def import_pool(ctx: OpContext) -> list[TFVal]:
    x = ctx.value(0)
    rank = x.rank - 2
    kernel = _spatial(ctx, ctx.attr("ksize"), rank, "pooling window")
    stride = _spatial(ctx, ctx.attr("strides"), rank, "stride")
    padding = ctx.attr("padding")
    if padding == "VALID":
        pads: list | str = [(0, 0)] * rank
    elif any(n is None for n in x.spec.shape[1:-1]):
        pads = "same_dynamic"
    else:
        pads = [same_padding(n, k, s) for n, k, s in zip(x.spec.shape[1:-1], kernel, stride)]
    attrs = {"kind": "max" if ctx.type.startswith("Max") else "avg", "rank": rank, "kernel_size": kernel,
             "stride": stride, "pads": pads}
    return [ctx.add("pool", [x], attrs=attrs).outputs[0]]


@register_tf_op("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
def import_fused_batch_norm(ctx: OpContext) -> list[TFVal]:
    if ctx.attr("is_training", False):
        raise ctx.unsupported("FusedBatchNorm with is_training=True (a training graph)")
    if ctx.attr("data_format", "NHWC") not in ("NHWC", "NDHWC"):
        raise ctx.unsupported(f"data_format={ctx.attr('data_format')!r}")
    x = ctx.value(0)
    arrays = [_weight(ctx, i) for i in range(1, 5)]
    (gamma, gvar), (beta, bvar), (mean, _), (variance, _) = arrays
    params = {
        "gamma": _weight_param(ctx, gamma, gvar, "C"),
        "beta": _weight_param(ctx, beta, bvar, "C"),
        "moving_mean": Param(np.asarray(mean, np.float32), "C", False),
        "moving_variance": Param(np.asarray(variance, np.float32), "C", False),
    }
    attrs = {"num_features": int(gamma.size), "eps": float(str(np.float32(ctx.attr("epsilon")))), "momentum": 0.99,
             "center": True, "scale": True, "unbiased_running_var": True, "frozen": False}
    name = _layer_name(ctx, gvar)
    node = ctx.add("batch_norm", [x], [x.spec], attrs, params, name=name)
    return [node.outputs[0]] + [None] * (len(ctx.op.outputs) - 1)


ACTIVATIONS = {"Relu": "relu", "Relu6": "relu6", "Sigmoid": "sigmoid", "Tanh": "tanh", "Elu": "elu",
               "Selu": "selu", "Softplus": "softplus", "Softsign": "softsign", "LeakyRelu": "leaky_relu"}


@register_tf_op(*ACTIVATIONS)
def import_activation(ctx: OpContext) -> list[TFVal]:
    if is_param(ctx.inputs[0]) and ctx.type in ("Sigmoid", "Tanh", "Relu"):
        return [ParamExpr(ACTIVATIONS[ctx.type], [ctx.inputs[0]])]
    attrs = {"fn": ACTIVATIONS[ctx.type], "alpha": 1.0}
    if ctx.type == "LeakyRelu":
        attrs["negative_slope"] = float(ctx.attr("alpha"))
    return [ctx.add("activation", [ctx.value(0)], attrs=attrs).outputs[0]]


@register_tf_op("Softmax", "LogSoftmax")
def import_softmax(ctx: OpContext) -> list[TFVal]:
    x = ctx.value(0)
    attrs = {"axis": x.rank - 1, "log": ctx.type == "LogSoftmax"}
    return [ctx.add("softmax", [x], attrs=attrs).outputs[0]]


@register_tf_op("ResizeBilinear", "ResizeNearestNeighbor", "ResizeBicubic", "ResizeArea", "ScaleAndTranslate")
def import_resize(ctx: OpContext) -> list[TFVal]:
    x = ctx.value(0)
    size = tuple(int(s) for s in ctx.const(1))
    align, half = bool(ctx.attr("align_corners")), bool(ctx.attr("half_pixel_centers"))
    mode = None
    if ctx.type == "ResizeBilinear" and (align or half):
        mode = "bilinear_align" if align else "bilinear"
    elif ctx.type == "ResizeNearestNeighbor" and not align:
        mode = "nearest_half" if half else "nearest"
    if mode is not None:
        return [ctx.add("tf_resize", [x], attrs={"size": size, "mode": mode}).outputs[0]]
    return [_resize_by_weights(ctx, x, size)]


def _resize_by_weights(ctx: OpContext, x: Value, size: tuple[int, ...]) -> Value:
    """A resize F.interpolate does not compute as TensorFlow does (bicubic: another cubic
    kernel; antialiased / Lanczos ScaleAndTranslate; area; corner-aligned nearest; legacy
    bilinear) as `rows @ x @ cols`: every one is separable and linear, so TensorFlow's own op,
    run once on identity images per axis, gives the exact interpolation weights."""
    from tf2torch.frontends.tf.importer import _fold

    in_h, in_w = x.spec.shape[1:3]
    if in_h is None or in_w is None:
        raise ctx.unsupported(f"{ctx.type} of an image of run-time size")
    scale = np.asarray(ctx.const(2), np.float32) if ctx.type == "ScaleAndTranslate" else None
    shift = np.asarray(ctx.const(3), np.float32) if ctx.type == "ScaleAndTranslate" else None

    def weights(axis: int, n_in: int, n_out: int) -> np.ndarray:
        probe = np.eye(n_in, dtype=np.float32).reshape((1, n_in, 1, n_in) if axis == 0 else (1, 1, n_in, n_in))
        args = [probe, np.asarray([n_out, 1] if axis == 0 else [1, n_out], np.int32)]
        if scale is not None:
            args += [np.asarray([scale[0], 1.0] if axis == 0 else [1.0, scale[1]], np.float32),
                     np.asarray([shift[0], 0.0] if axis == 0 else [0.0, shift[1]], np.float32)]
        out = _fold(ctx.op, args)
        if out is None:
            raise ctx.unsupported(f"{ctx.type} with these arguments")
        return out[0][0, :, 0, :] if axis == 0 else out[0][0, 0, :, :]

    rows, cols = weights(0, in_h, size[0]), weights(1, in_w, size[1]).T
    params = {"rows": Param(np.ascontiguousarray(rows), "tf", False), "cols": Param(np.ascontiguousarray(cols), "tf", False)}
    attrs = {"kind": ctx.type, "var_names": {"rows": f"{ctx.name}/rows", "cols": f"{ctx.name}/cols"}}
    return ctx.add("tf_resize_weights", [x], attrs=attrs, params=params).outputs[0]


def channels_of(value: Value) -> int | None:
    return value.spec.shape[-1]

"""Conv, ConvTranspose and BatchNormalization: ONNX (O, I, *k) kernels handed over in the Keras layouts
the converters expect (HWIO...); BatchNorm stays a module with its statistics as buffers."""

from __future__ import annotations

import numpy as np

from tf2torch.frontends.onnx.importer import OnnxContext, OnnxVal
from tf2torch.frontends.onnx.registry import register_onnx_op
from tf2torch.ir import Value

KERNEL_LAYOUTS = {1: "WIO", 2: "HWIO", 3: "DHWIO"}


def _kernel_to_keras(weight: np.ndarray) -> np.ndarray:
    """ONNX (O, I, *k) -> Keras (*k, I, O); ConvTranspose (I, O, *k) -> Keras (*k, O, I) likewise."""
    rank = weight.ndim - 2
    return weight.transpose(tuple(range(2, 2 + rank)) + (1, 0))


def _pairs(ctx: OnnxContext, rank: int) -> list[tuple[int, int]]:
    pads = ctx.attr("pads") or [0] * (2 * rank)
    return [(int(pads[i]), int(pads[i + rank])) for i in range(rank)]


def auto_pads(ctx: OnnxContext, x: Value, kernel, stride, dilation) -> list[tuple[int, int]] | str:
    """Explicit (begin, end) pads per spatial dim, from `pads` or `auto_pad`."""
    rank = len(kernel)
    auto = ctx.attr("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        return _pairs(ctx, rank)
    if auto == "VALID":
        return [(0, 0)] * rank
    pads = []
    for size, k, s, d in zip(x.spec.shape[2:], kernel, stride, dilation):
        if size is None:
            if auto != "SAME_UPPER":
                raise ctx.unsupported("auto_pad=SAME_LOWER on a dynamic spatial size")
            return "same_dynamic"
        total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small, large = total // 2, total - total // 2
        pads.append((small, large) if auto == "SAME_UPPER" else (large, small))
    return pads


@register_onnx_op("Conv")
def import_conv(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    weight = ctx.const(1)
    rank = weight.ndim - 2
    kernel_size = tuple(int(k) for k in weight.shape[2:])
    stride = tuple(ctx.attr("strides") or [1] * rank)
    dilation = tuple(ctx.attr("dilations") or [1] * rank)
    groups = int(ctx.attr("group", 1))
    attrs = {
        "rank": rank, "in_channels": int(weight.shape[1]) * groups, "out_channels": int(weight.shape[0]),
        "kernel_size": kernel_size, "stride": stride, "dilation": dilation, "groups": groups,
        "pads": auto_pads(ctx, x, kernel_size, stride, dilation), "module_suffix": "",
    }
    params = {"kernel": ctx.param(_kernel_to_keras(weight), KERNEL_LAYOUTS[rank])}
    bias = ctx.const(2)
    if bias is not None:
        params["bias"] = ctx.param(bias, "O")
    return [ctx.add("conv", [x], attrs, params).outputs[0]]


@register_onnx_op("ConvTranspose")
def import_conv_transpose(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    weight = ctx.const(1)
    rank = weight.ndim - 2
    if int(ctx.attr("group", 1)) != 1:
        raise ctx.unsupported("a grouped ConvTranspose")
    if ctx.attr("output_shape") is not None or ctx.attr("auto_pad", "NOTSET") not in ("NOTSET", "", "VALID"):
        raise ctx.unsupported("output_shape / auto_pad SAME (give explicit pads)")
    pads = _pairs(ctx, rank) if ctx.attr("auto_pad", "NOTSET") != "VALID" else [(0, 0)] * rank
    # Symmetric part -> torch padding; the rest is cropped from the full output's end or start.
    padding = tuple(min(b, e) for b, e in pads)
    crops = [(b - p, e - p) for (b, e), p in zip(pads, padding)]
    attrs = {
        "rank": rank, "in_channels": int(weight.shape[0]), "out_channels": int(weight.shape[1]),
        "kernel_size": tuple(int(k) for k in weight.shape[2:]),
        "stride": tuple(ctx.attr("strides") or [1] * rank), "dilation": tuple(ctx.attr("dilations") or [1] * rank),
        "padding": padding, "output_padding": tuple(ctx.attr("output_padding") or [0] * rank), "crops": crops,
    }
    params = {"kernel": ctx.param(_kernel_to_keras(weight), KERNEL_LAYOUTS[rank])}
    bias = ctx.const(2)
    if bias is not None:
        params["bias"] = ctx.param(bias, "O")
    return [ctx.add("conv_transpose", [x], attrs, params).outputs[0]]


@register_onnx_op("BatchNormalization")
def import_batch_norm(ctx: OnnxContext) -> list[OnnxVal]:
    if int(ctx.attr("training_mode", 0)) or len(ctx.node.output) > 1:
        raise ctx.unsupported("BatchNormalization in training mode (a training graph)")
    if not int(ctx.attr("spatial", 1)):
        raise ctx.unsupported("BatchNormalization with spatial=0 (opset < 9, statistics per position)")
    x = ctx.value(0)
    scale, bias, mean, var = (ctx.const(i) for i in range(1, 5))
    params = {
        "gamma": ctx.param(scale, "C"), "beta": ctx.param(bias, "C"),
        "moving_mean": ctx.param(mean, "C", trainable=False), "moving_variance": ctx.param(var, "C", trainable=False),
    }
    # ONNX momentum weighs the running statistic, as Keras' does (torch's is 1 - that); the
    # running variance is torch's unbiased one (ONNX leaves it open; PyTorch exports are the common source).
    attrs = {"num_features": int(scale.size), "eps": float(str(np.float32(ctx.attr("epsilon", 1e-5)))),
             "momentum": float(str(np.float32(ctx.attr("momentum", 0.9)))), "center": True, "scale": True,
             "unbiased_running_var": True, "frozen": False}
    return [ctx.add("batch_norm", [x], attrs, params).outputs[0]]

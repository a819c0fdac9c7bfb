"""Convolutions: Conv1D/2D/3D, DepthwiseConv1D/2D, SeparableConv1D/2D, Conv*Transpose,
LocallyConnected1D/2D.

Padding is resolved here to explicit per-dimension (left, right) amounts, because TF's
'same' depends on the input size and puts the odd cell at the end.
"""

from __future__ import annotations

import numpy as np

from tf2torch.frontends.keras.context import LayerContext, as_tuple, channels_last
from tf2torch.frontends.keras.data_format import accepts_channels_first
from tf2torch.frontends.keras.importers.activations import apply_activation
from tf2torch.frontends.keras.importers.shapes import (
    conv_output_length,
    conv_transpose_output_length,
    same_padding,
)
from tf2torch.frontends.keras.registry import register_importer
from tf2torch.ir import Param, TensorSpec, Value

KERNEL_LAYOUTS = {1: "WIO", 2: "HWIO", 3: "DHWIO"}


def _spatial_rank(class_name: str) -> int:
    return int(next(ch for ch in class_name if ch.isdigit()))


def _pads(ctx: LayerContext, sizes, kernel, strides, dilation, padding: str) -> list[tuple[int, int]] | str:
    if padding == "valid":
        return [(0, 0)] * len(kernel)
    if padding == "causal":
        return [((kernel[0] - 1) * dilation[0], 0)]
    if padding != "same":
        raise ctx.unsupported(f"padding={padding!r}")
    pads = []
    for size, k, s, d in zip(sizes, kernel, strides, dilation):
        if size is None:
            if s != 1:
                return "same_dynamic"  # resolved at run time from the input size
            total = (k - 1) * d
            pads.append((total // 2, total - total // 2))
        else:
            pads.append(same_padding(size, k, s, d))
    return pads


def _add_conv(
    ctx: LayerContext, x: Value, kernel: np.ndarray, bias: np.ndarray | None, *, rank: int,
    strides, dilation, padding: str, groups: int, suffix: str = "",
) -> Value:
    kernel_size = tuple(int(k) for k in kernel.shape[:rank])
    in_channels = int(x.spec.shape[-1])
    out_channels = int(kernel.shape[-1])
    sizes = x.spec.shape[1:-1]
    out_sizes = tuple(
        conv_output_length(n, k, s, d, padding) for n, k, s, d in zip(sizes, kernel_size, strides, dilation)
    )
    params: dict[str, Param] = {"kernel": ctx.param(kernel, KERNEL_LAYOUTS[rank])}
    if bias is not None:
        params["bias"] = ctx.param(bias, "O")
    attrs = {
        "rank": rank, "in_channels": in_channels, "out_channels": out_channels,
        "kernel_size": kernel_size, "stride": tuple(strides), "dilation": tuple(dilation),
        "groups": groups, "pads": _pads(ctx, sizes, kernel_size, strides, dilation, padding),
        "module_suffix": suffix,
    }
    spec = TensorSpec((x.spec.shape[0],) + out_sizes + (out_channels,))
    return ctx.add("conv", [x], [spec], attrs, params).outputs[0]


@register_importer("Conv1D", "Conv2D", "Conv3D")
@accepts_channels_first
def import_conv(ctx: LayerContext) -> list[Value]:
    channels_last(ctx)
    rank = _spatial_rank(ctx.class_name)
    cfg = ctx.config
    use_bias = cfg.get("use_bias", True)
    weights = ctx.weights(2 if use_bias else 1)
    kernel = weights[0]
    groups = int(ctx.inputs[0].spec.shape[-1]) // int(kernel.shape[-2])
    y = _add_conv(
        ctx, ctx.inputs[0], kernel, weights[1] if use_bias else None, rank=rank,
        strides=as_tuple(cfg.get("strides", 1), rank), dilation=as_tuple(cfg.get("dilation_rate", 1), rank),
        padding=cfg.get("padding", "valid"), groups=groups,
    )
    return [apply_activation(ctx, y, cfg.get("activation"))]


@register_importer("DepthwiseConv1D", "DepthwiseConv2D")
@accepts_channels_first
def import_depthwise_conv(ctx: LayerContext) -> list[Value]:
    channels_last(ctx)
    rank = _spatial_rank(ctx.class_name)
    cfg = ctx.config
    use_bias = cfg.get("use_bias", True)
    weights = ctx.weights(2 if use_bias else 1)
    kernel = weights[0]  # (*k, in, multiplier)
    in_channels, multiplier = int(kernel.shape[-2]), int(kernel.shape[-1])
    # Output channel c*multiplier + m belongs to input channel c: a grouped conv with
    # groups = in_channels and a (*k, 1, in*multiplier) kernel.
    grouped = kernel.reshape(kernel.shape[:rank] + (1, in_channels * multiplier))
    y = _add_conv(
        ctx, ctx.inputs[0], grouped, weights[1] if use_bias else None, rank=rank,
        strides=as_tuple(cfg.get("strides", 1), rank), dilation=as_tuple(cfg.get("dilation_rate", 1), rank),
        padding=cfg.get("padding", "valid"), groups=in_channels,
    )
    return [apply_activation(ctx, y, cfg.get("activation"))]


@register_importer("SeparableConv1D", "SeparableConv2D")
@accepts_channels_first
def import_separable_conv(ctx: LayerContext) -> list[Value]:
    channels_last(ctx)
    rank = _spatial_rank(ctx.class_name)
    cfg = ctx.config
    use_bias = cfg.get("use_bias", True)
    weights = ctx.weights(3 if use_bias else 2)
    depthwise, pointwise = weights[0], weights[1]
    in_channels, multiplier = int(depthwise.shape[-2]), int(depthwise.shape[-1])
    grouped = depthwise.reshape(depthwise.shape[:rank] + (1, in_channels * multiplier))
    mid = _add_conv(
        ctx, ctx.inputs[0], grouped, None, rank=rank,
        strides=as_tuple(cfg.get("strides", 1), rank), dilation=as_tuple(cfg.get("dilation_rate", 1), rank),
        padding=cfg.get("padding", "valid"), groups=in_channels, suffix="depthwise",
    )
    y = _add_conv(
        ctx, mid, pointwise, weights[2] if use_bias else None, rank=rank,
        strides=(1,) * rank, dilation=(1,) * rank, padding="valid", groups=1, suffix="pointwise",
    )
    return [apply_activation(ctx, y, cfg.get("activation"))]


@register_importer("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
@accepts_channels_first
def import_conv_transpose(ctx: LayerContext) -> list[Value]:
    channels_last(ctx)
    rank = _spatial_rank(ctx.class_name)
    cfg = ctx.config
    x = ctx.inputs[0]
    use_bias = cfg.get("use_bias", True)
    weights = ctx.weights(2 if use_bias else 1)
    kernel = weights[0]  # (*k, out, in)
    kernel_size = tuple(int(k) for k in kernel.shape[:rank])
    strides = as_tuple(cfg.get("strides", 1), rank)
    dilation = as_tuple(cfg.get("dilation_rate", 1), rank)
    padding = cfg.get("padding", "valid")
    output_padding = cfg.get("output_padding")
    ops = [None] * rank if output_padding is None else list(as_tuple(output_padding, rank))
    torch_padding, torch_output_padding, crops, out_sizes = [], [], [], []
    for n, k, s, d, op in zip(x.spec.shape[1:-1], kernel_size, strides, dilation, ops):
        # The crops below do not depend on the input size (it cancels out), so a dynamic
        # size is resolved with a stand-in length.
        n_ref = 1 if n is None else n
        k_eff = (k - 1) * d + 1
        full = (n_ref - 1) * s + k_eff  # torch output with padding=0, output_padding=0
        out = conv_transpose_output_length(n_ref, k, s, d, padding, op)
        if padding == "valid":
            crop_left = 0
        else:
            # TF computes the transposed conv as the gradient of a 'same' conv from `out`
            # to `n`: its padding, with the extra cell at the end, is cropped here.
            total = max((n_ref - 1) * s + k_eff - out, 0)
            crop_left = total // 2
        crop_right = full - out - crop_left  # negative: extra cells at the end
        sym = max(min(crop_left, crop_right), 0)
        extra_right = -crop_right if crop_right < 0 else 0
        if extra_right and extra_right >= max(s, d):
            raise ctx.unsupported("an output_padding this large")
        torch_padding.append(sym)
        torch_output_padding.append(extra_right)
        crops.append((crop_left - sym, max(crop_right, 0) - sym))
        out_sizes.append(None if n is None else out)
    params = {"kernel": ctx.param(kernel, KERNEL_LAYOUTS[rank])}
    if use_bias:
        params["bias"] = ctx.param(weights[1], "O")
    attrs = {
        "rank": rank, "in_channels": int(kernel.shape[-1]), "out_channels": int(kernel.shape[-2]),
        "kernel_size": kernel_size, "stride": strides, "dilation": dilation, "padding": tuple(torch_padding),
        "output_padding": tuple(torch_output_padding), "crops": crops,
    }
    spec = TensorSpec((x.spec.shape[0],) + tuple(out_sizes) + (int(kernel.shape[-2]),))
    y = ctx.add("conv_transpose", [x], [spec], attrs, params).outputs[0]
    return [apply_activation(ctx, y, cfg.get("activation"))]


@register_importer("LocallyConnected1D", "LocallyConnected2D")
def import_locally_connected(ctx: LayerContext) -> list[Value]:
    """tf_keras LocallyConnected1D/2D: a 'valid' convolution whose weights differ at every
    output position. Implementation 1's kernel is (positions, k... * in, filters), each row
    block a patch flattened as (*kernel, in)."""
    channels_last(ctx)
    cfg = ctx.config
    if int(cfg.get("implementation", 1)) != 1:
        raise ctx.unsupported(f"implementation={cfg['implementation']} (implementation 1, the default, is)")
    x = ctx.inputs[0]
    rank = x.rank - 2
    sizes = x.spec.shape[1:-1]
    if any(n is None for n in sizes):
        raise ctx.unsupported("an input of unknown spatial size")
    kernel_size = as_tuple(cfg["kernel_size"], rank)
    strides = as_tuple(cfg.get("strides", 1), rank)
    out_sizes = tuple(conv_output_length(n, k, s, 1, "valid") for n, k, s in zip(sizes, kernel_size, strides))
    use_bias = bool(cfg.get("use_bias", True))
    weights = ctx.weights(1 + int(use_bias))
    in_channels, filters = int(x.spec.shape[-1]), int(cfg["filters"])
    # (positions, *kernel, in, filters) -> (*positions, in, *kernel, filters)
    kernel = weights[0].reshape(out_sizes + kernel_size + (in_channels, filters))
    kernel = np.transpose(kernel, tuple(range(rank)) + (2 * rank,) + tuple(range(rank, 2 * rank)) + (2 * rank + 1,))
    params = {"kernel": ctx.param(kernel, "positions_in_kernel_out")}
    if use_bias:
        # (*positions, filters) -> (filters, *positions)
        bias = weights[1].reshape(out_sizes + (filters,))
        params["bias"] = ctx.param(np.moveaxis(bias, -1, 0), "out_positions")
    attrs = {"kernel_size": kernel_size, "stride": strides, "in_channels": in_channels, "filters": filters,
             "out_size": out_sizes}
    spec = TensorSpec((x.spec.shape[0],) + out_sizes + (filters,))
    out = ctx.add("locally_connected", [x], [spec], attrs, params).outputs[0]
    return [apply_activation(ctx, out, cfg.get("activation"))]

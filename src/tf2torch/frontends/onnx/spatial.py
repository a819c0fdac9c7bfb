"""Pad and Resize on NCHW tensors."""

from __future__ import annotations

import numpy as np

from tf2torch.frontends.onnx.importer import OnnxContext, OnnxVal
from tf2torch.frontends.onnx.registry import register_onnx_op


@register_onnx_op("Pad")
def import_pad(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    flat = ctx.const(1) if len(ctx.inputs) > 1 else ctx.attr("pads")
    if len(ctx.inputs) > 3 and ctx.node.input[3]:
        raise ctx.unsupported("Pad with an axes input")
    mode = ctx.attr("mode", "constant")
    if mode not in ("constant", "reflect", "edge"):
        raise ctx.unsupported(f"Pad mode {mode!r}")
    flat = [int(p) for p in flat]
    if any(p < 0 for p in flat):
        raise ctx.unsupported("negative pads (cropping)")
    pads = [(flat[i], flat[i + x.rank]) for i in range(x.rank)]
    if mode != "constant" and pads[:2] != [(0, 0), (0, 0)]:
        raise ctx.unsupported(f"{mode} padding of the batch or channel axis")
    value = ctx.const(2) if len(ctx.inputs) > 2 else None
    value = 0.0 if value is None else float(np.asarray(value, np.float32))
    attrs = {"pads": pads, "mode": {"edge": "replicate"}.get(mode, mode), "value": value}
    return [ctx.add("tf_pad", [x], attrs).outputs[0]]


@register_onnx_op("Resize")
def import_resize(ctx: OnnxContext) -> list[OnnxVal]:
    x = ctx.value(0)
    out = ctx.out_spec().shape
    if len(out) != x.rank or any(d is None for d in out[2:]) or out[1] != x.spec.shape[1]:
        raise ctx.unsupported("a Resize whose output spatial size is not static, or that resizes channels")
    mode = ctx.attr("mode", "nearest")
    transform = ctx.attr("coordinate_transformation_mode", "half_pixel")
    nearest = ctx.attr("nearest_mode", "round_prefer_floor")
    if mode == "nearest" and transform == "asymmetric" and nearest == "floor":
        torch_mode = "nearest"
    elif mode == "nearest" and transform in ("half_pixel", "pytorch_half_pixel") and nearest == "round_prefer_ceil":
        torch_mode = "nearest_half"
    elif mode == "linear" and transform in ("half_pixel", "pytorch_half_pixel") and x.rank == 4:
        torch_mode = "bilinear"
    elif mode == "linear" and transform == "align_corners" and x.rank == 4:
        torch_mode = "bilinear_align"
    else:
        raise ctx.unsupported(f"Resize mode={mode!r}, coordinate_transformation_mode={transform!r}, nearest_mode={nearest!r}")
    if any(s is None or o % s for s, o in zip(x.spec.shape[2:], out[2:])) and torch_mode.startswith("nearest"):
        raise ctx.unsupported("nearest Resize by a non-integer factor")
    scales = ctx.const(2) if len(ctx.inputs) > 2 else None
    if scales is not None and scales.size and any(
            float(s) * n != o for s, n, o in zip(scales[2:], x.spec.shape[2:], out[2:])):
        # ONNX samples at 1 / scale, torch (given a size) at in / out: different grids.
        raise ctx.unsupported("a Resize by scales whose output size is rounded")
    return [ctx.add("tf_resize", [x], {"size": tuple(int(d) for d in out[2:]), "mode": torch_mode}).outputs[0]]

"""Audio preprocessing: STFTSpectrogram (Keras 3). Its DFT kernels are weights in the file
(they encode the window and the scaling), so the torch module convolves with the same ones."""

from __future__ import annotations

import numpy as np

from tf2torch.frontends.keras.context import LayerContext
from tf2torch.frontends.keras.importers.shapes import same_padding
from tf2torch.frontends.keras.registry import register_importer
from tf2torch.ir import TensorSpec, Value

STFT_MODES = ("log", "magnitude", "psd", "real", "imag", "angle", "stft")


@register_importer("STFTSpectrogram")
def import_stft_spectrogram(ctx: LayerContext) -> list[Value]:
    cfg = ctx.config
    x = ctx.inputs[0]
    mode = cfg.get("mode", "log")
    if mode not in STFT_MODES or x.rank != 3:
        raise ctx.unsupported(f"mode={mode!r} on a rank-{x.rank} input")
    channels_first = (cfg.get("data_format") or "channels_last") == "channels_first"
    steps, channels = (x.spec.shape[2], x.spec.shape[1]) if channels_first else (x.spec.shape[1], x.spec.shape[2])
    if steps is None or channels is None:
        raise ctx.unsupported("an input of unknown length or channel count")
    frame_length = int(cfg.get("frame_length", 256))
    frame_step = int(cfg.get("frame_step") or frame_length // 2)
    kernels = ctx.weights()
    names = [k for k in ("real", "imag") if (k == "real" and mode != "imag") or (k == "imag" and mode != "real")]
    if len(kernels) != len(names):
        raise ctx.unsupported(f"{len(kernels)} weights for mode={mode!r}")
    params = {
        f"{name}_kernel": ctx.param(np.transpose(k, (2, 1, 0)), "out_in_width")  # (width, 1, freq) -> (freq, 1, width)
        for name, k in zip(names, kernels)
    }
    freq = int(kernels[0].shape[-1]) * (2 if mode == "stft" else 1)
    if cfg.get("padding", "valid") == "same":
        pad = same_padding(int(steps), frame_length, frame_step)
        frames = -(-int(steps) // frame_step)
    else:
        pad = (0, 0)
        frames = (int(steps) - frame_length) // frame_step + 1
    expand = bool(cfg.get("expand_dims", False))
    batch = x.spec.shape[0]
    if channels_first:
        shape: tuple[int | None, ...] = (batch, channels, frames, freq) if expand else (batch, channels * freq, frames)
    else:
        shape = (batch, frames, freq, channels) if expand else (batch, frames, channels * freq)
    attrs = {"mode": mode, "frame_step": frame_step, "pad": tuple(pad), "channels_first": channels_first,
             "expand_dims": expand}
    return ctx.add("stft_spectrogram", [x], [TensorSpec(shape, "float32")], attrs, params).outputs

"""Audio preprocessing (Keras 3): STFTSpectrogram, whose DFT kernels are weights in the file
(they encode the window and the scaling), so the torch module convolves with the same ones;
MelSpectrogram, torch.stft with TensorFlow's framing and Keras' mel filter bank."""

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


def _hertz_to_mel(hertz: np.ndarray) -> np.ndarray:
    return np.float32(1127.0) * np.log(np.float32(1.0) + hertz / np.float32(700.0))


def mel_filters(num_mel_bins: int, num_spectrogram_bins: int, sampling_rate: float,
                lower_hertz: float, upper_hertz: float) -> np.ndarray:
    """Keras MelSpectrogram's (HTK) filter bank, (num_spectrogram_bins, num_mel_bins): triangles
    with peak 1 between mel-spaced band edges; the DC bin gets no weight."""
    linear = np.linspace(0.0, sampling_rate / 2.0, num_spectrogram_bins, dtype=np.float32)[1:]
    bins_mel = _hertz_to_mel(linear)[:, None]
    lower_mel, upper_mel = _hertz_to_mel(np.float32(lower_hertz)), _hertz_to_mel(np.float32(upper_hertz))
    edges = np.linspace(lower_mel, upper_mel, num_mel_bins + 2, dtype=np.float32)
    lower, center, upper = edges[:-2][None], edges[1:-1][None], edges[2:][None]
    rising = (bins_mel - lower) / (center - lower)
    falling = (upper - bins_mel) / (upper - center)
    weights = np.maximum(np.float32(0.0), np.minimum(rising, falling))
    return np.pad(weights, [(1, 0), (0, 0)]).astype(np.float32)


@register_importer("MelSpectrogram")
def import_mel_spectrogram(ctx: LayerContext) -> list[Value]:
    cfg = ctx.config
    x = ctx.inputs[0]
    if x.rank != 2:
        raise ctx.unsupported(f"a rank-{x.rank} input (a batch of 1-D signals, rank 2, is expected)")
    window = cfg.get("window", "hann")
    if window not in ("hann", "hamming", None):
        raise ctx.unsupported(f"window={window!r} (an array window)")
    fft_length = int(cfg.get("fft_length", 2048))
    stride = int(cfg.get("sequence_stride", 512))
    sequence_length = int(cfg.get("sequence_length") or fft_length)
    sampling_rate = float(cfg.get("sampling_rate", 16000))
    num_mel_bins = int(cfg.get("num_mel_bins", 128))
    upper = cfg.get("max_freq")
    filters = mel_filters(num_mel_bins, fft_length // 2 + 1, sampling_rate, float(cfg.get("min_freq", 20.0)),
                          sampling_rate / 2.0 if upper is None else float(upper))
    min_power = float(cfg.get("min_power", 1e-10))
    attrs = {
        "fft_length": fft_length, "hop_length": stride,
        # No window: TensorFlow transforms whole fft_length frames, unwindowed.
        "win_length": sequence_length if window is not None else fft_length, "window": window,
        "mag_exp": float(cfg.get("mag_exp", 2.0)), "power_to_db": bool(cfg.get("power_to_db", True)),
        "top_db": float(cfg.get("top_db", 80.0)), "min_power": min_power,
        "ref_db": float(10.0 * np.log10(max(abs(float(cfg.get("ref_power", 1.0))), min_power))),
    }
    steps = x.spec.shape[1]
    frames = None if steps is None else 1 + int(steps) // stride
    params = {"mel_filters": ctx.param(filters, "freq_mel", trainable=False)}
    out = TensorSpec((x.spec.shape[0], num_mel_bins, frames), "float32")
    return ctx.add("mel_spectrogram", [x], [out], attrs, params).outputs

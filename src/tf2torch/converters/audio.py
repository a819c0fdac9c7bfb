"""stft_spectrogram and mel_spectrogram (Keras 3 STFTSpectrogram, MelSpectrogram)."""

from __future__ import annotations

from tf2torch.codegen.literals import call
from tf2torch.codegen.program import ModuleBuilder
from tf2torch.converters.params import frozen_names, state_array
from tf2torch.converters.registry import register_converter
from tf2torch.ir import Node

STFT_HELPER = '''
class STFTSpectrogram(nn.Module):
    """Keras STFTSpectrogram: each input channel convolved with the layer's real / imaginary
    DFT kernels (window and scaling included), then the chosen `mode`."""

    def __init__(
        self, frame_length: int, freq_bins: int, frame_step: int, mode: str = "log", padding: tuple[int, int] = (0, 0),
        channels_first: bool = False, expand_dims: bool = False,
    ) -> None:
        super().__init__()
        self.frame_step = frame_step
        self.mode = mode
        self.padding = padding
        self.channels_first = channels_first
        self.expand_dims = expand_dims
        shape = (freq_bins, 1, frame_length)
        self.real_kernel = nn.Parameter(torch.empty(shape)) if mode != "imag" else None
        self.imag_kernel = nn.Parameter(torch.empty(shape)) if mode != "real" else None

    def spectrum(self, signals: torch.Tensor) -> torch.Tensor:
        """(signals, 1, steps) -> (signals, freq, frames) for the mode."""
        signals = F.pad(signals, self.padding)
        real = F.conv1d(signals, self.real_kernel, stride=self.frame_step) if self.real_kernel is not None else None
        imag = F.conv1d(signals, self.imag_kernel, stride=self.frame_step) if self.imag_kernel is not None else None
        if self.mode == "real":
            return real
        if self.mode == "imag":
            return imag
        if self.mode == "angle":
            return torch.atan2(imag, real)
        if self.mode == "stft":
            return torch.cat([real, imag], dim=1)
        power = real.square() + imag.square()
        if self.mode == "psd":
            return power + F.pad(power[:, 1:-1], (0, 0, 1, 1))
        magnitude = power.clamp_min(1e-7).sqrt()
        return magnitude if self.mode == "magnitude" else magnitude.clamp_min(1e-7).log()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.channels_first:
            x = x.transpose(1, 2)  # (batch, channels, steps)
        batch, channels, steps = x.shape
        y = self.spectrum(x.reshape(batch * channels, 1, steps))
        freq, frames = y.shape[1], y.shape[2]
        if self.expand_dims:
            y = y.reshape(batch, channels, freq, frames)
            return y.transpose(2, 3) if self.channels_first else y.permute(0, 3, 2, 1)
        y = y.reshape(batch, channels * freq, frames)
        return y if self.channels_first else y.transpose(1, 2)
'''


@register_converter("stft_spectrogram")
def convert_stft_spectrogram(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    b.use_functional()
    kernel = next(p.array for k, p in node.params.items() if k.endswith("_kernel"))
    kwargs = {k: a[k] for k, default in (("mode", "log"), ("pad", (0, 0)), ("channels_first", False),
                                        ("expand_dims", False)) if a[k] != default}
    if "pad" in kwargs:
        kwargs["padding"] = kwargs.pop("pad")
    cls = b.helper("STFTSpectrogram", STFT_HELPER)
    ctor = call(cls, int(kernel.shape[2]), int(kernel.shape[0]), a["frame_step"], **kwargs)
    state = {k: state_array(p.array) for k, p in node.params.items()}
    frozen = frozen_names(node, {"real_kernel": "real_kernel", "imag_kernel": "imag_kernel"})
    mod = b.submodule(node, ctor, state, frozen=frozen)
    b.emit(node.outputs[0], f"{mod}({b.var(node.inputs[0])})")


MEL_HELPER = '''
class MelSpectrogram(nn.Module):
    """Keras MelSpectrogram: |STFT| ** mag_exp over centered, reflect-padded frames, the mel
    filter bank, then decibels floored at top_db below the largest value of the whole batch
    (as Keras computes it). Output: (batch, num_mel_bins, frames)."""

    def __init__(
        self, fft_length: int, hop_length: int, win_length: int, num_mel_bins: int, window: str | None = "hann",
        mag_exp: float = 2.0, power_to_db: bool = True, top_db: float = 80.0, min_power: float = 1e-10,
        ref_db: float = 0.0,
    ) -> None:
        super().__init__()
        self.fft_length = fft_length
        self.hop_length = hop_length
        self.win_length = win_length
        self.mag_exp = mag_exp
        self.power_to_db = power_to_db
        self.top_db = top_db
        self.min_power = min_power
        self.ref_db = ref_db
        windows = {"hann": torch.hann_window, "hamming": torch.hamming_window}
        self.register_buffer("window", windows[window](win_length) if window else None, persistent=False)
        self.register_buffer("mel_filters", torch.zeros(fft_length // 2 + 1, num_mel_bins))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spectrum = torch.stft(
            x, self.fft_length, self.hop_length, self.win_length, window=self.window, center=True,
            pad_mode="reflect", return_complex=True,
        )
        mel = spectrum.abs().pow(self.mag_exp).transpose(1, 2) @ self.mel_filters
        if self.power_to_db:
            mel = 10.0 * torch.log10(mel.clamp_min(self.min_power)) - self.ref_db
            mel = torch.maximum(mel, mel.amax() - self.top_db)
        return mel.transpose(1, 2)
'''


@register_converter("mel_spectrogram")
def convert_mel_spectrogram(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    filters = node.params["mel_filters"].array
    defaults = {"window": "hann", "mag_exp": 2.0, "power_to_db": True, "top_db": 80.0, "min_power": 1e-10,
                "ref_db": 0.0}
    kwargs = {k: a[k] for k, default in defaults.items() if a[k] != default}
    cls = b.helper("MelSpectrogram", MEL_HELPER)
    ctor = call(cls, a["fft_length"], a["hop_length"], a["win_length"], int(filters.shape[1]), **kwargs)
    mod = b.submodule(node, ctor, {"mel_filters": state_array(filters)})
    b.emit(node.outputs[0], f"{mod}({b.var(node.inputs[0])})")

"""stft_spectrogram (Keras 3 STFTSpectrogram)."""

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

"""Complex numbers and Fourier transforms (FNet-style token mixing, spectral features):
Complex / Real / Imag / ComplexAbs / Angle and the FFT family, onto torch's complex tensors."""

from __future__ import annotations

from tf2torch.frontends.tf.context import OpContext
from tf2torch.frontends.tf.registry import register_tf_op
from tf2torch.frontends.tf.values import TFVal

# TF op -> (torch.fft function, number of innermost axes transformed)
FFTS = {
    "FFT": ("fft", 1), "FFT2D": ("fft2", 2), "FFT3D": ("fftn", 3),
    "IFFT": ("ifft", 1), "IFFT2D": ("ifft2", 2), "IFFT3D": ("ifftn", 3),
}
REAL_FFTS = {
    "RFFT": ("rfft", 1), "RFFT2D": ("rfft2", 2), "RFFT3D": ("rfftn", 3),
    "IRFFT": ("irfft", 1), "IRFFT2D": ("irfft2", 2), "IRFFT3D": ("irfftn", 3),
}
PARTS = {"Real": "real", "Imag": "imag", "ComplexAbs": "abs", "Angle": "angle"}


@register_tf_op("Complex")
def import_complex(ctx: OpContext) -> list[TFVal]:
    return [ctx.add("tf_complex", [ctx.value(0), ctx.value(1)]).outputs[0]]


@register_tf_op(*PARTS)
def import_part(ctx: OpContext) -> list[TFVal]:
    return [ctx.add("tf_unary", [ctx.value(0)], attrs={"fn": PARTS[ctx.type]}).outputs[0]]


@register_tf_op(*FFTS)
def import_fft(ctx: OpContext) -> list[TFVal]:
    fn, axes = FFTS[ctx.type]
    return [ctx.add("tf_fft", [ctx.value(0)], attrs={"fn": fn, "axes": axes, "lengths": None}).outputs[0]]


@register_tf_op(*REAL_FFTS)
def import_real_fft(ctx: OpContext) -> list[TFVal]:
    fn, axes = REAL_FFTS[ctx.type]
    # fft_length: the signal length per transformed axis (input is cropped or zero-padded to it).
    lengths = tuple(int(n) for n in ctx.const(1).reshape(-1))
    return [ctx.add("tf_fft", [ctx.value(0)], attrs={"fn": fn, "axes": axes, "lengths": lengths}).outputs[0]]

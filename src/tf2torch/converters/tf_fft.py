"""tf_complex and tf_fft: complex tensors and Fourier transforms as torch.complex / torch.fft."""

from __future__ import annotations

from tf2torch.codegen.program import ModuleBuilder
from tf2torch.converters.registry import register_converter
from tf2torch.ir import Node


@register_converter("tf_complex")
def convert_tf_complex(node: Node, b: ModuleBuilder) -> None:
    b.emit(node.outputs[0], f"torch.complex({b.var(node.inputs[0])}, {b.var(node.inputs[1])})")


@register_converter("tf_fft")
def convert_tf_fft(node: Node, b: ModuleBuilder) -> None:
    fn, axes, lengths = node.attrs["fn"], node.attrs["axes"], node.attrs["lengths"]
    args = [b.var(node.inputs[0])]
    if lengths is not None:
        args.append(f"n={lengths[0]}" if axes == 1 else f"s={lengths}")
    if fn.endswith("n"):  # fftn / ifftn / rfftn / irfftn: TF transforms the innermost three axes
        args.append("dim=(-3, -2, -1)")
    b.emit(node.outputs[0], f"torch.fft.{fn}({', '.join(args)})")

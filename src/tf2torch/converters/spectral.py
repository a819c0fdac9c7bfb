"""spectral_dense / spectral_conv: Keras SpectralNormalization around a Dense or a Conv.

The wrapped layer converts as usual (its converter writes the nn.Linear / nn.ConvNd); its
module is then wrapped in SpectralNorm, which in training divides the weight in place by its
spectral norm before each call, as Keras assigns the normalized kernel to the variable.
"""

from __future__ import annotations

from tf2torch.codegen.program import ModuleBuilder
from tf2torch.converters.registry import CONVERTERS, register_converter
from tf2torch.ir import Node

SPECTRAL_NORM_HELPER = '''
class SpectralNorm(nn.Module):
    """Keras SpectralNormalization around `layer`. In training each call first divides the
    layer's weight, in place, by its largest singular value, estimated by power iteration
    from the stored vector `u` (updated too), as Keras does; eval uses the stored weight."""

    def __init__(self, layer: nn.Module, power_iterations: int = 1) -> None:
        super().__init__()
        self.layer = layer
        self.power_iterations = power_iterations
        self.register_buffer("u", torch.zeros(1, layer.weight.shape[0]))

    @torch.no_grad()
    def normalize_weight(self) -> None:
        weight = self.layer.weight
        if not weight.any():
            return  # Keras leaves an all-zero kernel as it is
        # Keras' kernel.reshape(-1, units), its rows in another order (which changes nothing).
        rows = weight.reshape(weight.shape[0], -1).T
        u = self.u
        for _ in range(self.power_iterations):
            v = u @ rows.T
            v = v * v.square().sum().rsqrt().clamp(max=1e7)
            u = v @ rows
            u = u * u.square().sum().rsqrt().clamp(max=1e7)
        sigma = (v @ rows) @ u.T
        weight.div_(sigma)
        self.u.copy_(u)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.normalize_weight()
        return self.layer(x)
'''


@register_converter("spectral_dense", "spectral_conv")
def convert_spectral(node: Node, b: ModuleBuilder) -> None:
    spectral = node.attrs["spectral"]
    before = len(b.submodules)
    outer_op, node.op = node.op, spectral["inner_op"]
    try:
        CONVERTERS[node.op](node, b)
    finally:
        node.op = outer_op
    (sub,) = b.submodules[before:]
    cls = b.helper("SpectralNorm", SPECTRAL_NORM_HELPER)
    iterations = spectral["power_iterations"]
    sub.ctor = f"{cls}({sub.ctor}{f', power_iterations={iterations}' if iterations != 1 else ''})"
    sub.state = {f"layer.{k}": v for k, v in sub.state.items()}
    sub.state["u"] = spectral["vector_u"].reshape(1, -1)
    sub.frozen = tuple(p if p == "*" else f"layer.{p}" for p in sub.frozen)

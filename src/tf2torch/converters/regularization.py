"""dropout, spatial_dropout, alpha_dropout, gaussian_noise, gaussian_dropout,
activity_regularization.

All are identity in eval(); in train() they sample noise like Keras (random streams differ).
"""

from __future__ import annotations

from tf2torch.codegen.literals import call
from tf2torch.codegen.program import ModuleBuilder
from tf2torch.converters.registry import register_converter
from tf2torch.ir import Node

GAUSSIAN_NOISE_HELPER = '''
class GaussianNoise(nn.Module):
    """Adds N(0, stddev^2) noise in training; identity in eval (Keras GaussianNoise)."""

    def __init__(self, stddev: float) -> None:
        super().__init__()
        self.stddev = stddev

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        return x + torch.randn_like(x) * self.stddev
'''

GAUSSIAN_DROPOUT_HELPER = '''
class GaussianDropout(nn.Module):
    """Multiplies by N(1, rate / (1 - rate)) noise in training; identity in eval."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0:
            return x
        stddev = (self.rate / (1.0 - self.rate)) ** 0.5
        return x * (1.0 + torch.randn_like(x) * stddev)
'''


def _module_call(node: Node, b: ModuleBuilder, ctor: str) -> None:
    mod = b.submodule(node, ctor, {})
    b.emit(node.outputs[0], f"{mod}({b.var(node.inputs[0])})")


@register_converter("dropout")
def convert_dropout(node: Node, b: ModuleBuilder) -> None:
    _module_call(node, b, call("nn.Dropout", node.attrs["rate"]))


@register_converter("spatial_dropout")
def convert_spatial_dropout(node: Node, b: ModuleBuilder) -> None:
    rank = node.inputs[0].rank - 2
    _module_call(node, b, call(f"nn.Dropout{rank}d", node.attrs["rate"]))


@register_converter("alpha_dropout")
def convert_alpha_dropout(node: Node, b: ModuleBuilder) -> None:
    _module_call(node, b, call("nn.AlphaDropout", node.attrs["rate"]))


@register_converter("gaussian_noise")
def convert_gaussian_noise(node: Node, b: ModuleBuilder) -> None:
    cls = b.helper("GaussianNoise", GAUSSIAN_NOISE_HELPER)
    _module_call(node, b, call(cls, node.attrs["stddev"]))


@register_converter("gaussian_dropout")
def convert_gaussian_dropout(node: Node, b: ModuleBuilder) -> None:
    cls = b.helper("GaussianDropout", GAUSSIAN_DROPOUT_HELPER)
    _module_call(node, b, call(cls, node.attrs["rate"]))


@register_converter("activity_regularization")
def convert_activity_regularization(node: Node, b: ModuleBuilder) -> None:
    # A module of its own, so that training's forward hook can read the layer's output.
    penalty = ", ".join(f"{k}={node.attrs[k]}" for k in ("l1", "l2") if node.attrs[k])
    comment = f"Keras ActivityRegularization({penalty}): an identity; its penalty is a training loss term."
    mod = b.submodule(node, "nn.Identity()", {}, comment=comment)
    b.emit(node.outputs[0], f"{mod}({b.var(node.inputs[0])})")

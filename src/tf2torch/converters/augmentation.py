"""Random augmentation layers: random_flip (RandomFlip) and train_augmentation (every other
Keras augmentation, an identity: see frontends/keras/importers/augmentation.py)."""

from __future__ import annotations

from tf2torch.codegen.literals import call
from tf2torch.codegen.program import ModuleBuilder
from tf2torch.converters.registry import register_converter
from tf2torch.ir import Node

RANDOM_FLIP_HELPER = '''
class RandomFlip(nn.Module):
    """Keras RandomFlip: in training, each image is flipped along each of `dims` with
    probability 1/2 (torch's random numbers, not TensorFlow's); the identity in eval."""

    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        for dim in self.dims:
            flip = torch.rand(x.shape[0], device=x.device) < 0.5
            x = torch.where(flip.view(-1, *([1] * (x.dim() - 1))), x.flip(dim), x)
        return x
'''


@register_converter("random_flip")
def convert_random_flip(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    dims = tuple(a[axis] for axis, on in (("height_axis", a["vertical"]), ("width_axis", a["horizontal"])) if on)
    cls = b.helper("RandomFlip", RANDOM_FLIP_HELPER)
    mod = b.submodule(node, call(cls, dims), {})
    b.emit(node.outputs[0], f"{mod}({b.var(node.inputs[0])})")


@register_converter("train_augmentation")
def convert_train_augmentation(node: Node, b: ModuleBuilder) -> None:
    comment = f"Keras {node.attrs['kind']}: random, in training only; an identity here (augment in your data pipeline)."
    mod = b.submodule(node, "nn.Identity()", {}, comment=comment)
    b.emit(node.outputs[0], f"{mod}({b.var(node.inputs[0])})")

"""activation (every Keras activation function), softmax, prelu."""

from __future__ import annotations

from collections.abc import Callable

from tf2torch.codegen.literals import literal
from tf2torch.codegen.program import ModuleBuilder
from tf2torch.converters.params import state_array
from tf2torch.converters.registry import register_converter
from tf2torch.ir import Node

Expr = Callable[[str, dict], str]

# IR activation fn -> expression on variable x. "F." is rewritten to the functional alias.
ACTIVATION_EXPRESSIONS: dict[str, Expr] = {
    "relu": lambda x, a: f"torch.relu({x})",
    "relu6": lambda x, a: f"F.relu6({x})",
    "sigmoid": lambda x, a: f"torch.sigmoid({x})",
    "tanh": lambda x, a: f"torch.tanh({x})",
    "softplus": lambda x, a: f"F.softplus({x})",
    "softsign": lambda x, a: f"F.softsign({x})",
    "selu": lambda x, a: f"torch.selu({x})",
    "elu": lambda x, a: f"F.elu({x})" if a["alpha"] == 1.0 else f"F.elu({x}, alpha={literal(a['alpha'])})",
    "celu": lambda x, a: f"F.celu({x})" if a["alpha"] == 1.0 else f"F.celu({x}, alpha={literal(a['alpha'])})",
    "exp": lambda x, a: f"torch.exp({x})",
    "silu": lambda x, a: f"F.silu({x})",
    "gelu": lambda x, a: f'F.gelu({x}, approximate="tanh")' if a["approximate"] else f"F.gelu({x})",
    "hard_silu": lambda x, a: f"F.hardswish({x})",
    "hard_sigmoid": lambda x, a: f"F.hardsigmoid({x})",
    # Keras 2's hard_sigmoid is the older, steeper formula.
    "hard_sigmoid_k2": lambda x, a: f"torch.clamp(0.2 * {x} + 0.5, 0.0, 1.0)",
    "mish": lambda x, a: f"F.mish({x})",
    "leaky_relu": lambda x, a: f"F.leaky_relu({x}, negative_slope={literal(a['negative_slope'])})",
    "hard_tanh": lambda x, a: f"F.hardtanh({x})",
    "hard_shrink": lambda x, a: f"F.hardshrink({x}, lambd={literal(a['threshold'])})",
    "soft_shrink": lambda x, a: f"F.softshrink({x}, lambd={literal(a['threshold'])})",
    "tanh_shrink": lambda x, a: f"F.tanhshrink({x})",
    "log_sigmoid": lambda x, a: f"F.logsigmoid({x})",
    "sparse_plus": lambda x, a: f"torch.where({x} <= -1, 0.0, torch.where({x} >= 1, {x}, ({x} + 1) ** 2 / 4))",
    "sparse_sigmoid": lambda x, a: f"torch.clamp(0.5 * ({x} + 1), 0.0, 1.0)",
    "squareplus": lambda x, a: f"({x} + torch.sqrt({x} ** 2 + {literal(a['b'])})) / 2",
    "threshold": lambda x, a: f"F.threshold({x}, {literal(a['threshold'])}, 0.0)",
}

# In-place forms, for an input nothing else reads (ModuleBuilder.overwritable). Only
# functions whose backward reads their own output, never their input.
IN_PLACE_EXPRESSIONS: dict[str, Expr] = {
    "relu": lambda x, a: f"F.relu({x}, inplace=True)",
    "relu6": lambda x, a: f"F.relu6({x}, inplace=True)",
}


def _functional(expr: str, b: ModuleBuilder) -> str:
    if "F." in expr:
        b.use_functional()
    return expr


@register_converter("activation")
def convert_activation(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    x = b.var(node.inputs[0])
    fn = a["fn"]
    if fn == "relu_general":
        _convert_general_relu(node, b, x)
    elif fn == "glu":
        b.use_functional()
        b.emit(node.outputs[0], f"F.glu({x}, dim={node.inputs[0].torch_axis(-1)})")
    elif fn in IN_PLACE_EXPRESSIONS and b.overwritable(node.inputs[0]):
        b.use_functional()
        b.emit(node.outputs[0], IN_PLACE_EXPRESSIONS[fn](x, a))
    else:
        b.emit(node.outputs[0], _functional(ACTIVATION_EXPRESSIONS[fn](x, a), b))


def _convert_general_relu(node: Node, b: ModuleBuilder, x: str) -> None:
    """Keras relu(x, negative_slope, max_value, threshold), composed as Keras computes it."""
    a = node.attrs
    slope, max_value, threshold = a["negative_slope"], a["max_value"], a["threshold"]
    if slope and max_value is None and not threshold:
        b.use_functional()
        b.emit(node.outputs[0], f"F.leaky_relu({x}, negative_slope={literal(slope)})")
        return
    in_place = not slope and b.overwritable(node.inputs[0])
    if threshold:
        y = f"{x} * ({x} > {literal(threshold)})"
    elif max_value == 6:
        # Keras uses the native relu6 here (and its gradient, zero at both ends).
        b.use_functional()
        y = f"F.relu6({x}, inplace=True)" if in_place else f"F.relu6({x})"
        max_value = None
    elif in_place:
        b.use_functional()
        y = f"F.relu({x}, inplace=True)"
    else:
        y = f"torch.relu({x})"
    if max_value is not None:
        y = f"({y}).clamp(0.0, {literal(max_value)})"
    if slope:
        y = f"{y} - {literal(slope)} * torch.relu({literal(threshold)} - {x})" if threshold else f"{y} - {literal(slope)} * torch.relu(-{x})"
    b.emit(node.outputs[0], y)


SPARSEMAX_HELPER = '''
def keras_sparsemax(x: torch.Tensor, dim: int) -> torch.Tensor:
    """keras.activations.sparsemax exactly as Keras 3 computes it (all backends): note that
    tau sums the cumulative sums over the support, so rows need not sum to 1."""
    z = torch.sort(x, dim=dim, descending=True).values
    cumsum = torch.cumsum(z, dim=dim)
    shape = [1] * x.dim()
    shape[dim] = -1
    r = torch.arange(1, x.shape[dim] + 1, dtype=x.dtype, device=x.device).view(shape)
    support = z - (cumsum - 1) / r > 0
    k = support.sum(dim=dim, keepdim=True).to(x.dtype)
    tau = (torch.where(support, cumsum, 0.0).sum(dim=dim, keepdim=True) - 1) / k
    return torch.clamp(x - tau, min=0.0)
'''


@register_converter("softmax")
def convert_softmax(node: Node, b: ModuleBuilder) -> None:
    dim = node.attrs["axis"] % node.inputs[0].rank
    if node.attrs.get("sparse"):
        fn = b.helper("keras_sparsemax", SPARSEMAX_HELPER)
        b.emit(node.outputs[0], f"{fn}({b.var(node.inputs[0])}, dim={dim})")
        return
    fn = "log_softmax" if node.attrs.get("log") else "softmax"
    b.emit(node.outputs[0], f"torch.{fn}({b.var(node.inputs[0])}, dim={dim})")


PRELU_HELPER = '''
class KerasPReLU(nn.Module):
    """PReLU with Keras' slope shape: one slope per element, size 1 on shared axes."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) - self.alpha * torch.relu(-x)
'''


@register_converter("prelu")
def convert_prelu(node: Node, b: ModuleBuilder) -> None:
    x = node.inputs[0]
    alpha = node.params["alpha"].array
    if x.perm is not None:
        alpha = alpha.transpose([p - 1 for p in x.perm[1:]])
    cls = b.helper("KerasPReLU", PRELU_HELPER)
    frozen = ("*",) if not node.params["alpha"].trainable else ()
    mod = b.submodule(node, f"{cls}({literal(tuple(alpha.shape))})", {"alpha": state_array(alpha)}, frozen=frozen)
    b.emit(node.outputs[0], f"{mod}({b.var(x)})")

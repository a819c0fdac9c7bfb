"""batch_norm, channel_affine (a BatchNorm folded to a scale and an offset), layer_norm and group_norm."""

from __future__ import annotations

import numpy as np

from tf2torch.codegen.literals import call
from tf2torch.codegen.program import ModuleBuilder
from tf2torch.converters.bn_folding import fold_into_producer
from tf2torch.converters.params import state_array
from tf2torch.converters.registry import register_converter
from tf2torch.ir import Node

# Both helpers avoid branching on the input's rank (nn.BatchNorm's _check_input_dim), so
# torch.fx can trace them.
BIASED_BN_HELPER = '''
class {name}(nn.BatchNorm{n}d):
    """BatchNorm whose running variance tracks the biased batch variance, as Keras' does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        # One fused pass; momentum 1 writes the batch mean and unbiased variance into these.
        mean, var = torch.zeros_like(self.running_mean), torch.zeros_like(self.running_var)
        x = F.batch_norm(x, mean, var, self.weight, self.bias, True, 1.0, self.eps)
        with torch.no_grad():
            n = x.numel() // x.shape[1]  # values per channel
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * ((n - 1) / n), self.momentum)
            self.num_batches_tracked += 1
        return x
'''

FROZEN_BN_HELPER = '''
class FrozenBatchNorm{n}d(nn.BatchNorm{n}d):
    """A BatchNorm that Keras had frozen (trainable=False): it always normalizes with its
    moving statistics and never updates them, even in train() mode."""

    def train(self, mode: bool = True) -> "FrozenBatchNorm{n}d":
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
'''

# input rank -> (torch BatchNorm flavour, helper class name, dims the statistics reduce over)
BN_KINDS = {
    2: (1, "KerasBatchNorm1d", (0,)),
    3: (1, "KerasBatchNormSteps1d", (0, 2)),
    4: (2, "KerasBatchNorm2d", (0, 2, 3)),
    5: (3, "KerasBatchNorm3d", (0, 2, 3, 4)),
}


@register_converter("batch_norm")
def convert_batch_norm(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    n, helper_name, dims = BN_KINDS[node.inputs[0].rank]
    if a["frozen"]:
        b.use_functional()
        cls = b.helper(f"FrozenBatchNorm{n}d", FROZEN_BN_HELPER.format(n=n))
    elif a["unbiased_running_var"]:
        cls = f"nn.BatchNorm{n}d"
    else:
        b.use_functional()
        cls = b.helper(helper_name, BIASED_BN_HELPER.format(name=helper_name, n=n, dims=dims))
    p = node.params
    ctor = call(cls, a["num_features"], eps=a["eps"], momentum=round(1.0 - a["momentum"], 12))
    state = {
        "weight": state_array(p["gamma"].array),
        "bias": state_array(p["beta"].array),
        "running_mean": state_array(p["moving_mean"].array),
        "running_var": state_array(p["moving_variance"].array),
        "num_batches_tracked": np.zeros((), dtype=np.int64),
    }
    if a["frozen"]:
        frozen: tuple[str, ...] = ("*",)
    else:
        frozen = tuple(name for key, name in (("gamma", "weight"), ("beta", "bias")) if not p[key].trainable)
    comment = None
    if not a["center"] or not a["scale"]:
        missing = [w for w, on in (("beta (center=False)", a["center"]), ("gamma (scale=False)", a["scale"])) if not on]
        comment = f"Keras has no {' and no '.join(missing)}: kept at its neutral value and frozen."
    mod = b.submodule(node, ctor, state, frozen=frozen, comment=comment)
    if not fold_into_producer(node, b, mod):
        b.emit(node.outputs[0], f"{mod}({b.var(node.inputs[0])})")


CHANNEL_AFFINE_HELPER = '''
class ChannelAffine(nn.Module):
    """x * weight + bias per channel: a BatchNormalization whose moving statistics the exporter
    folded into its scale and offset (they cannot be recovered, so there is nothing to update)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight + self.bias
'''


@register_converter("channel_affine")
def convert_channel_affine(node: Node, b: ModuleBuilder) -> None:
    x = node.inputs[0]
    cls = b.helper("ChannelAffine", CHANNEL_AFFINE_HELPER)
    # The vectors broadcast along the channel axis wherever the layout put it: (C,) or (C, 1, 1).
    shape = [1] * (x.rank - x.torch_axis(-1))
    shape[0] = node.attrs["channels"]
    state = {key: state_array(node.params[key].array.reshape(shape)) for key in ("weight", "bias")}
    frozen = tuple(key for key in ("weight", "bias") if not node.params[key].trainable)
    mod = b.submodule(node, call(cls, tuple(shape)), state, frozen=frozen)
    b.emit(node.outputs[0], f"{mod}({b.var(x)})")


AXES_LN_HELPER = '''
class KerasLayerNorm(nn.Module):
    """Keras LayerNormalization over axes that are not the trailing ones (which
    nn.LayerNorm cannot express): statistics over `dims`, parameters broadcast."""

    def __init__(self, dims: tuple[int, ...], shape: tuple[int, ...], eps: float, scale: bool, center: bool) -> None:
        super().__init__()
        self.dims = dims
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(shape)) if scale else None
        self.bias = nn.Parameter(torch.zeros(shape)) if center else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x, dim=self.dims, correction=0, keepdim=True)
        x = (x - mean) * torch.rsqrt(var + self.eps)
        if self.weight is not None:
            x = x * self.weight
        if self.bias is not None:
            x = x + self.bias
        return x
'''


def _convert_axes_layer_norm(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    cls = b.helper("KerasLayerNorm", AXES_LN_HELPER)
    state = {}
    if "gamma" in node.params:
        state["weight"] = state_array(node.params["gamma"].array)
    if "beta" in node.params:
        state["bias"] = state_array(node.params["beta"].array)
    frozen = tuple(n for k, n in (("gamma", "weight"), ("beta", "bias")) if k in node.params and not node.params[k].trainable)
    ctor = call(cls, dims=tuple(a["axes"]), shape=tuple(a["normalized_shape"]), eps=a["eps"],
                scale="gamma" in node.params, center="beta" in node.params)
    mod = b.submodule(node, ctor, state, frozen=frozen)
    b.emit(node.outputs[0], f"{mod}({b.var(node.inputs[0])})")


@register_converter("layer_norm")
def convert_layer_norm(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    if "axes" in a:
        _convert_axes_layer_norm(node, b)
        return
    shape = a["normalized_shape"]
    kwargs: dict = {"eps": a["eps"]}
    state = {}
    if "gamma" in node.params:
        state["weight"] = state_array(node.params["gamma"].array)
    if "beta" in node.params:
        state["bias"] = state_array(node.params["beta"].array)
    if not state:
        kwargs["elementwise_affine"] = False
    elif "bias" not in state:
        kwargs["bias"] = False
    elif "weight" not in state:
        state["weight"] = np.ones(shape, np.float32)
    frozen = tuple(n for k, n in (("gamma", "weight"), ("beta", "bias")) if k in node.params and not node.params[k].trainable)
    if state and "gamma" not in node.params:
        frozen += ("weight",)
    ctor = call("nn.LayerNorm", shape[0] if len(shape) == 1 else shape, **kwargs)
    mod = b.submodule(node, ctor, state, frozen=frozen)
    b.emit(node.outputs[0], f"{mod}({b.var(node.inputs[0])})")


@register_converter("group_norm")
def convert_group_norm(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    p = node.params
    ctor = call("nn.GroupNorm", a["groups"], a["num_channels"], eps=a["eps"])
    state = {"weight": state_array(p["gamma"].array), "bias": state_array(p["beta"].array)}
    frozen = tuple(name for key, name in (("gamma", "weight"), ("beta", "bias")) if not p[key].trainable)
    comment = None
    if not a["center"] or not a["scale"]:
        missing = [w for w, on in (("beta (center=False)", a["center"]), ("gamma (scale=False)", a["scale"])) if not on]
        comment = f"Keras has no {' and no '.join(missing)}: kept at its neutral value and frozen."
    mod = b.submodule(node, ctor, state, frozen=frozen, comment=comment)
    b.emit(node.outputs[0], f"{mod}({b.var(node.inputs[0])})")

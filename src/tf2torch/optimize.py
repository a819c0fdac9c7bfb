"""`optimize_for_inference`: an explicit, opt-in deployment transform of a converted module.

The generated model.py keeps every BatchNorm as its own layer so the module trains exactly
like the Keras model. For deployment, each BatchNorm (in eval mode: a fixed per-channel
affine map) can be folded into the convolution or linear layer that feeds it, saving one
pass over every feature map. This module does that, and nothing else behind the user's back:

    model = load_model()                                  # trainable, BatchNorm unfused
    fast = tf2torch.optimize_for_inference(model)         # inference-only copy

The result is a `torch.fx.GraphModule` (a copy; the argument is left untouched), in eval mode,
with `requires_grad=False` everywhere, and by default in channels_last memory format (it still
takes ordinary NCHW tensors and returns ordinary results).
"""

from __future__ import annotations

import copy
import inspect
import sys
import types

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class _LeafTracer(fx.Tracer):
    """Traces the top-level forward and the repeated-block classes of a structured model.py
    (containers and classes documented as "Keras blocks ...": plain statement lists, so their
    convolutions and BatchNorms fold too); every other submodule call stays one
    `call_module` node, so helper modules with data-dependent Python (Keras-specific
    BatchNorm, padding) are kept as they are."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        if isinstance(module, (nn.Sequential, nn.ModuleList)):
            return False
        return not (type(module).__doc__ or "").startswith("Keras blocks ")


def _module_functions(module: nn.Module) -> tuple:
    """Plain functions defined in the model's own file (e.g. `pad_same`): called, not traced.
    Functions that take modules (`conv2d_bn(self.conv, self.bn, x)`) are traced through, so
    that the modules they call stay `call_module` nodes that can be folded here."""
    source = sys.modules.get(type(module).__module__)
    if source is None:
        return ()
    return tuple(
        value for value in vars(source).values()
        if isinstance(value, types.FunctionType) and value.__module__ == source.__name__
        and not _takes_modules(value)
    )


def _takes_modules(function: types.FunctionType) -> bool:
    annotations = inspect.get_annotations(function)
    return any(isinstance(a, type) and issubclass(a, nn.Module) for a in annotations.values())


def _trace(module: nn.Module) -> fx.GraphModule:
    tracer = _LeafTracer(autowrap_functions=_module_functions(module))
    graph = tracer.trace(module)
    return fx.GraphModule(module, graph, type(module).__name__)


def _folds_into(producer: nn.Module, bn: nn.Module) -> bool:
    if isinstance(producer, _CONVS):
        # A masked kernel (MaskedConv) is weight * mask on every call: not a plain convolution.
        return (producer.out_channels == bn.num_features and producer.padding_mode == "zeros"
                and "mask" not in producer._buffers)
    if isinstance(producer, nn.Linear):
        return isinstance(bn, nn.BatchNorm1d) and producer.out_features == bn.num_features
    return False


def fuse_batch_norms(graph_module: fx.GraphModule) -> int:
    """Fold every eval-mode BatchNorm whose input is a convolution / linear layer used by that
    BatchNorm alone. Returns how many were folded."""
    modules = dict(graph_module.named_modules())
    fused = 0
    for node in list(graph_module.graph.nodes):
        if node.op != "call_module" or not isinstance(modules.get(node.target), _BATCH_NORMS):
            continue
        bn = modules[node.target]
        if not bn.track_running_stats or bn.running_mean is None or len(node.args) != 1 or node.kwargs:
            continue
        producer_node = node.args[0]
        if not isinstance(producer_node, fx.Node) or producer_node.op != "call_module" or len(producer_node.users) != 1:
            continue
        producer = modules[producer_node.target]
        if not _folds_into(producer, bn):
            continue
        fold = fuse_conv_bn_eval if isinstance(producer, _CONVS) else fuse_linear_bn_eval
        _set_submodule(graph_module, producer_node.target, fold(producer.eval(), bn.eval()))
        node.replace_all_uses_with(producer_node)
        graph_module.graph.erase_node(node)
        fused += 1
    graph_module.graph.eliminate_dead_code()
    graph_module.delete_all_unused_submodules()
    graph_module.recompile()
    return fused


def _set_submodule(root: nn.Module, target: str, module: nn.Module) -> None:
    parent_name, _, name = target.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, name, module)


def optimize_for_inference(module: nn.Module, *, channels_last: bool = True, onednn_linear: bool = True) -> fx.GraphModule:
    """An inference-only copy of a converted module: BatchNorm folded into the preceding
    convolution (or linear layer), by default weights in channels_last memory format, and by
    default every nn.Linear computed by oneDNN (see OneDNNLinear).

    Not for training: the folded module has no BatchNorm statistics left to update. Outputs
    match the unfused module's eval-mode outputs up to fp32 rounding.
    """
    module = copy.deepcopy(module).eval()
    graph_module = _trace(module)
    fuse_batch_norms(graph_module)
    graph_module.requires_grad_(False)
    if channels_last:
        _to_channels_last(graph_module)
    if onednn_linear and OneDNNLinear.available():
        _replace_linears(graph_module)
        _fuse_linear_gelu(graph_module)
    return graph_module.eval()


class OneDNNLinear(nn.Module):
    """nn.Linear's inference computed by oneDNN (the library torch already uses for CPU
    convolutions) instead of the BLAS behind torch.matmul: MKL's sgemm takes a slow path on
    non-Intel CPUs (measured 2x slower than oneDNN on an AMD EPYC, bench/bench_bert.py).
    Falls back to F.linear where oneDNN does not apply (not float32 on CPU, 1-D input)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = nn.Parameter(linear.weight.detach().contiguous(), requires_grad=False)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach(), requires_grad=False)
        self.gelu: str | None = None  # "none" / "tanh": a GELU fused into the same oneDNN call

    @staticmethod
    def available() -> bool:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.dtype != torch.float32 or x.device.type != "cpu" or self.weight.dtype != torch.float32:
            y = nn.functional.linear(x, self.weight, self.bias)
            return y if self.gelu is None else nn.functional.gelu(y, approximate=self.gelu)
        if self.gelu is not None:
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "gelu", [], self.gelu)
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        gelu = "" if self.gelu is None else f", gelu={self.gelu!r}"
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}{gelu}"


def _fuse_linear_gelu(graph_module: fx.GraphModule) -> None:
    """`F.gelu(linear(x))` in the top-level forward -> one OneDNNLinear call with a GELU
    post-op (transformer feed-forward blocks): one pass over the activation less."""
    modules = dict(graph_module.named_modules())
    for node in list(graph_module.graph.nodes):
        if node.op != "call_function" or node.target is not nn.functional.gelu or len(node.args) != 1:
            continue
        producer = node.args[0]
        approximate = node.kwargs.get("approximate", "none")
        if (not isinstance(producer, fx.Node) or producer.op != "call_module" or len(producer.users) != 1
                or not isinstance(modules.get(producer.target), OneDNNLinear) or set(node.kwargs) - {"approximate"}):
            continue
        modules[producer.target].gelu = approximate
        node.replace_all_uses_with(producer)
        graph_module.graph.erase_node(node)
    graph_module.recompile()


def _replace_linears(root: nn.Module) -> None:
    """Every nn.Linear, also inside helper modules (attention), by attribute."""
    for name, child in list(root.named_modules()):
        if type(child) is nn.Linear:
            _set_submodule(root, name, OneDNNLinear(child))


def _to_channels_last(module: nn.Module) -> None:
    """4-D weights in channels_last (NHWC in memory): oneDNN's fast path for 2-D convolutions.
    Inputs may stay NCHW-contiguous; the first convolution switches the layout."""
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            if tensor.dim() == 4:
                tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)

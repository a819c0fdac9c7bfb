"""Eval-mode BatchNorm folded into the convolution or Dense layer that feeds it.

In eval mode a BatchNorm is a fixed per-channel affine map, so `bn(conv(x))` equals one
convolution with scaled weights and a shifted bias: one pass over the feature map instead of
two (TensorFlow's graph optimizer does the same). The generated module keeps both layers, their
parameters and the state dict as they are; only the call becomes

    x = conv_bn(self.conv1, self.bn1, x)

which runs `self.bn1(self.conv1(x))` in training mode (and whenever something must see the two
modules run: torch.fx, torch.compile / torch.export, forward hooks) and otherwise a single
convolution with folded weights, cached and recomputed when a parameter or statistic changes.
"""

from __future__ import annotations

import re

from tf2torch.codegen.program import ModuleBuilder, Statement
from tf2torch.ir import Node

FOLD_HELPERS = '''
def folds_batch_norm(layer: nn.Module, bn: nn.Module, x: torch.Tensor) -> bool:
    """May `bn(layer(x))` run as one layer? In eval mode, eagerly (torch.fx, compile, export and
    jit must see both layers) and with no hooks waiting for either (activity regularizers)."""
    if layer.training or bn.training or isinstance(x, torch.fx.Proxy) or torch.jit.is_tracing():
        return False
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return False
    return not any(m._forward_hooks or m._forward_pre_hooks for m in (layer, bn))


def folded_weights(layer: nn.Module, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """`layer`'s weight and bias with the eval-mode BatchNorm `bn` applied. Without autograd
    they are cached on `bn` while every tensor keeps its memory and version (an optimizer step,
    load_state_dict, .to() change them); with it recomputed, so gradients reach both layers."""
    tensors = [t for t in (layer.weight, layer.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var) if t is not None]
    cache = not torch.is_grad_enabled() and not any(t.is_inference() for t in tensors)
    key = [(t.data_ptr(), t._version) for t in tensors] if cache else None
    cached = bn.__dict__.get("folded")
    if not cache or cached is None or cached[0] != key:
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        bias = -bn.running_mean if layer.bias is None else layer.bias - bn.running_mean
        weight = layer.weight * scale.reshape([-1] + [1] * (layer.weight.dim() - 1))
        # Holding the source tensors keeps their memory from being reused at the same address.
        cached = (key, weight, bias * scale + bn.bias, [t.detach() for t in tensors] if cache else None)
        if cache:
            bn.__dict__["folded"] = cached
    return cached[1], cached[2]
'''

CONV_BN_HELPER = '''
def conv_bn(conv: nn.Module, bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`bn(conv(x))`; in eval mode one convolution with the BatchNorm folded into its weights."""
    if not folds_batch_norm(conv, bn, x):
        return bn(conv(x))
    weight, bias = folded_weights(conv, bn)
    return conv._conv_forward(x, weight, bias)  # what conv.forward runs, with other weights
'''

LINEAR_BN_HELPER = '''
def linear_bn(linear: nn.Linear, bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """`bn(linear(x))`; in eval mode one linear layer with the BatchNorm folded into its weights."""
    if not folds_batch_norm(linear, bn, x):
        return bn(linear(x))
    weight, bias = folded_weights(linear, bn)
    return F.linear(x, weight, bias)
'''

_MODULE_CALL = re.compile(r"(self\.\w+)\((\w+)\)")


def fold_into_producer(node: Node, b: ModuleBuilder, bn_module: str) -> bool:
    """Emit batch_norm `node` (its module already declared as `bn_module`) as one folding
    call together with the statement just emitted for the conv / dense that feeds it, when
    that statement is a plain `y = self.layer(x)` and the BatchNorm is its only reader.
    Returns False (nothing emitted) otherwise."""
    value = node.inputs[0]
    producer = value.producer
    if producer is None or not b.statements or not b.overwritable(value):
        return False
    if producer.op == "conv" and value.rank == producer.attrs["rank"] + 2 and "kernel_mask" not in producer.params:
        name, helper = "conv_bn", CONV_BN_HELPER
    elif producer.op == "dense" and value.rank == 2:
        name, helper = "linear_bn", LINEAR_BN_HELPER
    else:
        return False
    layer_statement = b.statements[-1]
    call = _MODULE_CALL.fullmatch(layer_statement.expr)
    if call is None or layer_statement.values != (value,) or layer_statement.operator != "=":
        return False
    layer_module, x = call.groups()
    if name == "linear_bn":
        b.use_functional()  # F.linear; conv_bn calls the convolution's own _conv_forward
    b.helper("folds_batch_norm", FOLD_HELPERS)
    b.helper(name, helper)
    output = node.outputs[0]
    bn_statement = Statement([b.var(output)], f"{bn_module}({b.var(value)})", None, (output,))
    b.statements[-1] = Statement(
        [b.var(output)], f"{name}({layer_module}, {bn_module}, {x})", layer_statement.comment, (output,),
        unfused=(layer_statement, bn_statement),
    )
    return True

"""MUL by a per-channel constant, then ADD of one -> one per-channel affine op.

The TFLite converter folds a BatchNormalization that follows a convolution into that
convolution's kernel and bias. One that follows anything else (an add or a concatenation, as
in DenseNet or ResNetV2's pre-activation) survives as `x * scale + offset` with constant
vectors: its moving mean and variance are folded into those two and cannot be recovered.
Lowered as one op, it becomes one module with a trainable scale and offset per channel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tf2torch.frontends.tflite import tf_graph
from tf2torch.frontends.tflite.reader import TFLiteOperator

if TYPE_CHECKING:
    from tf2torch.frontends.tflite.lowering import Lowering

OP_TYPE = "TFLiteChannelAffine"


def lower_channel_affine(low: Lowering, mul: TFLiteOperator) -> bool:
    """Lower `mul` and the ADD it feeds as one TFLiteChannelAffine op (x, scale, offset), the
    ADD's fused activation after it; False (nothing lowered) if they are not that pattern."""
    if low.keep_quantization or _fused_activation(mul) != 0 or mul.outputs[0] in low.model.outputs:
        return False  # --keep-quantization rounds MUL's output: the two stay separate ops
    consumers = low.consumers.get(mul.outputs[0], [])
    if len(consumers) != 1 or consumers[0].op_type != "ADD":
        return False
    add = consumers[0]
    x, scale = _tensor_and_vector(low, mul.inputs[:2])
    product, offset = _tensor_and_vector(low, add.inputs[:2])
    if x is None or product != mul.outputs[0] or scale is None or offset is None:
        return False
    channels = low.model.tensors[x].shape[-1] if len(low.model.tensors[x].shape) >= 2 else None
    if channels is None or any(_vector(low, i, channels) is None for i in (scale, offset)):
        return False
    low._op = add  # the op writes ADD's output tensor, then ADD's activation
    inputs = [low.tensor(x), _constant(low, scale, channels), _constant(low, offset, channels)]
    low.emit_fused(OP_TYPE, inputs, {}, None, _fused_activation(add))
    low.absorbed.add(add.index)
    return True


def _fused_activation(op: TFLiteOperator) -> int:
    return int(op.options.FusedActivationFunction()) if op.options is not None else 0


def _tensor_and_vector(low: Lowering, inputs: list[int]) -> tuple[int | None, int | None]:
    """(the run-time input, the constant input) of a binary operator, or Nones."""
    data = [low.model.tensors[i].data for i in inputs]
    if len(inputs) != 2 or (data[0] is None) == (data[1] is None):
        return None, None
    return (inputs[0], inputs[1]) if data[1] is not None else (inputs[1], inputs[0])


def _vector(low: Lowering, index: int, channels: int) -> np.ndarray | None:
    """The constant as a (channels,) float vector, if it is one broadcast along the last axis."""
    data = low.model.tensors[index].data
    if data is None or data.dtype.kind != "f" or data.size != channels or data.shape[-1:] != (channels,):
        return None
    return data.reshape(channels).astype(np.float32)


def _constant(low: Lowering, index: int, channels: int) -> tf_graph.Tensor:
    name = low.tensor(index).name  # 'model/batch_normalization/batchnorm/mul'
    return tf_graph.const(name, _vector(low, index, channels), "float32")

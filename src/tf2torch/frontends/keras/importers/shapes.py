"""Output-size arithmetic exactly as Keras/TensorFlow compute it."""

from __future__ import annotations

import math


def conv_output_length(size: int | None, kernel: int, stride: int, dilation: int, padding: str) -> int | None:
    if size is None:
        return None
    k_eff = (kernel - 1) * dilation + 1
    if padding == "same" or padding == "causal":
        return math.ceil(size / stride)
    return (size - k_eff) // stride + 1


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF 'same': the extra cell (odd total) goes at the end."""
    k_eff = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + k_eff - size, 0)
    return total // 2, total - total // 2


def conv_transpose_output_length(
    size: int | None, kernel: int, stride: int, dilation: int, padding: str, output_padding: int | None
) -> int | None:
    if size is None:
        return None
    k_eff = (kernel - 1) * dilation + 1
    if output_padding is None:
        if padding == "valid":
            return size * stride + max(k_eff - stride, 0)
        return size * stride
    if padding == "same":
        return (size - 1) * stride + k_eff % 2 + output_padding  # keras' formula for 'same' with op
    return (size - 1) * stride + k_eff + output_padding


def pool_output_length(size: int | None, pool: int, stride: int, padding: str) -> int | None:
    if size is None:
        return None
    if padding == "same":
        return math.ceil(size / stride)
    return (size - pool) // stride + 1

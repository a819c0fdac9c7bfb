"""Explicit registry of ONNX op importers: ONNX op type -> function(OnnxContext) -> list of outputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ONNX_OP_IMPORTERS: dict[str, Callable[[Any], list]] = {}


def register_onnx_op(*op_types: str) -> Callable:
    def decorate(fn: Callable) -> Callable:
        for op_type in op_types:
            if op_type in ONNX_OP_IMPORTERS:
                raise ValueError(f"ONNX op {op_type!r} has two importers")
            ONNX_OP_IMPORTERS[op_type] = fn
        return fn

    return decorate


def is_supported_onnx_op(op_type: str) -> bool:
    from tf2torch.frontends.onnx import ops  # noqa: F401  (fills ONNX_OP_IMPORTERS)

    return op_type in ONNX_OP_IMPORTERS

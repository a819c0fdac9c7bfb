"""Explicit registry of TF op importers: TF op type -> function(OpContext) -> list of TFVals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TF_OP_IMPORTERS: dict[str, Callable[[Any], list]] = {}


def register_tf_op(*op_types: str) -> Callable:
    def decorate(fn: Callable) -> Callable:
        for op_type in op_types:
            if op_type in TF_OP_IMPORTERS:
                raise ValueError(f"TF op {op_type!r} has two importers")
            TF_OP_IMPORTERS[op_type] = fn
        return fn

    return decorate


def is_supported_op(op_type: str) -> bool:
    from tf2torch.frontends.tf import ops  # noqa: F401  (fills TF_OP_IMPORTERS)

    return op_type in TF_OP_IMPORTERS

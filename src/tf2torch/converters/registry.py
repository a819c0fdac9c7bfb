"""Explicit registry of converters: IR op -> function writing PyTorch code."""

from __future__ import annotations

from collections.abc import Callable

from tf2torch.codegen.program import ModuleBuilder
from tf2torch.ir import Node

ConverterFn = Callable[[Node, ModuleBuilder], None]

CONVERTERS: dict[str, ConverterFn] = {}


def register_converter(*ops: str) -> Callable[[ConverterFn], ConverterFn]:
    def decorate(fn: ConverterFn) -> ConverterFn:
        for op in ops:
            if op in CONVERTERS:
                raise ValueError(f"IR op {op!r} has two converters")
            CONVERTERS[op] = fn
        return fn

    return decorate

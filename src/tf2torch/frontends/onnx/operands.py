"""Inputs of tf_binary-like IR nodes: run-time values, scalars, and initializers (parameters)."""

from __future__ import annotations

import numpy as np

from tf2torch.frontends.onnx.importer import OnnxContext, OnnxVal
from tf2torch.ir import Param, Value


class Operands:
    """Inputs of tf_binary-like nodes: run-time values, scalars, and initializers (parameters)."""

    def __init__(self, ctx: OnnxContext) -> None:
        self.ctx = ctx
        self.values: list[Value] = []
        self.params: dict[str, Param] = {}
        self.var_names: dict[str, str] = {}

    def operand(self, x: OnnxVal) -> tuple:
        if isinstance(x, Value):
            if x not in self.values:
                self.values.append(x)
            return ("value", self.values.index(x))
        if x is None:
            raise self.ctx.unsupported("an absent input")
        if x.ndim == 0 or (x.size == 1 and x.dtype.kind != "f"):
            return ("scalar", scalar(x.reshape(())))
        key = f"p{len(self.params)}"
        self.params[key] = Param(np.asarray(x), "onnx", x.dtype.kind == "f")
        self.var_names[key] = f"{self.ctx.name}/const{len(self.params) - 1}"
        return ("tensor", ("param", key))

    def add(self, op: str, attrs: dict) -> object:
        return self.ctx.add(op, self.values, dict(attrs, var_names=self.var_names), self.params)


def scalar(x: np.ndarray) -> float | int | bool:
    if x.dtype == np.float32:
        return float(str(np.float32(x)))
    return x.item()

"""Operands of generated expressions: run-time values, scalars, parameter / constant
expressions, and run-time dimensions (`Sym`s).

A node built here lists the values it computes with first, then the values it reads only
the shape of (`attrs["shape_inputs"]` counts those): the layout pass leaves the latter in
whatever layout they have, since a dimension is read through `Value.torch_axis`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np

from tf2torch.frontends.tf.values import Dim, DimExpr, Item, ParamExpr, ShapeVec, Sym, TFVal, VarRef
from tf2torch.ir import Node, Param, TensorSpec, Value

if TYPE_CHECKING:
    from tf2torch.frontends.tf.context import OpContext


class OperandBuilder:
    """Turns TFVals into operand descriptions (attrs) and params for tf_binary-like nodes."""

    def __init__(self, ctx: OpContext) -> None:
        self.ctx = ctx
        self.values: list[Value] = []
        self.shape_values: list[Value] = []
        self.params: dict[str, Param] = {}
        self.var_names: dict[str, str] = {}
        self._seen: dict[int, str] = {}

    def operand(self, x: TFVal) -> tuple:
        if isinstance(x, ShapeVec):
            if x.static:
                x = self.ctx.const_or_fail(x)
            elif x.scalar:
                return ("sym", self.sym(x.items[0]))
            else:
                x = materialize_shape(self.ctx, x)
        if isinstance(x, Value):
            return ("value", self.value(x))
        if isinstance(x, np.ndarray) and x.size == 1 and x.ndim == 0:
            return ("scalar", scalar(x))
        return ("tensor", self._tree(x))

    def value(self, x: Value) -> int:
        """The index of a run-time input of the node."""
        if x not in self.values:
            self.values.append(x)
        return self.values.index(x)

    def sym(self, s: Sym) -> Any:
        """A run-time dimension, encoded for attrs (input indices are fixed in `add`)."""
        if isinstance(s, Dim):
            if s.value not in self.shape_values:
                self.shape_values.append(s.value)
            return ("dim", _Pending(s.value), s.axis)
        if isinstance(s, Item):  # the tensor's data is read: a computed input
            return ("item", self.value(s.value))
        if isinstance(s, DimExpr):
            return ("fn", s.fn, tuple(self.sym(a) for a in s.args))
        if isinstance(s, float):
            return float(str(np.float32(s))) if np.float32(s) == s else s
        return int(s)

    def syms(self, items: list[Sym]) -> tuple:
        return tuple(self.sym(s) for s in items)

    def _tree(self, x: Any) -> tuple:
        if isinstance(x, ParamExpr):
            return ("fn", x.fn, [self._tree(a) for a in x.args])
        if isinstance(x, np.ndarray) and x.ndim == 0:
            return ("scalar", scalar(x))
        key = self._seen.get(id(x))
        if key is None:
            key = f"p{len(self.params)}"
            self._seen[id(x)] = key
            if isinstance(x, VarRef):
                self.params[key] = Param(np.asarray(x.array), "tf", x.trainable)
                # A name other variables share (Keras 3's `net/kernel`) says less than the op's scope.
                leaf = x.name.rsplit("/", 1)[-1]
                self.var_names[key] = f"{self.ctx.name}/{leaf}" if x.ambiguous else x.name
            else:
                arr = np.asarray(x)
                self.params[key] = Param(arr, "tf", False)
                # Named after its op without TensorFlow's counter (`bn/batchnorm/mul_1` -> `bn/batchnorm/mul`).
                index = len(self.params) - 1
                self.var_names[key] = re.sub(r"_\d+$", "", self.ctx.name) + (str(index) if index else "")
        return ("param", key)

    def add(self, op: str, attrs: dict, spec: TensorSpec | list[TensorSpec] | None = None) -> Node:
        extra = [v for v in self.shape_values if v not in self.values]
        inputs = self.values + extra
        index = {id(v): i for i, v in enumerate(inputs)}
        attrs = _resolve(dict(attrs, var_names=self.var_names), index)
        if extra:
            attrs["shape_inputs"] = len(extra)
        specs = spec if isinstance(spec, list) else ([spec] if spec is not None else None)
        return self.ctx.add(op, inputs, specs, attrs, self.params)


class _Pending:
    """A value a dimension is read from, until its input index is known."""

    def __init__(self, value: Value) -> None:
        self.value = value


def _resolve(obj: Any, index: dict[int, int]) -> Any:
    if isinstance(obj, _Pending):
        return index[id(obj.value)]
    if isinstance(obj, tuple):
        return tuple(_resolve(o, index) for o in obj)
    if isinstance(obj, list):
        return [_resolve(o, index) for o in obj]
    if isinstance(obj, dict):
        return {k: _resolve(v, index) for k, v in obj.items()}
    return obj


def scalar(x: np.ndarray) -> float | int | bool:
    """A Python scalar; float32 constants as their shortest float32 text (1e-3, not 0.0010000000474974513)."""
    if x.dtype == np.float32:
        short = float(str(np.float32(x)))
        # float32's largest values print as text that, read back, exceeds float32 (3.4028235e+38)
        return short if abs(short) <= float(np.finfo(np.float32).max) else float(x)
    return x.item()


def materialize_shape(ctx: OpContext, vec: ShapeVec) -> Value:
    """A run-time shape value used as a tensor (e.g. multiplied with one): `torch.tensor([...])`."""
    ops = OperandBuilder(ctx)
    items = ops.syms(vec.items)
    shape = () if vec.scalar else (len(vec.items),)
    spec = TensorSpec(shape, vec.dtype)
    return ops.add("tf_shape_tensor", {"items": items, "scalar": vec.scalar, "dtype": vec.dtype}, spec).outputs[0]

"""What a TF tensor turns into while a graph is imported.

- an IR `Value` (a tensor computed at run time),
- a numpy array (a constant, folded at conversion time),
- a `VarRef` (a TF variable read by the graph: becomes a parameter or buffer),
- a `ParamExpr` (arithmetic on variables and constants only, e.g. Keras 3's BatchNorm
  `rsqrt(moving_variance + eps) * gamma`), kept symbolic so parameters keep training,
- a `ShapeVec` (a shape vector, or one dimension, whose entries may be run-time
  dimensions of a Value, run-time int scalars and arithmetic on them: `Dim` / `Item` /
  `DimExpr`, see `tf/symbolic.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tf2torch.ir import Value


@dataclass(eq=False)
class VarRef:
    name: str  # the TF variable path, e.g. "dense/kernel"
    array: np.ndarray
    trainable: bool
    ambiguous: bool = False  # another variable has the same name: name layers by op scope


@dataclass(eq=False)
class ParamExpr:
    fn: str  # a tf_binary / tf_unary function name
    args: list[Any]  # VarRef | ParamExpr | np.ndarray

    @property
    def array(self) -> np.ndarray:
        from tf2torch.frontends.tf.ops.math import numpy_apply

        return numpy_apply(self.fn, [a.array if isinstance(a, (VarRef, ParamExpr)) else a for a in self.args])

    def leaves(self) -> list[VarRef]:
        out: list[VarRef] = []
        for a in self.args:
            if isinstance(a, VarRef):
                out.append(a)
            elif isinstance(a, ParamExpr):
                out.extend(a.leaves())
        return out


@dataclass(frozen=True, eq=False)
class Dim:
    """Dimension `axis` (source layout) of `value`, known only at run time."""

    value: Value
    axis: int

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dim) and other.value is self.value and other.axis == self.axis

    def __hash__(self) -> int:
        return hash((id(self.value), self.axis))


@dataclass(frozen=True, eq=False)
class Item:
    """The value of a 0-d integer tensor computed at run time, used as a size (`int(t)`)."""

    value: Value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Item) and other.value is self.value

    def __hash__(self) -> int:
        return hash(id(self.value))


@dataclass(frozen=True)
class DimExpr:
    """Arithmetic on dimensions: fn is add, sub, mul, floordiv, mod, div, maximum or minimum."""

    fn: str
    args: tuple[Sym, ...]


Sym = int | float | Dim | Item | DimExpr  # one entry of a shape value


@dataclass(eq=False)
class ShapeVec:
    items: list[Sym]
    scalar: bool = False  # one dimension (a 0-d tensor) rather than a shape vector
    dtype: str = "int32"

    @property
    def static(self) -> bool:
        return all(isinstance(i, (int, float)) for i in self.items)


TFVal = Value | np.ndarray | VarRef | ParamExpr | ShapeVec | None


def is_param(x: Any) -> bool:
    return isinstance(x, (VarRef, ParamExpr))


def is_const(x: Any) -> bool:
    return isinstance(x, np.ndarray)

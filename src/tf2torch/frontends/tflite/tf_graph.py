"""A minimal stand-in for a tf.Graph: the ops, tensors and attributes the TF frontend's op
importers read (type, name, inputs, outputs, get_attr, shape, dtype, consumers). TFLite
operators are lowered onto it so that they are imported by the same code as TF ops."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Shape:
    dims: tuple[int | None, ...]

    @property
    def rank(self) -> int:
        return len(self.dims)

    def as_list(self) -> list[int | None]:
        return list(self.dims)

    def __len__(self) -> int:
        return len(self.dims)


@dataclass(frozen=True)
class DType:
    name: str


@dataclass(eq=False)
class Tensor:
    name: str
    shape: Shape
    dtype: DType
    op: Op | None = None
    value: np.ndarray | None = None  # a constant
    _consumers: list[Op] = field(default_factory=list)

    def consumers(self) -> list[Op]:
        return list(self._consumers)


@dataclass(eq=False)
class Op:
    type: str
    name: str
    inputs: list[Tensor]
    outputs: list[Tensor]
    attrs: dict[str, Any] = field(default_factory=dict)
    origin: str = ""  # the TFLite operator this op was lowered from, for error messages

    def get_attr(self, name: str) -> Any:
        if name not in self.attrs:
            raise ValueError(f"no attribute {name!r}")
        return self.attrs[name]


def tensor(name: str, shape: tuple[int | None, ...], dtype: str, value: np.ndarray | None = None) -> Tensor:
    t = Tensor(name, Shape(tuple(shape)), DType(dtype), value=value)
    if value is not None:
        t.op = Op("Const", name, [], [t])
    return t


def const(name: str, value: Any, dtype: str = "int32") -> Tensor:
    array = np.asarray(value, dtype=dtype)
    return tensor(name, array.shape, dtype, array)

"""What a TF op importer sees: the op, its inputs (already imported), and how to add IR nodes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tf2torch.errors import UnsupportedFeature
from tf2torch.frontends.tf.values import ParamExpr, ShapeVec, TFVal, VarRef
from tf2torch.ir import Node, Param, SourceRef, TensorSpec, Value

if TYPE_CHECKING:
    from tf2torch.frontends.tf.importer import GraphImporter


def dtype_name(dtype: Any) -> str:
    name = getattr(dtype, "name", str(dtype))
    return {"bool": "bool", "float64": "float64"}.get(name, name)


def spec_of(tensor: Any) -> TensorSpec:
    shape = tensor.shape
    dims = () if shape.rank is None else tuple(shape.as_list())
    return TensorSpec(dims, dtype_name(tensor.dtype))


def static_array(vec: ShapeVec) -> np.ndarray:
    """A shape value whose entries are all known, as the constant TensorFlow would compute."""
    array = np.asarray(vec.items, dtype=np.dtype(vec.dtype))
    return array.reshape(()) if vec.scalar else array


@dataclass
class OpContext:
    importer: GraphImporter
    op: Any  # tf.Operation
    inputs: list[TFVal]

    @property
    def type(self) -> str:
        return self.op.type

    @property
    def name(self) -> str:
        return self.importer.clean_name(self.op.name)

    @property
    def source(self) -> SourceRef:
        return SourceRef("tf", self.op.type, self.name)

    def attr(self, name: str, default: Any = None) -> Any:
        try:
            value = self.op.get_attr(name)
        except ValueError:
            return default
        return value.decode() if isinstance(value, bytes) else value

    def const(self, index: int) -> np.ndarray:
        value = self.inputs[index]
        if isinstance(value, ShapeVec) and value.static:
            return self.const_or_fail(value)
        if not isinstance(value, np.ndarray):
            raise self.unsupported(f"a run-time value as input {index} (only a constant is supported there)")
        return value

    def const_or_fail(self, vec: ShapeVec) -> np.ndarray:
        if not vec.static:
            raise self.unsupported("a run-time shape where a constant is needed")
        return static_array(vec)

    def is_value(self, index: int) -> bool:
        return isinstance(self.inputs[index], Value)

    def value(self, index: int) -> Value:
        value = self.inputs[index]
        if isinstance(value, ShapeVec) and not value.static:
            from tf2torch.frontends.tf.operands import materialize_shape

            value = materialize_shape(self, value)
        if not isinstance(value, Value):
            raise self.unsupported(f"a {type(value).__name__} as input {index} (a run-time tensor is expected)")
        return value

    def out_spec(self, index: int = 0) -> TensorSpec:
        if self.op.outputs[index].shape.rank is None:
            raise self.unsupported("an output of unknown rank here")
        return spec_of(self.op.outputs[index])

    def add(
        self, op: str, inputs: list[Value], output_specs: list[TensorSpec] | None = None,
        attrs: dict[str, Any] | None = None, params: dict[str, Param] | None = None, name: str | None = None,
    ) -> Node:
        specs = output_specs if output_specs is not None else [self.out_spec(i) for i in range(len(self.op.outputs))]
        source = SourceRef("tf", self.op.type, name or self.name)
        node = self.importer.graph.add_node(op, inputs, specs, source, attrs, params)
        return node

    def param(self, value: VarRef | np.ndarray, layout: str) -> Param:
        if isinstance(value, VarRef):
            return Param(np.asarray(value.array), layout, value.trainable)
        if isinstance(value, ParamExpr):
            raise self.unsupported("arithmetic on variables feeding a weight")
        return Param(np.asarray(value), layout, self.importer.const_weights_trainable)

    def layer_name(self, var: VarRef | None) -> str:
        """The name of the layer a weight op belongs to: its variable's path without the last
        part ('dense/kernel' -> 'dense'), else the op's name scope; unique per weight."""
        if var is not None and not var.ambiguous:
            base = var.name.rsplit("/", 1)[0] if "/" in var.name else var.name
        else:
            base = self.name.rsplit("/", 1)[0] if "/" in self.name else self.name
            base = base.removesuffix("/batchnorm").removesuffix("/tensordot")  # TF helpers' scopes
        owner = var.name if var is not None else self.op.name
        return self.importer.claim_name(base, owner)

    def consumers(self, index: int = 0) -> int:
        return self.importer.consumer_count(self.op.outputs[index])

    def unsupported(self, what: str) -> UnsupportedFeature:
        return UnsupportedFeature(f"{self.importer.file}: TF op {self.op.name!r} ({self.op.type}): {what} is not supported yet.")

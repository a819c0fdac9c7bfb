"""The framework-neutral intermediate representation."""

from tf2torch.ir.graph import Graph, Node, Param, SourceRef, TensorSpec, Value

__all__ = ["Graph", "Node", "Param", "SourceRef", "TensorSpec", "Value"]

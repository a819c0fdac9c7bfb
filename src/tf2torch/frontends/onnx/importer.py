"""Walk an ONNX graph node by node into the IR.

ONNX tensors are channels-first already, so the IR graph is marked `source_format="onnx"` and
the layout pass leaves it as it is. Initializers feeding weight slots become trainable
parameters; other constants are folded where an importer needs their value.
"""

from __future__ import annotations

import collections
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tf2torch.errors import ConversionError, UnsupportedFeature, unsupported_ops_message
from tf2torch.frontends.onnx.registry import ONNX_OP_IMPORTERS
from tf2torch.ir import Graph, Node, Param, SourceRef, TensorSpec, Value

ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool", 10: "float16",
               11: "float64"}



@dataclass
class ShapeVec:
    """A run-time shape (from `Shape`) or part of it: each item a static int or ("dim", value, axis),
    the size of `value`'s axis, known only when the model runs. `scalar` for a single 0-d item."""

    items: list
    scalar: bool = False


@dataclass
class Filled:
    """A tensor of one repeated constant whose shape is known only at run time (`Expand` of a
    scalar to a `Shape`-derived size): tf2onnx's zero initial states of recurrent ops."""

    value: float
    shape: ShapeVec


OnnxVal = Value | np.ndarray | ShapeVec | Filled | None


class UnsupportedOnnxOps(ConversionError):
    """ONNX op types without an importer: every one at once, with a count and an example node."""

    def __init__(self, source: str, ops: dict[str, list[str]]) -> None:
        self.ops = ops
        message = unsupported_ops_message(source, ops, "ONNX op")
        if "If" in ops:
            message += ("\nIf is control flow (of the Loops, only those of Keras recurrent layers are folded into "
                        "modules). Convert the Keras model itself (tf2torch convert model.keras).")
        super().__init__(message)


def symbols_of(type_proto: Any) -> tuple[str | None, ...]:
    """The symbolic dim names (dim_param) of a tensor type: equal names are equal sizes."""
    return tuple(d.dim_param or None for d in type_proto.tensor_type.shape.dim)


def spec_of(type_proto: Any) -> TensorSpec:
    tensor = type_proto.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
    return TensorSpec(dims, ONNX_DTYPES.get(tensor.elem_type, "float32"))


def python_name(name: str) -> str:
    """An ONNX tensor/node name as an identifier-friendly layer name ('/conv1/Conv' -> 'conv1_conv')."""
    text = re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()
    return text or "t"


@dataclass
class OnnxContext:
    importer: OnnxImporter
    node: Any  # onnx.NodeProto
    inputs: list[OnnxVal]

    @property
    def type(self) -> str:
        return self.node.op_type

    @property
    def name(self) -> str:
        return self.importer.node_name(self.node)

    def attr(self, name: str, default: Any = None) -> Any:
        from onnx import helper

        for attribute in self.node.attribute:
            if attribute.name == name:
                value = helper.get_attribute_value(attribute)
                return value.decode() if isinstance(value, bytes) else value
        return default

    def value(self, index: int) -> Value:
        value = self.inputs[index] if index < len(self.inputs) else None
        if not isinstance(value, Value):
            raise self.unsupported(f"a constant as input {index} (a run-time tensor is expected)")
        return value

    def const(self, index: int) -> np.ndarray | None:
        """The constant at input `index` (None when the optional input is absent)."""
        if index >= len(self.inputs) or self.node.input[index] == "":
            return None
        value = self.inputs[index]
        if isinstance(value, ShapeVec) and all(isinstance(i, int) for i in value.items):
            array = np.asarray(value.items, np.int64)
            return array.reshape(()) if value.scalar else array
        if not isinstance(value, np.ndarray):
            raise self.unsupported(f"a run-time tensor as input {index} (only a constant is supported there)")
        return value

    def param(self, array: np.ndarray, layout: str, trainable: bool = True) -> Param:
        return Param(np.ascontiguousarray(array, dtype=np.float32), layout, trainable)

    def out_spec(self, index: int = 0) -> TensorSpec:
        return self.importer.specs.get(self.node.output[index], TensorSpec(()))

    def add(self, op: str, inputs: list[Value], attrs: dict | None = None, params: dict[str, Param] | None = None,
            specs: list[TensorSpec] | None = None) -> Node:
        specs = specs if specs is not None else [self.out_spec(i) for i in range(len(self.node.output))]
        source = SourceRef("onnx", self.type, self.name)
        return self.importer.graph.add_node(op, inputs, specs, source, attrs, params)

    def unsupported(self, what: str) -> UnsupportedFeature:
        return UnsupportedFeature(
            f"{self.importer.file}: ONNX node {self.node.name or self.node.output[0]!r} ({self.type}): "
            f"{what} is not supported yet.")


@dataclass
class OnnxImporter:
    graph: Graph
    file: str
    specs: dict[str, TensorSpec]
    op_counts: collections.Counter = field(default_factory=collections.Counter)
    unsupported: dict[str, list[str]] = field(default_factory=dict)
    opset: int = 13
    consumers: dict[str, list] = field(default_factory=dict)  # tensor name -> NodeProtos reading it
    initializers: dict[str, np.ndarray] = field(default_factory=dict)
    absorbed: set[int] = field(default_factory=set)  # id()s of nodes folded into an earlier module
    symbols: dict[str, tuple[str | None, ...]] = field(default_factory=dict)  # tensor name -> dim_params
    value_symbols: dict[int, tuple[str | None, ...]] = field(default_factory=dict)  # id(Value) -> dim_params
    symbol_sizes: dict[str, int] = field(default_factory=dict)  # dim_params a Reshape showed to be static
    env: dict[str, OnnxVal] = field(default_factory=dict)  # tensor name -> imported value (subgraphs read it)
    _names: set[str] = field(default_factory=set)

    def node_name(self, node: Any) -> str:
        """A unique readable name per ONNX node (its name, else its first output)."""
        key = id(node)
        cached = self.__dict__.setdefault("_node_names", {})
        if key not in cached:
            parts = (node.name or "").strip("/").split("/")
            if len(parts) > 1 and parts[0] == "StatefulPartitionedCall":
                parts = parts[1:]  # tf2onnx's SavedModel exports: the serving function's call, on every node
            if len(parts) > 1 and re.fullmatch(rf"{node.op_type}(_\d+)?", parts[-1]):
                parts = parts[:-1]  # PyTorch exports name nodes '/module/OpType': the module says it all
            if node.op_type == "Loop" and len(parts) > 1 and parts[-1] == "while_loop":
                parts = parts[:-1]  # tf2onnx's '<layer>/while_loop': the recurrent layer's name
            base = python_name("/".join(parts) or node.output[0])
            name, i = base, 1
            while name in self._names:
                i += 1
                name = f"{base}_{i}"
            self._names.add(name)
            cached[key] = name
        return cached[key]

    def run(self, model: Any) -> Graph:
        from onnx import numpy_helper

        from tf2torch.frontends.onnx import ops  # noqa: F401  (fills ONNX_OP_IMPORTERS)

        onnx_graph = model.graph
        env = self.env
        env[""] = None
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        for tensor in onnx_graph.initializer:
            env[tensor.name] = self.initializers[tensor.name] = np.array(numpy_helper.to_array(tensor))
        for node in onnx_graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        for item in onnx_graph.output:
            self.consumers.setdefault(item.name, []).append(item)
        for item in onnx_graph.input:
            if item.name in env:
                continue  # an initializer listed as an input (old exporters): a constant
            value = Value(python_name(item.name), spec_of(item.type))
            self.value_symbols[id(value)] = symbols_of(item.type)
            env[item.name] = value
            self.graph.inputs.append(value)
            self.graph.input_names.append(item.name)
        missing = [n.op_type for n in onnx_graph.node if n.op_type not in ONNX_OP_IMPORTERS or n.domain not in ("", "ai.onnx")]
        for node in onnx_graph.node:
            if node.op_type in missing:
                self.unsupported.setdefault(node.op_type, []).append(node.name or node.output[0])
        if self.unsupported:
            raise UnsupportedOnnxOps(self.file, self.unsupported)
        for node in onnx_graph.node:
            self.op_counts[node.op_type] += 1
            ctx = OnnxContext(self, node, [env.get(name) for name in node.input])
            try:
                outputs = ONNX_OP_IMPORTERS[node.op_type](ctx)
            except ConversionError:
                raise
            except (AttributeError, TypeError, ValueError, IndexError, KeyError) as exc:
                # Inputs of a form no importer expects (a shape where a tensor goes...): a clear error.
                raise ctx.unsupported(f"this form of the op ({type(exc).__name__}: {exc})") from None
            for name, out in zip(node.output, outputs):
                if not name:
                    continue  # an optional output left out
                if isinstance(out, Value) and name in self.specs:
                    out.spec = _known_dims(self.specs[name], out.spec)
                    self.value_symbols.setdefault(id(out), self.symbols[name])
                env[name] = out
        for item in onnx_graph.output:
            out = env.get(item.name)
            if not isinstance(out, Value):
                raise UnsupportedFeature(f"{self.file}: output {item.name!r} is a constant; nothing to convert")
            self.graph.outputs.append(out)
            self.graph.output_names.append(item.name)
        return self.graph


def _known_dims(declared: TensorSpec, computed: TensorSpec) -> TensorSpec:
    """The file's declared spec, its unknown dims filled from the importer's own (a Loop's scan
    output, declared with no sizes, has as many steps as its input)."""
    if len(declared.shape) != len(computed.shape) or None not in declared.shape:
        return declared
    dims = tuple(c if d is None and isinstance(c, int) else d for d, c in zip(declared.shape, computed.shape))
    return TensorSpec(dims, declared.dtype)


def import_onnx_model(model: Any, file: str) -> Graph:
    specs, symbols = {}, {}
    for item in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input):
        if item.type.HasField("tensor_type"):
            specs[item.name] = spec_of(item.type)
            symbols[item.name] = symbols_of(item.type)
    graph = Graph(name=python_name(model.graph.name or "model"), source_format="onnx")
    return OnnxImporter(graph, file, specs, symbols=symbols).run(model)

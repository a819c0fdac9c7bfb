"""Walk a TensorFlow graph op by op into the IR.

Function calls (PartitionedCall / StatefulPartitionedCall) are inlined; the graphs of
function bodies are rebuilt with TensorFlow's own shape inference, after turning every read
of a captured variable into a typed placeholder bound to that variable (`VarRef`), so that
shapes stay known downstream. Ops whose inputs are all constants are folded by running them
eagerly in TensorFlow. Unsupported ops are collected, and reported all at once.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tf2torch.errors import ConversionError, unsupported_ops_message
from tf2torch.frontends.tf.context import OpContext, static_array
from tf2torch.frontends.tf.name_scopes import INLINED, counter_free_scopes, rename_scope
from tf2torch.frontends.tf.registry import TF_OP_IMPORTERS
from tf2torch.frontends.tf.values import ShapeVec, TFVal, VarRef
from tf2torch.ir import Graph, Value

# Ops never folded, even on constant inputs.
NO_FOLD = {
    "Placeholder", "Const", "VarHandleOp", "ReadVariableOp", "While", "StatelessWhile", "If", "StatelessIf",
    "PartitionedCall", "StatefulPartitionedCall", "RandomUniform", "RandomStandardNormal", "NoOp",
    "TruncatedNormal", "RandomUniformInt", "AssignVariableOp", "Shape",
}
# Ops that only carry control dependencies or side effects the conversion drops.
IGNORED = {"NoOp", "Assert", "AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp", "SaveV2", "RestoreV2"}


class UnsupportedOps(ConversionError):
    """TF op types without an importer: lists every one at once, with a count and an example op."""

    def __init__(self, source: str, ops: dict[str, list[str]]) -> None:
        self.ops = ops
        super().__init__(unsupported_ops_message(source, ops, "TensorFlow op"))


@dataclass
class GraphImporter:
    graph: Graph
    library: dict[str, Any]  # function name -> FunctionDef
    file: str
    tolerant: bool = False  # inspect: record problems instead of raising
    # Frozen graphs hold their weights as constants: those feeding weight slots train.
    const_weights_trainable: bool = False
    op_counts: collections.Counter = field(default_factory=collections.Counter)
    unsupported: dict[str, list[str]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # op type -> first error (tolerant mode)
    _prefix: str = ""
    _renames: dict[str, str] = field(default_factory=dict)  # raw scope path -> without TF's counters
    scopes: set[str] = field(default_factory=set)  # every (clean) scope path of the imported ops
    layer_owners: dict[str, str] = field(default_factory=dict)
    tf_uses: dict[int, int] = field(default_factory=dict)  # id(Value) -> TF consumers of its tensor
    # BatchToSpaceND op name -> what its SpaceToBatchND left to finish (a dilated convolution)
    pending_dilations: dict[str, Any] = field(default_factory=dict)
    # id(Value) -> the sizes a float cast of a shape value holds (Range reads them back)
    cast_sizes: dict[int, ShapeVec] = field(default_factory=dict)

    # -- naming -------------------------------------------------------------------------

    def clean_name(self, name: str) -> str:
        if self._prefix and name.startswith(self._prefix):
            name = name[len(self._prefix):]
        return (rename_scope(name, self._renames) or "t").lower()

    # -- graphs and functions -------------------------------------------------------------

    def import_function(self, name: str, args: list[TFVal]) -> list[TFVal]:
        """Inline the library function `name` called on `args`."""
        tf_graph, inputs, outputs, bindings = self.function_graph(name, args)
        for tensor, arg in zip(inputs, args):
            bindings.setdefault(tensor.name, arg)
        return self.import_graph(tf_graph, bindings, outputs)

    def function_graph(self, name: str, args: list[TFVal]) -> tuple[Any, list, list, dict[str, TFVal]]:
        import tensorflow as tf
        from tensorflow.python.framework import function_def_to_graph as fdg

        fdef = self.library.get(name)
        if fdef is None:
            raise ConversionError(f"{self.file}: function {name!r} is not in the graph's library")
        shapes = []
        for arg in args:
            if isinstance(arg, Value):
                shapes.append(tf.TensorShape(list(arg.spec.shape)))
            elif isinstance(arg, np.ndarray):
                shapes.append(tf.TensorShape(arg.shape))
            elif isinstance(arg, ShapeVec):
                shapes.append(tf.TensorShape([len(arg.items)]))
            else:
                shapes.append(None)
        graph_def, flat_names = fdg.function_def_to_graph_def(fdef, shapes)
        arg_names = [a.name for a in fdef.signature.input_arg]
        var_args = {arg_name: arg for arg_name, arg in zip(arg_names, args) if isinstance(arg, VarRef)}
        bindings: dict[str, TFVal] = {}
        _gathers_from_reads(graph_def, var_args)
        _random_ops_unseeded(graph_def)
        assigns = {n.name: n for n in graph_def.node if n.op == "AssignVariableOp"}
        for node in graph_def.node:
            if node.op == "ReadVariableOp" and _read_after_assign(node, assigns):
                # A layer that writes its variable in call() (a masked kernel) reads the value
                # it wrote: the read becomes that value (automatic control dependencies order
                # the read after the write with a control input).
                value = _read_after_assign(node, assigns)
                dtype = node.attr["dtype"].type
                node.op = "Identity"
                del node.input[:]
                node.input.append(value)
                node.ClearField("attr")
                node.attr["T"].type = dtype
                continue
            if node.op == "ReadVariableOp" and node.input[0].split(":")[0] in var_args:
                var = var_args[node.input[0].split(":")[0]]
                node.op = "Placeholder"
                del node.input[:]
                dtype = node.attr["dtype"].type
                node.ClearField("attr")
                node.attr["dtype"].type = dtype
                node.attr["shape"].shape.CopyFrom(tf.TensorShape(var.array.shape).as_proto())
                bindings[node.name + ":0"] = var
        graph_def.library.function.extend(self.library.values())
        tf_graph = tf.Graph()
        with tf_graph.as_default():
            tf.graph_util.import_graph_def(graph_def, name="")
        inputs = [tf_graph.get_tensor_by_name(flat_names[a]) for a in arg_names]
        outputs = [tf_graph.get_tensor_by_name(flat_names[fdef.ret[a.name]]) for a in fdef.signature.output_arg]
        return tf_graph, inputs, outputs, bindings

    def import_graph(self, tf_graph: Any, bindings: dict[str, TFVal], outputs: list) -> list[TFVal]:
        env: dict[str, TFVal] = dict(bindings)
        order = _topological(outputs, set(env))
        saved = self._prefix, self._renames
        self._prefix = _common_prefix([op.name for op in order if not op.name.startswith(INLINED)])
        self._renames = counter_free_scopes(op.name.removeprefix(self._prefix) for op in order)
        self.scopes.update(path.lower() for path in self._renames.values())
        try:
            for op in order:
                self._import_op(op, env)
        finally:
            self._prefix, self._renames = saved
        return [env.get(t.name) for t in outputs]

    def _import_op(self, op: Any, env: dict[str, TFVal]) -> None:
        self.op_counts[op.type] += 1
        inputs = [env.get(t.name) for t in op.inputs]
        results: list[TFVal] | None = None
        if any(t.name not in env for t in op.inputs):
            return  # fed by an unsupported op: that op is reported, not this one
        if op.type in IGNORED:
            return
        if op.type == "Placeholder":
            raise ConversionError(f"{self.file}: placeholder {op.name!r} is not bound to an input")
        if op.type not in NO_FOLD and inputs and all(isinstance(v, np.ndarray) for v in inputs):
            results = _fold(op, inputs)
        if results is None:
            importer = TF_OP_IMPORTERS.get(op.type)
            if importer is None:
                self.unsupported.setdefault(op.type, []).append(op.name)
                return
            ctx = OpContext(self, op, inputs)
            try:
                results = importer(ctx)
            except ConversionError as exc:
                if not self.tolerant:
                    raise
                self.failures.setdefault(op.type, str(exc).strip().splitlines()[0])
                return
        for tensor, result in zip(op.outputs, results):
            if isinstance(result, ShapeVec) and result.static:
                result = static_array(result)  # folded by TensorFlow from here on
            if result is not None:
                env[tensor.name] = result
                if isinstance(result, Value):
                    self.tf_uses[id(result)] = self.tf_uses.get(id(result), 0) + len(tensor.consumers())

    def claim_name(self, base: str, owner: str) -> str:
        """`base`, or `base_1`, ...: one layer name per weight owner."""
        name, n = base, 1
        while self.layer_owners.setdefault(name, owner) != owner:
            name = f"{base}_{n}"
            n += 1
        return name

    def consumer_count(self, tensor: Any) -> int:
        return len(tensor.consumers())

    def check(self) -> None:
        if self.unsupported:
            raise UnsupportedOps(self.file, self.unsupported)


def _gathers_from_reads(graph_def: Any, var_args: dict[str, VarRef]) -> None:
    """ResourceGather(variable, ids) -> GatherV2(ReadVariableOp(variable), ids, 0), so that the
    read becomes a typed placeholder below and TensorFlow infers the gather's shape (a resource
    has no shape: the gather's output, e.g. an embedding lookup, would have unknown rank)."""
    from tensorflow.core.framework import node_def_pb2, types_pb2

    for node in list(graph_def.node):
        if node.op != "ResourceGather" or node.input[0].split(":")[0] not in var_args:
            continue
        read = node_def_pb2.NodeDef(name=f"{node.name}/tf2torch_read", op="ReadVariableOp", input=[node.input[0]])
        read.attr["dtype"].type = node.attr["dtype"].type
        axis = node_def_pb2.NodeDef(name=f"{node.name}/tf2torch_axis", op="Const")
        axis.attr["dtype"].type = types_pb2.DT_INT32
        axis.attr["value"].tensor.dtype = types_pb2.DT_INT32
        axis.attr["value"].tensor.int_val.append(0)
        batch_dims = node.attr["batch_dims"].i
        params_type, index_type = node.attr["dtype"].type, node.attr["Tindices"].type
        controls = [i for i in node.input if i.startswith("^")]
        node.op = "GatherV2"
        node.ClearField("attr")
        node.attr["Tparams"].type = params_type
        node.attr["Tindices"].type = index_type
        node.attr["Taxis"].type = types_pb2.DT_INT32
        node.attr["batch_dims"].i = batch_dims
        ids = node.input[1]
        del node.input[:]
        node.input.extend([read.name, ids, axis.name] + controls)
        graph_def.node.extend([read, axis])


def _read_after_assign(read: Any, assigns: dict[str, Any]) -> str | None:
    """The value last assigned to the variable `read` reads, if the read is ordered after it."""
    resource = read.input[0].split(":")[0]
    for control in reversed(read.input[1:]):
        assign = assigns.get(control.removeprefix("^"))
        if control.startswith("^") and assign is not None and assign.input[0].split(":")[0] == resource:
            return assign.input[1]
    return None


# Stateless random ops (keras.random with a SeedGenerator) -> their stateful forms, shape only.
UNSEEDED_RANDOM = {
    "StatelessRandomNormalV2": "RandomStandardNormal", "StatelessRandomNormal": "RandomStandardNormal",
    "StatelessRandomUniformV2": "RandomUniform", "StatelessRandomUniform": "RandomUniform",
    "StatelessTruncatedNormalV2": "TruncatedNormal", "StatelessTruncatedNormal": "TruncatedNormal",
}


def _random_ops_unseeded(graph_def: Any) -> None:
    """A stateless random op keeps only its shape input: the converted module draws with
    torch's generator, so the seed arithmetic (a SeedGenerator's state variable, read and
    advanced in call()) is not needed, and is not imported."""
    for node in graph_def.node:
        target = UNSEEDED_RANDOM.get(node.op)
        if target is None:
            continue
        dtype = node.attr["dtype"].type
        shape_type = (node.attr["Tshape"] if "Tshape" in node.attr else node.attr["T"]).type
        controls = [i for i in node.input if i.startswith("^")]
        shape = node.input[0]
        node.op = target
        node.ClearField("attr")
        node.attr["dtype"].type = dtype
        node.attr["T"].type = shape_type
        node.attr["seed"].i = 0
        node.attr["seed2"].i = 0
        del node.input[:]
        node.input.extend([shape] + controls)


def _topological(outputs: list, bound: set[str]) -> list:
    """The ops the outputs depend on (data edges only), inputs first."""
    order: list = []
    seen: set[str] = set()
    stack: list[tuple[Any, bool]] = [(t.op, False) for t in reversed(outputs) if t.name not in bound]
    while stack:
        op, done = stack.pop()
        if done:
            order.append(op)
            continue
        if op.name in seen:
            continue
        seen.add(op.name)
        stack.append((op, True))
        for t in reversed(list(op.inputs)):
            if t.name not in bound and t.op.name not in seen:
                stack.append((t.op, False))
    return order


def _common_prefix(names: list[str]) -> str:
    """A scope shared by every op name (e.g. 'functional_1/'), dropped from IR names."""
    firsts = {n.split("/", 1)[0] for n in names if "/" in n}
    if len(firsts) == 1 and sum("/" in n for n in names) * 2 > len(names):
        return firsts.pop() + "/"
    return ""


def _fold(op: Any, inputs: list[np.ndarray]) -> list[TFVal] | None:
    """Run a TF op on constant inputs eagerly; None if TensorFlow cannot run it that way."""
    import tensorflow as tf
    from tensorflow.python.eager import context, execute

    if any(t.dtype == tf.variant or t.dtype == tf.resource for t in op.outputs):
        return None  # a TensorList / handle has no array value: left to the op's importer
    attrs: list[Any] = []
    for key in op.node_def.attr:
        if key.startswith("_"):
            continue
        value = op.get_attr(key)
        if isinstance(value, tf.DType):
            value = value.as_datatype_enum
        elif isinstance(value, list) and value and isinstance(value[0], tf.DType):
            value = [v.as_datatype_enum for v in value]
        elif isinstance(value, tf.TensorShape):
            value = value.as_list() if value.rank is not None else None
        attrs += [key, value]
    try:
        tensors = [tf.constant(v, dtype=t.dtype) for v, t in zip(inputs, op.inputs)]
        out = execute.execute(op.type, len(op.outputs), tensors, tuple(attrs), context.context())
    except Exception:  # noqa: BLE001  (any failure: fall back to the op's importer)
        return None
    return [np.asarray(t.numpy()) for t in out]

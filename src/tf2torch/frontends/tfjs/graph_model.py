"""A TF.js graph-model: its topology is a GraphDef in protobuf JSON whose Const nodes get their
values from the weight shards. It becomes a TF GraphDef (TensorFlow's protobuf classes parse
it: the op-level TF frontend imports through TensorFlow anyway) and goes through the TF
frontend; verification runs TensorFlow on the GraphDef as the file has it.

The TF.js converter fuses ops with TensorFlow's grappler (`_FusedConv2D`, `_FusedMatMul`,
`FusedDepthwiseConv2dNative`: a convolution or matmul followed by BiasAdd or an inference
BatchNorm, then an activation). They are split back into their parts before the import, so
the TF frontend's importers (and the generated code) see ordinary ops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tf2torch.errors import BadModelFile
from tf2torch.frontends.tfjs.model_json import TfjsModel
from tf2torch.frontends.tfjs.shards import read_weights

FUSED_BASE_OPS = {"_FusedConv2D": "Conv2D", "FusedDepthwiseConv2dNative": "DepthwiseConv2dNative",
                  "_FusedMatMul": "MatMul"}
FUSED_ACTIVATIONS = {"Relu", "Relu6", "Elu", "Sigmoid", "Tanh", "LeakyRelu", "Prelu"}


def build_graph_def(model: TfjsModel) -> Any:
    """The GraphDef of the topology with every manifest weight in its Const node."""
    weights = read_weights(model)  # before TensorFlow loads: a damaged shard is reported at once
    from google.protobuf import json_format
    from tensorflow.core.framework import graph_pb2

    from tf2torch.frontends.tf.loader import _tf

    tf = _tf()
    topology = {k: v for k, v in model.topology.items() if k in ("node", "library", "versions")}
    graph_def = graph_pb2.GraphDef()
    try:
        json_format.ParseDict(topology, graph_def)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise BadModelFile(f"{model.path}: modelTopology is not a GraphDef in JSON ({_first_line(exc)})") from None
    nodes = {node.name: node for node in graph_def.node}
    for name, array in weights.items():
        node = nodes.get(name)
        if node is None or node.op != "Const":
            what = "no node" if node is None else f"a {node.op} node"
            raise BadModelFile(f"{model.path}: weight {name!r} of weightsManifest names {what}, not a Const node "
                               "of modelTopology; the manifest and the topology do not describe the same model")
        _check_declared(node, array, model.path)
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(array))
    for node in graph_def.node:
        if node.op == "Const" and node.name not in weights and _lacks_value(node):
            raise BadModelFile(f"{model.path}: Const node {node.name!r} has no value in modelTopology and no weight "
                               "in weightsManifest (a shard or manifest entry is missing)")
    return graph_def


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _check_declared(node: Any, array: np.ndarray, path: str) -> None:
    """The Const node's own dtype and shape agree with the manifest's."""
    from tensorflow.python.framework import dtypes

    tensor = node.attr["value"].tensor
    if tensor.dtype and dtypes.as_dtype(tensor.dtype).as_numpy_dtype != array.dtype:
        raise BadModelFile(f"{path}: Const node {node.name!r} is {dtypes.as_dtype(tensor.dtype).name}, its weight in "
                           f"weightsManifest is {array.dtype}")
    if tensor.HasField("tensor_shape"):
        declared = tuple(int(d.size) for d in tensor.tensor_shape.dim)
        if declared != array.shape:
            raise BadModelFile(f"{path}: Const node {node.name!r} has shape {list(declared)}, its weight in "
                               f"weightsManifest {list(array.shape)}")


def _lacks_value(node: Any) -> bool:
    tensor = node.attr["value"].tensor
    elements = int(np.prod([d.size for d in tensor.tensor_shape.dim])) if tensor.HasField("tensor_shape") else 1
    filled = tensor.tensor_content or any(
        len(getattr(tensor, field)) for field in ("float_val", "int_val", "int64_val", "bool_val", "half_val",
                                                   "double_val", "string_val"))
    return elements > 0 and not filled


def unfuse(graph_def: Any, path: str, only: Callable[[Any], bool] | None = None) -> Any:
    """A copy of `graph_def` with the fused ops (the nodes `only` picks, default all) split into base
    op, bias or BatchNorm, and activation; the last part keeps the fused node's name, so its
    consumers are unchanged."""
    from tensorflow.core.framework import graph_pb2

    result = graph_pb2.GraphDef()
    result.CopyFrom(graph_def)
    del result.node[:]
    names = {node.name for node in graph_def.node}
    for node in graph_def.node:
        if only is not None and not only(node):
            result.node.add().CopyFrom(node)
        elif node.op in FUSED_BASE_OPS:
            result.node.extend(_split_fused(node, names, path))
        elif node.op == "Prelu":
            result.node.extend(_prelu_parts(node, node.input[0], node.input[1], node.name, names))
        else:
            result.node.add().CopyFrom(node)
    return result


def _split_fused(node: Any, names: set[str], path: str) -> list[Any]:
    from tensorflow.core.framework import node_def_pb2
    from tensorflow.python.framework import op_def_registry

    fused = [s.decode() for s in node.attr["fused_ops"].list.s]
    data_inputs = [i for i in node.input if not i.startswith("^")]
    controls = [i for i in node.input if i.startswith("^")]
    post, activation = (fused[:-1], fused[-1]) if fused and fused[-1] in FUSED_ACTIVATIONS else (fused, None)
    if post not in ([], ["BiasAdd"], ["FusedBatchNorm"]) or len(data_inputs) < 2:
        raise BadModelFile(f"{path}: node {node.name!r} ({node.op}) fuses {fused}, which tf2torch cannot split "
                           "into TF ops")
    base = node_def_pb2.NodeDef(name=_unique(_base_name(node, data_inputs[1]), names), op=FUSED_BASE_OPS[node.op],
                                input=data_inputs[:2] + controls, device=node.device)
    own_attrs = {a.name for a in op_def_registry.get(base.op).attr}
    for key, value in node.attr.items():
        if key in own_attrs:
            base.attr[key].CopyFrom(value)
    parts = [base]
    extra = data_inputs[2:]
    last = base.name
    if post == ["BiasAdd"]:
        bias = node_def_pb2.NodeDef(name=_unique(f"{base.name}/BiasAdd", names), op="BiasAdd", input=[last, extra[0]])
        bias.attr["T"].CopyFrom(node.attr["T"])
        if "data_format" in node.attr:
            bias.attr["data_format"].CopyFrom(node.attr["data_format"])
        parts.append(bias)
        last, extra = bias.name, extra[1:]
    elif post == ["FusedBatchNorm"]:
        norm = node_def_pb2.NodeDef(name=_unique(f"{base.name}/FusedBatchNormV3", names), op="FusedBatchNormV3",
                                    input=[last] + extra[:4])
        norm.attr["T"].CopyFrom(node.attr["T"])
        norm.attr["U"].type = node.attr["T"].type
        norm.attr["epsilon"].f = node.attr["epsilon"].f
        norm.attr["is_training"].b = False
        if "data_format" in node.attr:
            norm.attr["data_format"].CopyFrom(node.attr["data_format"])
        parts.append(norm)
        last, extra = norm.name, extra[4:]
    if activation is None:
        parts[-1].name = node.name  # consumers refer to the fused node's name
        return parts
    if activation == "Prelu":
        return parts + _prelu_parts(node, last, extra[0], node.name, names)
    act = node_def_pb2.NodeDef(name=node.name, op=activation, input=[last])
    act.attr["T"].CopyFrom(node.attr["T"])
    if activation == "LeakyRelu":
        act.attr["alpha"].f = node.attr["leakyrelu_alpha"].f
    parts.append(act)
    return parts


def _prelu_parts(node: Any, x: str, alpha: str, name: str, names: set[str]) -> list[Any]:
    """TF.js' Prelu (not a TF op): relu(x) - alpha * relu(-x)."""
    from tensorflow.core.framework import node_def_pb2

    def make(suffix: str, op: str, inputs: list[str], final: bool = False) -> Any:
        made = node_def_pb2.NodeDef(name=name if final else _unique(f"{name}/prelu_{suffix}", names), op=op,
                                    input=inputs)
        made.attr["T"].CopyFrom(node.attr["T"])
        return made

    positive = make("positive", "Relu", [x])
    negated = make("negated", "Neg", [x])
    negative = make("negative", "Relu", [negated.name])
    scaled = make("scaled", "Mul", [alpha, negative.name])
    return [positive, negated, negative, scaled, make("", "Sub", [positive.name, scaled.name], final=True)]


def _base_name(node: Any, weight_input: str) -> str:
    """The base op named in its weight's scope (`.../conv/Conv2D_weights` -> `.../conv/Conv2D`):
    the fused node is named after its last part (`.../relu/Relu`)."""
    scope = weight_input.split(":")[0].rsplit("/", 1)[0] if "/" in weight_input else node.name
    return f"{scope}/{FUSED_BASE_OPS[node.op]}"


def _unique(name: str, names: set[str]) -> str:
    candidate, i = name, 1
    while candidate in names:
        candidate, i = f"{name}_{i}", i + 1
    names.add(candidate)
    return candidate


def signature_names(model: TfjsModel) -> tuple[list[str] | None, list[str] | None, list[str] | None]:
    """Input tensor names, output tensor names and output keys from the model.json signature
    (None where it has none: the TF frontend then takes the placeholders / unconsumed ops)."""
    signature = model.document.get("signature") or (model.document.get("userDefinedMetadata") or {}).get("signature")
    if not isinstance(signature, dict):
        return None, None, None

    def tensors(key: str) -> tuple[list[str] | None, list[str] | None]:
        entries = signature.get(key)
        if not isinstance(entries, dict) or not entries:
            return None, None
        names = [e.get("name") if isinstance(e, dict) else None for e in entries.values()]
        if not all(isinstance(n, str) and n for n in names):
            raise BadModelFile(f"{model.path}: signature {key} must map each key to an entry with a tensor 'name'")
        return names, [str(k) for k in entries]

    inputs, _ = tensors("inputs")
    outputs, keys = tensors("outputs")
    return inputs, outputs, keys


def import_graph_model(
    model: TfjsModel, name: str, *, tolerant: bool = False, inputs: list[str] | None = None,
    outputs: list[str] | None = None,
) -> Any:
    """The graph-model through the TF frontend: a TFImport whose runner executes TensorFlow on
    the GraphDef as written (with its fused ops), unless TensorFlow lacks one of its ops."""
    from tf2torch.frontends.tf.loader import import_graph_def

    graph_def = build_graph_def(model)
    plain = unfuse(graph_def, model.path)
    signed_inputs, signed_outputs, keys = signature_names(model)
    if outputs is not None:
        keys = None  # the signature's output keys name other tensors
    inputs, outputs = inputs or signed_inputs, outputs or signed_outputs
    # TensorFlow runs grappler's fused ops as they are; TF.js' own (FusedDepthwiseConv2dNative,
    # Prelu, a fused Prelu) it cannot run: the reference splits only those.
    from tensorflow.python.framework import op_def_registry

    def foreign(node: Any) -> bool:
        fused = {s.decode() for s in node.attr["fused_ops"].list.s} if "fused_ops" in node.attr else set()
        return op_def_registry.get(node.op) is None or "Prelu" in fused

    reference = unfuse(graph_def, model.path, only=foreign) if any(map(foreign, graph_def.node)) else graph_def
    imported = import_graph_def(plain, model.path, name, inputs, outputs, tolerant=tolerant, reference=reference)
    graph = imported.graph
    if keys is not None and len(keys) == len(graph.outputs):
        graph.output_names = keys
    graph.input_names = [n.split(":")[0] for n in graph.input_names]
    return imported

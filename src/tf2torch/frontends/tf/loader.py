"""Sources of TF graphs: SavedModel directories (a signature), frozen GraphDef .pb files and
tf.function / ConcreteFunction objects, each imported into an IR Graph.

Also the `TFRunner` verification uses to run the original (the signature, the frozen graph
or the function) on the same inputs.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tf2torch.errors import BadModelFile, ConversionError, VerificationUnavailable
from tf2torch.frontends.tf import ops  # noqa: F401  (fills TF_OP_IMPORTERS)
from tf2torch.frontends.tf.context import spec_of
from tf2torch.frontends.tf.importer import GraphImporter
from tf2torch.frontends.tf.name_scopes import name_scope_outputs, scope_objects
from tf2torch.frontends.tf.values import TFVal, VarRef
from tf2torch.input_files import check_model_path, file_kind
from tf2torch.ir import Graph, Value


def describe_tf_error(exc: BaseException) -> str:
    """TensorFlow's (often multi-line, C++-flavoured) error text: its first line, shortened."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise ConversionError("the TensorFlow frontend needs TensorFlow: pip install 'tf2torch[tf]'") from exc
    return tf


class TFRunner:
    """Runs the original TF computation; called like a Keras model by verification."""

    inference_only = True

    def __init__(self, fn: Any, input_names: list[str], by_name: bool, keep: Any = None) -> None:
        self.fn = fn
        self.input_names = input_names
        self.by_name = by_name
        self._keep = keep  # the loaded SavedModel, which owns the function's variables

    def __call__(self, inputs: Any, training: bool = False) -> list[np.ndarray]:
        tf = _tf()
        if training:
            raise VerificationUnavailable("a TF graph is an inference graph: training-mode verification is not available")
        arrays = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        tensors = [tf.constant(a) for a in arrays]
        if self.by_name:
            result = self.fn(**dict(zip(self.input_names, tensors)))
        else:
            result = self.fn(*tensors)
        return [np.asarray(t) for t in tf.nest.flatten(result)]


@dataclass
class TFImport:
    graph: Graph
    runner: TFRunner
    importer: GraphImporter


def _finish(graph: Graph, importer: GraphImporter, results: list[TFVal], output_names: list[str]) -> None:
    if importer.tolerant:
        return
    importer.check()
    for name, value in zip(output_names, results):
        if not isinstance(value, Value):
            raise ConversionError(f"{importer.file}: output {name!r} does not depend on the inputs ({type(value).__name__})")
        graph.outputs.append(value)
    graph.output_names = list(output_names)


def _variable_names(variables: list[Any]) -> dict[int, VarRef]:
    """id(handle) -> VarRef, named after the variable (made unique)."""
    refs: dict[int, VarRef] = {}
    seen: dict[str, int] = {}

    def base(v: Any) -> str:
        name = getattr(v, "path", None) or v.name
        return name.removesuffix(":0")

    totals: dict[str, int] = {}
    for v in variables:
        totals[base(v)] = totals.get(base(v), 0) + 1
    # A scope holding two variables of one name (Keras 3 subclassed models name every
    # variable '<model>/kernel') does not identify layers: name those by op scope.
    unclear = {name.rsplit("/", 1)[0] if "/" in name else "" for name, n in totals.items() if n > 1}
    for v in variables:
        name = base(v)
        count = seen.get(name, 0)
        seen[name] = count + 1
        ambiguous = (name.rsplit("/", 1)[0] if "/" in name else "") in unclear
        if count:
            name = f"{name}_{count}"
        refs[id(v.handle)] = VarRef(name, np.asarray(v.numpy()), bool(v.trainable), ambiguous)
    return refs


def import_concrete_function(
    fn: Any, file: str, name: str, *, tolerant: bool = False, keep: Any = None, by_name: bool = False,
    variables: list | None = None,
) -> TFImport:
    tf = _tf()
    fdef = fn.function_def
    library = {f.signature.name: f for f in fn.graph.as_graph_def().library.function}
    library[fdef.signature.name] = fdef
    graph = Graph(name=name, source_format="tf")
    importer = GraphImporter(graph, library, file, tolerant=tolerant)
    captured = list(fn.captured_inputs)
    user_inputs = fn.inputs[: len(fn.inputs) - len(captured)]
    if by_name:
        specs = tf.nest.flatten(fn.structured_input_signature)
        names = [s.name for s in specs]
    else:
        names = [t.name.split(":")[0] for t in user_inputs]
    args: list[TFVal] = []
    for input_name, tensor in zip(names, user_inputs):
        value = Value(input_name, spec_of(tensor))
        graph.inputs.append(value)
        graph.input_names.append(input_name)
        args.append(value)
    refs = _variable_names(list(variables if variables is not None else fn.variables))
    for handle in captured:
        ref = refs.get(id(handle))
        if ref is None:
            if handle.dtype == tf.resource:
                raise ConversionError(f"{file}: a captured resource is not a variable of the function")
            ref = np.asarray(handle.numpy())
        args.append(ref)
    results = importer.import_function(fdef.signature.name, args)
    structured = fn.structured_outputs
    if isinstance(structured, dict):
        output_names = sorted(structured)
    else:
        output_names = [f"output_{i}" for i in range(len(results))] if len(results) > 1 else ["output"]
    _finish(graph, importer, results, output_names)
    # A dict of named outputs (an HF model's `last_hidden_state`, `pooler_output`) is returned
    # as a NamedTuple with those names; TensorFlow's own `output_0`, ... name nothing.
    graph.named_outputs = isinstance(structured, dict) and not all(re.fullmatch(r"output_\d+", k) for k in structured)
    return TFImport(graph, TFRunner(fn, names, by_name, keep), importer)


def check_saved_model_dir(path: str, max_entries: int = 100_000) -> None:
    """Before TensorFlow reads it: saved_model.pb is a regular file, and nothing in the
    directory is a FIFO, device or socket, or a symlink that leads outside it."""
    check_model_path(path, directory_ok=True)
    pb = os.path.join(path, "saved_model.pb")
    if not os.path.lexists(pb):
        raise BadModelFile(f"{path}: not a SavedModel directory (no saved_model.pb)")
    root = os.path.realpath(path)
    seen = 0
    for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
        for name in dirnames + filenames:
            seen += 1
            if seen > max_entries:
                raise BadModelFile(f"{path}: the SavedModel directory holds more than {max_entries} files")
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                target = os.path.realpath(full)
                if os.path.commonpath([root, target]) != root:
                    raise BadModelFile(f"{path}: {os.path.relpath(full, path)} is a symlink to {target}, "
                                       "outside the SavedModel directory; refused")
            try:
                mode = os.stat(full).st_mode
            except OSError:
                raise BadModelFile(f"{path}: {os.path.relpath(full, path)} is a broken symlink") from None
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise BadModelFile(f"{path}: {os.path.relpath(full, path)} is {file_kind(mode)}; refused")
    check_model_path(pb)


def _check_asset_paths(path: str) -> None:
    """Asset file names in the SavedModel proto stay inside its assets/ directory."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString(Path(path, "saved_model.pb").read_bytes())
    except DecodeError:
        raise BadModelFile(f"{path}: saved_model.pb is damaged (not a SavedModel protobuf)") from None
    if not proto.meta_graphs:
        raise BadModelFile(f"{path}: saved_model.pb holds no graph")
    for meta in proto.meta_graphs:
        for asset in meta.asset_file_def:
            name = asset.filename
            if os.path.isabs(name) or ".." in re.split(r"[\\/]", name):
                raise BadModelFile(f"{path}: asset {name!r} points outside the SavedModel directory; refused")


def import_saved_model(path: str, signature: str = "serving_default", *, tolerant: bool = False) -> TFImport:
    from tf2torch.frontends.tf.keras_layers import VariableView

    check_saved_model_dir(path)
    tf = _tf()
    _check_asset_paths(path)
    try:
        loaded = tf.saved_model.load(path)
    except Exception as exc:
        raise BadModelFile(f"{path}: TensorFlow cannot load this SavedModel ({describe_tf_error(exc)})") from exc
    signatures = dict(loaded.signatures)
    if signature not in signatures:
        available = ", ".join(sorted(signatures)) or "none"
        raise BadModelFile(f"{path}: no signature {signature!r} (available: {available}); pick one with signature=...")
    fn = signatures[signature]
    variables = _by_object_path(loaded, list(fn.variables))
    imported = import_concrete_function(fn, path, Path(path).name, tolerant=tolerant, keep=loaded, by_name=True,
                                        variables=variables)
    layers = {v.path.rsplit("/", 1)[0] for v in variables if isinstance(v, VariableView)}
    if layers:
        _scope_by_object_path(imported.graph, layers)
    else:  # no attribute tree (Keras' `model.export` keeps its variables in lists): name scopes
        scope_objects(imported.graph, imported.importer.scopes)
    name_scope_outputs(imported.graph)
    _keras_input_order(loaded, imported.graph)
    imported.runner.input_names = list(imported.graph.input_names)  # fed in the graph's order
    return imported


def _by_object_path(loaded: Any, variables: list[Any]) -> list[Any]:
    """The signature's variables, those the object graph reaches named by their attribute path
    (`blocks/0/d1/kernel` rather than Keras 3's `net/kernel` for every layer of a subclassed
    model): the generated submodules follow the author's attributes."""
    from tf2torch.frontends.tf.attribute_paths import object_graph_paths
    from tf2torch.frontends.tf.keras_layers import VariableView

    paths = object_graph_paths(loaded)
    named = [_keras_layer_path(paths.get(id(v.handle)), v) for v in variables]
    if len({p for p in named if p}) != sum(1 for p in named if p):
        return variables  # two variables on one path: keep TensorFlow's names
    return [v if p is None else VariableView(p, v.handle, bool(v.trainable), v) for v, p in zip(variables, named)]


# tf_keras tracks the layers of a functional or Sequential model by position
# (`layer_with_weights-4`, `layer-7`): not an attribute the author wrote.
_POSITIONAL_LAYER = re.compile(r"layer(_with_weights)?-\d+")


def _keras_layer_path(path: str | None, variable: Any) -> str | None:
    """`layer_with_weights-4/kernel` -> `conv2_block1_1_conv/kernel`: from a layer tracked by
    position on, the variable's own name (its Keras layer and weight) names it."""
    if path is None:
        return None
    parts = path.split("/")
    first = next((i for i, p in enumerate(parts) if _POSITIONAL_LAYER.fullmatch(p)), None)
    if first is None:
        return path
    own = str(variable.name).removesuffix(":0").split("/")[-2:]
    return "/".join(parts[:first] + own)


def _scope_by_object_path(graph: Graph, layers: set[str]) -> None:
    """A node computing with the weights of `blocks/0/d1` is part of the object `blocks/0` (an
    attribute, or an element of a list attribute): SourceRef.scope, which codegen makes a
    submodule of a class named after the attribute (`Block`; the object graph keeps no class)."""
    for node in graph.nodes:
        parts = node.source.name.split("/")
        if node.source.name not in layers or len(parts) < 2:
            continue
        if parts[1].isdigit() and len(parts) == 2:
            continue  # a list of layers (`dense_layers/3`): no object around them
        owner = parts[:2] if parts[1].isdigit() else parts[:1]
        words = [w for w in re.split(r"[_\W]+", owner[0]) if w]
        if len(owner) == 2 and words and words[-1].endswith("s"):
            words[-1] = words[-1][:-1]  # `blocks/0` is a Block
        class_name = "".join(w[:1].upper() + w[1:] for w in words) or "Block"
        node.source = dataclasses.replace(node.source, scope=(("/".join(owner), class_name),))


def _keras_input_order(loaded: Any, graph: Graph) -> None:
    """A signature's inputs are keyword arguments, listed alphabetically; Keras' `model.export`
    keeps the model's own input order in its `serve` endpoint: the module takes that order
    (a positional call in Keras order would otherwise silently mix the inputs up)."""
    tf = _tf()
    signature = getattr(getattr(loaded, "serve", None), "input_signature", None)
    names = [getattr(s, "name", None) for s in tf.nest.flatten(signature)] if signature else []
    if sorted(names) != sorted(graph.input_names) or len(set(names)) != len(names):
        return
    by_name = dict(zip(graph.input_names, graph.inputs))
    graph.inputs = [by_name[n] for n in names]
    graph.input_names = names


def import_function(fn: Any, *, tolerant: bool = False) -> TFImport:
    tf = _tf()
    concrete = fn
    if not hasattr(fn, "function_def"):
        if not hasattr(fn, "get_concrete_function"):
            raise BadModelFile(f"{fn!r} is not a tf.function, a ConcreteFunction or a model path")
        try:
            concrete = fn.get_concrete_function()
        except (TypeError, ValueError) as exc:
            traced = fn._list_all_concrete_functions_for_serialization() if hasattr(
                fn, "_list_all_concrete_functions_for_serialization") else []
            if len(traced) != 1:
                raise BadModelFile(
                    "the tf.function has no input_signature: pass fn.get_concrete_function(tf.TensorSpec(...)) instead"
                ) from exc
            concrete = traced[0]
    del tf
    name = getattr(fn, "__name__", None) or getattr(getattr(fn, "graph", None), "name", "function")
    return import_concrete_function(concrete, name, str(name), tolerant=tolerant)


def import_graph_def_file(
    path: str, inputs: list[str] | None = None, outputs: list[str] | None = None, *, tolerant: bool = False,
) -> TFImport:
    check_model_path(path)
    tf = _tf()
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(Path(path).read_bytes())
    except Exception as exc:
        raise BadModelFile(f"{path}: not a binary GraphDef (.pb): {describe_tf_error(exc)}") from exc
    return import_graph_def(graph_def, path, Path(path).stem, inputs, outputs, tolerant=tolerant)


def import_graph_def(
    graph_def: Any, path: str, name: str, inputs: list[str] | None = None, outputs: list[str] | None = None, *,
    tolerant: bool = False, reference: Any = None,
) -> TFImport:
    """A parsed GraphDef (`path` names its file in messages); the runner executes `reference`
    (default: the same GraphDef), e.g. the original of a graph rewritten before import."""
    tf = _tf()
    tf_graph = tf.Graph()
    try:
        with tf_graph.as_default():
            tf.graph_util.import_graph_def(graph_def, name="")
    except Exception as exc:
        raise BadModelFile(f"{path}: TensorFlow rejects this graph ({describe_tf_error(exc)})") from exc
    ops_ = tf_graph.get_operations()
    if inputs is None:
        input_tensors = [op.outputs[0] for op in ops_ if op.type == "Placeholder"]
    else:
        input_tensors = [tf_graph.get_tensor_by_name(n if ":" in n else n + ":0") for n in inputs]
    if outputs is None:
        consumed = {t.name for op in ops_ for t in op.inputs}
        skip = {"NoOp", "Const", "Placeholder", "Assert", "SaveV2", "RestoreV2", "VarHandleOp"}
        output_tensors = [t for op in ops_ if op.type not in skip for t in op.outputs if t.name not in consumed]
        if not output_tensors:
            raise BadModelFile(f"{path}: cannot infer the outputs; pass outputs=[...] (--outputs)")
    else:
        output_tensors = [tf_graph.get_tensor_by_name(n if ":" in n else n + ":0") for n in outputs]
    graph = Graph(name=name, source_format="tf")
    importer = GraphImporter(graph, {f.signature.name: f for f in graph_def.library.function}, path,
                             tolerant=tolerant, const_weights_trainable=True)
    bindings: dict[str, TFVal] = {}
    names = []
    for tensor in input_tensors:
        input_name = tensor.name.split(":")[0]
        value = Value(input_name, spec_of(tensor))
        graph.inputs.append(value)
        graph.input_names.append(input_name)
        bindings[tensor.name] = value
        names.append(input_name)
    results = importer.import_graph(tf_graph, bindings, output_tensors)
    _finish(graph, importer, results, [t.name.split(":")[0] if t.name.endswith(":0") else t.name for t in output_tensors])
    scope_objects(graph, importer.scopes)
    name_scope_outputs(graph)

    def _import() -> None:
        tf.graph_util.import_graph_def(graph_def if reference is None else reference, name="")

    wrapped = tf.compat.v1.wrap_function(_import, [])
    pruned = wrapped.prune([wrapped.graph.get_tensor_by_name(t.name) for t in input_tensors],
                           [wrapped.graph.get_tensor_by_name(t.name) for t in output_tensors])
    return TFImport(graph, TFRunner(pruned, names, False), importer)

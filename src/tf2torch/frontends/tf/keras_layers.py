"""Fallback for custom Keras layers without a converter: trace the layer's call() with
tf.function and convert the graph through the TF frontend into a generated nn.Module class.

This runs the layer's Python code, so it happens only when the user opts in (see
frontends/keras/user_code.py). The layer traced is the one Keras loads from the file (or the
live model's): it holds the file's weights, those of its sub-layers included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tf2torch.errors import ConversionError, UnsupportedFeature, VerificationUnavailable
from tf2torch.frontends.keras.layer_calls import TensorRef
from tf2torch.frontends.keras.user_code import current_session
from tf2torch.frontends.tf.attribute_paths import attribute_paths


@dataclass
class VariableView:
    """A Keras variable seen as the tf.Variable the traced graph captures, with its Keras path."""

    path: str
    handle: Any
    trainable: bool
    value: Any
    name: str = ""

    def numpy(self) -> np.ndarray:
        return np.asarray(self.value.numpy())


def import_traced_layer(ctx: Any) -> list:
    """Keras importer for a custom layer: trace, convert, wrap as one `tf_subgraph` node."""
    session = current_session()
    cls = session.keras_class(ctx.class_name, ctx.entry.raw)
    if cls is None:
        raise ConversionError(f"{ctx.file}: the class of layer {ctx.name!r} ({ctx.class_name}) is not importable")
    try:
        layer = session.live_layer(ctx.file, ctx.keras_major, ctx.name)
    except VerificationUnavailable:
        # Keras cannot load the whole model (another class's code is missing): this layer
        # alone, so that every blocker can still be listed. No result is built from it: the
        # conversion is refused, as it cannot be checked against Keras.
        layer = _standalone_layer(ctx, cls)
    return trace_layer(ctx, layer, cls.__name__)


def trace_layer(ctx: Any, layer: Any, class_name: str, description: str | None = None) -> list:
    """Trace the live Keras `layer` as the model calls it into a generated class `class_name`
    (`description`: what the class's docstring says it was converted from)."""
    import tensorflow as tf

    session = current_session()
    call = _TracedCall(layer, ctx)
    specs = [tf.TensorSpec(v.spec.shape, v.spec.dtype) for v in call.tensors]
    try:
        fn = tf.function(call).get_concrete_function(*specs)
    except Exception as exc:  # the user's call() failed under tf.function: say so, no traceback
        raise UnsupportedFeature(
            f"{ctx.file}: layer {ctx.name!r} ({ctx.class_name}): tracing its call() with TensorFlow failed: "
            f"{type(exc).__name__}: {_first_line(exc)}"
        ) from exc
    session.traced_layers.append(ctx.name)
    training_fn = _training_trace(call, specs, fn)
    held_by = attribute_paths(layer)
    views = [_view(w, layer.name, held_by.variables) for w in _variables(layer)]
    graph = _import_trace(ctx, fn, views, held_by)
    train_graph = None
    if training_fn is not None:
        train_graph, why_not = _training_graph(ctx, training_fn, fn, list(layer.weights), views, graph, held_by)
        if train_graph is None:
            norms = _keras_batch_norm_momenta(graph, layer, held_by)
            ctx.graph.notes.append(
                f"{ctx.name} ({ctx.class_name}) was traced in inference mode only: {why_not}; train() runs "
                "its inference computation" + (
                    f" (its BatchNormalization sub-layers ({', '.join(norms)}) use batch statistics there and update "
                    "their moving statistics as in Keras)." if norms else ".")
            )
    specs_out = [v.spec for v in graph.outputs]
    attrs = {"graph": graph, "train_graph": train_graph, "class_name": class_name,
             "differs_in_training": training_fn is not None, "description": description}
    node = ctx.add("tf_subgraph", call.tensors, specs_out, attrs)
    outputs = node.outputs[: call.output_count]
    if call.output_masks is not None:
        traced_masks = iter(node.outputs[call.output_count:])
        ctx.set_output_masks([next(traced_masks) if m == "traced" else m for m in call.output_masks])
    return outputs


class _TracedCall:
    """`layer(...)` as the model calls it (a list, several tensors, tensor keyword arguments,
    Keras masks), as a function of flat tensors: the call's inputs, its tensor keyword
    arguments, then the masks of its first argument. Returns the flat outputs, then the
    output masks (Keras 3 rules: `mask=` reaches call() if it takes one; compute_mask()
    gives the outputs' masks when the layer supports masking)."""

    def __init__(self, layer: Any, ctx: Any) -> None:
        self.layer = layer
        self.ctx = ctx
        call = ctx.call
        self.positional = call.args if call.args else ([call.inputs] if len(call.inputs) > 1 else call.inputs)
        self.constants = {k: v for k, v in call.kwargs.items() if k not in ("training", "mask")}
        self.kwarg_names = list(ctx.tensor_kwargs)
        self.tensors = list(ctx.inputs) + [v for values in ctx.tensor_kwargs.values() for v in values]
        # Keras' previous mask: the explicit `mask=` argument, else the first argument's masks.
        first = self.positional[0] if self.positional else None
        self.first_count = len(_fill(first, _Counter())) if isinstance(first, (list, tuple)) else 1
        implicit = ctx.input_masks[: self.first_count] if "mask" not in ctx.tensor_kwargs else []
        self.mask_values = [m for m in implicit if m is not None]
        self.mask_slots = [m is not None for m in implicit]
        # The other inputs' masks reach call() only as their tensors' `_keras_mask` (which
        # Keras layers such as MultiHeadAttention read), as when Keras runs the model.
        self.other_masks = [(i, m) for i, m in enumerate(ctx.input_masks[: len(ctx.inputs)])
                            if i >= self.first_count and m is not None]
        self.tensors += self.mask_values + [m for _, m in self.other_masks]
        self.output_count = 0
        self.output_masks: list | None = None  # per output: None, "traced" or a mask Value
        self.training = False

    def __call__(self, *flat: Any) -> list:
        ctx = self.ctx
        count = len(ctx.inputs)
        it = iter(flat[:count])
        args = [_fill(a, it) for a in self.positional]
        rest = iter(flat[count:])
        kwargs = dict(self.constants)
        for key in self.kwarg_names:
            values = [next(rest) for _ in ctx.tensor_kwargs[key]]
            kwargs[key] = values[0] if len(values) == 1 else values
        masks_start = count + sum(len(v) for v in ctx.tensor_kwargs.values())
        masks = iter(flat[masks_start:])
        slots = [next(masks) if present else None for present in self.mask_slots]
        for (index, _), mask in zip(self.other_masks, masks):
            _set_keras_mask(flat[index], mask)
        for index, mask in enumerate(slots):
            if mask is not None:
                _set_keras_mask(flat[index], mask)
        previous = kwargs.get("mask")
        if previous is None and any(self.mask_slots):
            previous = slots[0] if self.first_count == 1 and not isinstance(self.positional[0], (list, tuple)) else slots
            # Keras fills `mask=` only for a call with one tensor argument (with several, each
            # tensor carries its own `_keras_mask`, set above).
            if "mask" in _call_parameters(self.layer) and len(self.positional) + len(self.kwarg_names) == 1:
                kwargs["mask"] = previous
        outputs = self.layer(*args, training=self.training, **kwargs)
        import tensorflow as tf

        flat_outputs = tf.nest.flatten(outputs)
        self.output_count = len(flat_outputs)
        # Keras sets output masks whenever the layer supports masking (a layer defining
        # compute_mask does), even without an input mask: an embedding-like layer makes one.
        if not getattr(self.layer, "supports_masking", False):
            self.output_masks = [None] * len(flat_outputs) if previous is not None else None
            return flat_outputs
        computed = self.layer.compute_mask(args[0] if args else None, previous)
        flat_masks = tf.nest.flatten(computed) if computed is not None else [None] * len(flat_outputs)
        if len(flat_masks) == 1 and len(flat_outputs) > 1:
            flat_masks = flat_masks * len(flat_outputs)
        traced = []
        self.output_masks = []
        by_id = {id(t): v for t, v in zip(flat[masks_start:], self.mask_values + [m for _, m in self.other_masks])}
        for mask in flat_masks:
            if mask is None:
                self.output_masks.append(None)
            elif id(mask) in by_id:  # passed through unchanged: the input's mask itself
                self.output_masks.append(by_id[id(mask)])
            else:
                self.output_masks.append("traced")
                traced.append(mask)
        return flat_outputs + traced


def _set_keras_mask(tensor: Any, mask: Any) -> None:
    try:
        tensor._keras_mask = mask
    except AttributeError:  # a tensor type that takes no attributes: Keras could not set it either
        pass


def _training_trace(call: Any, specs: list, inference: Any) -> Any:
    """The call traced with training=True when it computes something else than in inference
    (same op types: the same computation), else None."""
    import copy

    import tensorflow as tf

    training_call = copy.copy(call)
    training_call.training = True
    try:
        training = tf.function(training_call).get_concrete_function(*specs)
    except Exception as exc:  # noqa: BLE001  (a call failing in training mode: it differs, unconverted)
        return _FailedTrace(f"tracing its call() with training=True failed: {type(exc).__name__}: {_first_line(exc)}")
    return training if _op_types(training.graph) != _op_types(inference.graph) else None


@dataclass
class _FailedTrace:
    """A training-mode trace that could not be made, and why."""

    reason: str


# Ops writing a variable: in training, BatchNorm's moving statistics (Keras updates them as a
# side effect of call()).
_ASSIGN_OPS = {"AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp"}


def _written_weights(fn: Any, weights: list) -> set[str]:
    """Paths of the layer weights the traced function writes (random seed states are not
    weights: a Dropout advancing its seed writes none); '?' for a write inside a nested
    function, whose target is not followed."""
    internal = {id(inner): outer for outer, inner in fn.graph.captures}
    by_handle = {id(getattr(w, "value", w).handle): w.path if hasattr(w, "path") else w.name for w in weights}
    written: set[str] = set()
    for op in fn.graph.get_operations():
        if op.type in _ASSIGN_OPS:
            outer = internal.get(id(op.inputs[0]))
            if outer is not None and id(outer) in by_handle:
                written.add(by_handle[id(outer)])
    nested = [n.op for f in getattr(fn.graph, "_functions", {}).values() for n in f.definition.node_def]
    if any(t in _ASSIGN_OPS for t in nested):
        written.add("?")
    return written


def _import_trace(ctx: Any, fn: Any, views: list, held_by: Any, training: bool = False) -> Any:
    """The traced function as a finished sub-graph whose inputs are named like forward()'s."""
    from tf2torch.frontends.tf.dropout import fold_dropout
    from tf2torch.frontends.tf.loader import import_concrete_function
    from tf2torch.frontends.tf.subgraph import finish_subgraph

    try:
        imported = import_concrete_function(fn, ctx.file, ctx.name, variables=views)
    except ConversionError as exc:
        # Name the user's layer first: the op names alone do not say where it came from.
        detail = _in_user_terms(str(exc).removeprefix(f"{ctx.file}: "))
        raise UnsupportedFeature(f"{ctx.file}: layer {ctx.name!r} ({ctx.class_name}), traced: {detail}") from exc
    graph = imported.graph
    for inner in graph.nodes:  # names that are the same in every instance of the class
        for value in inner.outputs:
            value.name = held_by.readable(value.name)
    names = ["inputs"] if len(graph.inputs) == 1 else [f"inputs_{i}" for i in range(len(graph.inputs))]
    graph.input_names = names
    for value, name in zip(graph.inputs, names):
        value.name = name
    if training:  # only here: in forward_eval, an nn.Dropout would not drop where the user's call() does
        fold_dropout(graph)
    return finish_subgraph(graph)


def _training_graph(
    ctx: Any, training: Any, inference: Any, weights: list, views: list, eval_graph: Any, held_by: Any
) -> tuple[Any, str]:
    """The training-mode sub-graph, or None and why it is not converted."""
    if isinstance(training, _FailedTrace):
        return None, training.reason
    if _written_weights(training, weights) - _written_weights(inference, weights):
        # Dropping the writes would leave moving statistics frozen while the weights train:
        # a silently different training. Not converted, and said.
        return None, "its call() updates its variables in training (e.g. BatchNorm moving statistics)"
    try:
        graph = _import_trace(ctx, training, views, held_by, training=True)
    except UnsupportedFeature as exc:
        return None, f"its training-mode computation does not convert ({_first_line(exc).split(', traced: ')[-1]})"
    if any(node.op == "batch_norm" for node in graph.nodes):
        # Keras normalizes with the moving statistics here (a BatchNormalization called with
        # training=False); a torch BatchNorm in train() would use the batch's.
        return None, "it normalizes with moving statistics in training, which train() cannot reproduce yet"
    if len(graph.outputs) != len(eval_graph.outputs) or not all(
        _compatible(a.spec, b.spec) for a, b in zip(graph.outputs, eval_graph.outputs)
    ):
        return None, "its outputs differ in shape or type between training and inference"
    return graph, ""


def _keras_batch_norm_momenta(graph: Any, layer: Any, held_by: Any) -> list[str]:
    """Give each BatchNorm recognised in the traced graph the momentum of the Keras
    BatchNormalization sub-layer it comes from (the trace alone does not show it, and torch's
    BatchNorm updates its running statistics with it in train()); the Keras names of those matched."""
    momenta = {}
    flatten = getattr(layer, "_flatten_layers", None)
    for sub in flatten(include_self=False, recursive=True) if flatten is not None else []:
        if "BatchNormalization" in {cls.__name__ for cls in type(sub).__mro__}:
            for w in sub.weights:
                path = _view(w, layer.name, held_by.variables).path
                # The BatchNorm node is named after its variables' owner ("norm/gamma" -> "norm").
                for key in (path, path.rsplit("/", 1)[0]):
                    momenta[key] = (float(sub.momentum), sub.name)
    matched = []
    for node in graph.nodes:
        if node.op == "batch_norm" and node.source.name in momenta:
            node.attrs["momentum"], name = momenta[node.source.name]
            matched += [name] if name not in matched else []
    return matched


def _compatible(a: Any, b: Any) -> bool:
    """Same dtype and rank, sizes equal where both traces know them (TensorFlow's shape
    inference may know less through the training path's random ops)."""
    return a.dtype == b.dtype and len(a.shape) == len(b.shape) and all(
        x is None or y is None or x == y for x, y in zip(a.shape, b.shape)
    )


def _op_types(graph: Any) -> list[str]:
    types = [op.type for op in graph.get_operations()]
    for function in graph._functions.values() if hasattr(graph, "_functions") else []:
        types += [node.op for node in function.definition.node_def]
    return sorted(types)


class _Counter:
    """An endless source of placeholders, to count the tensors of a call argument."""

    def __next__(self) -> object:
        return object()


def _call_parameters(layer: Any) -> set[str]:
    import inspect

    try:
        return set(inspect.signature(layer.call).parameters)
    except (TypeError, ValueError):
        return set()


def _standalone_layer(ctx: Any, cls: type) -> Any:
    import tensorflow as tf

    layer = cls.from_config(dict(ctx.config))
    call = _TracedCall(layer, ctx)
    call(*[tf.zeros([1 if d is None else d for d in v.spec.shape], v.spec.dtype) for v in call.tensors])
    weights, certain = ctx.reader.read_with_sub_layers(ctx.entry.name)
    if not certain or len(weights) != len(layer.weights):
        raise UnsupportedFeature(
            f"{ctx.file}: layer {ctx.name!r} ({ctx.class_name}): its weights cannot be matched to its variables "
            "without Keras loading the whole model; pass the code of every custom class with --custom-code"
        )
    layer.set_weights(weights)
    return layer


def _fill(arg: Any, tensors: Any) -> Any:
    """A call argument with its Keras tensors (TensorRefs, or Keras 3 `__keras_tensor__`
    entries inside nested lists) replaced by the traced function's inputs, in order."""
    if isinstance(arg, TensorRef) or (isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__"):
        return next(tensors)
    if isinstance(arg, (list, tuple)):
        return type(arg)(_fill(a, tensors) for a in arg)
    if isinstance(arg, dict):
        return {k: _fill(v, tensors) for k, v in arg.items()}
    return arg


def _variables(layer: Any) -> list[Any]:
    """The layer's weights, then its other state (random seeds) a traced call may capture."""
    weights = list(layer.weights)
    seen = {id(w) for w in weights}
    return weights + [v for v in getattr(layer, "variables", []) if id(v) not in seen]


def _view(variable: Any, layer_name: str, paths: dict[int, str]) -> VariableView:
    import tensorflow as tf

    var = variable if isinstance(variable, tf.Variable) else getattr(variable, "value", variable)
    if id(variable) in paths:  # named by the attributes holding it: `self.att_query`, `self.ffn_0`
        return VariableView(paths[id(variable)], var.handle, bool(variable.trainable), var)
    path = (getattr(variable, "path", None) or variable.name).removesuffix(":0")
    # Named inside the generated class, relative to the layer: `self.gate`, `self.inner_kernel`.
    parts = path.split("/")
    if layer_name in parts[:-1]:
        parts = parts[parts.index(layer_name) + 1:]
    else:
        parts = parts[-1:]
    return VariableView("_".join(parts), var.handle, bool(variable.trainable), var)


# The TF frontend's value kinds, as a user reads them.
_VALUE_KINDS = {"a ShapeVec": "a shape value", "a ParamExpr": "a value computed from the layer's weights",
                "a VarRef": "a variable"}


def _in_user_terms(text: str) -> str:
    for kind, words in _VALUE_KINDS.items():
        text = text.replace(kind, words)
    return text


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def import_traced_model(model: Any, file: str, config: dict) -> Any:
    """A model traced whole, in inference mode: a subclassed keras.Model (no layer graph in its
    config: on the input shape its build_config records, one float32 input, or int32 if it
    casts it to integers first) or a functional
    one whose layers cannot be saved apart (on its own inputs, in their order)."""
    import tensorflow as tf

    from tf2torch.frontends.tf.loader import import_concrete_function

    names, specs, pack = _model_inputs(model, file, config)
    outputs_struct = getattr(model, "_outputs_struct", None)
    output_names = list(outputs_struct) if isinstance(outputs_struct, dict) else None

    def call(*xs: Any) -> list:
        result = model(pack(xs), training=False)
        # Flat, in the model's own output order (a dict would come out sorted by key).
        return [result[k] for k in output_names] if output_names else tf.nest.flatten(result)

    fn = _trace_model(call, specs, file, config)
    if getattr(model, "_inputs_struct", None) is None and _casts_input_to_integers(fn):
        # Keras records no dtype for a subclassed model's input: one whose first step casts it
        # to integers (token ids into an Embedding) takes int32 ids, as its users pass them.
        specs = [tf.TensorSpec(specs[0].shape, tf.int32)]
        fn = _trace_model(call, specs, file, config)
    held_by = attribute_paths(model)
    views = [_view(w, model.name, held_by.variables) for w in _variables(model)]
    graph = import_concrete_function(fn, file, model.name, variables=views).graph
    for node in graph.nodes:
        for value in node.outputs:
            value.name = held_by.readable(value.name)
    graph.input_names = list(names)
    for value, name in zip(graph.inputs, names):
        value.name = name
    if output_names and len(output_names) == len(graph.outputs):
        graph.output_names = output_names
        graph.named_outputs = True
    return graph


def _trace_model(call: Any, specs: list[Any], file: str, config: dict) -> Any:
    import tensorflow as tf

    try:
        return tf.function(call).get_concrete_function(*specs)
    except Exception as exc:  # the user's call() failed under tf.function
        raise UnsupportedFeature(
            f"{file}: tracing the call() of the model {config.get('class_name')!r} failed: "
            f"{type(exc).__name__}: {_first_line(exc)}"
        ) from exc


def _casts_input_to_integers(fn: Any) -> bool:
    """The input's values are only read through a cast to integers (its shape may be read too)."""
    consumers = [op for op in fn.graph.inputs[0].consumers() if op.type not in ("Shape", "ShapeN", "Size", "Rank")]
    return bool(consumers) and all(op.type == "Cast" and op.get_attr("DstT").is_integer for op in consumers)


def _model_inputs(model: Any, file: str, config: dict) -> tuple[list[str], list[Any], Any]:
    """Input names, TensorSpecs (batch dynamic) and how to pack flat tensors for the call."""
    import tensorflow as tf

    struct = getattr(model, "_inputs_struct", None)
    if struct is not None:
        if isinstance(struct, dict):
            names, tensors = list(struct), list(struct.values())
        else:
            tensors = tf.nest.flatten(struct)
            names = [getattr(t, "name", f"input_{i}") for i, t in enumerate(tensors)]
        specs = [tf.TensorSpec([None] + list(t.shape[1:]), t.dtype) for t in tensors]
        if isinstance(struct, dict):
            return names, specs, lambda xs: dict(zip(names, xs))
        return names, specs, lambda xs: xs[0] if len(xs) == 1 else list(xs)
    shape = (config.get("build_config") or {}).get("input_shape")
    if not isinstance(shape, (list, tuple)) or not shape or isinstance(shape[0], (list, tuple, dict)):
        raise UnsupportedFeature(
            f"{file}: the subclassed model {config.get('class_name')!r} records no single input shape "
            "(build it by calling it on one tensor before saving); several inputs are not supported yet"
        )
    # The recorded shape is that of the call that built the model: keep the batch dynamic.
    spec = tf.TensorSpec([None] + [None if d is None else int(d) for d in shape[1:]], tf.float32)
    return ["inputs"], [spec], lambda xs: xs[0]

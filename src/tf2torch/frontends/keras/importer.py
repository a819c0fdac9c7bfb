"""Walk a Keras model config (Sequential or functional, possibly nested) into an IR Graph."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tf2torch.errors import (
    BadModelFile,
    ConversionError,
    InvalidGraph,
    UnsupportedFeature,
    UnsupportedLayer,
    UnsupportedLayers,
    describe_exception,
)
from tf2torch.frontends.keras import importers  # noqa: F401  (fills LAYER_IMPORTERS)
from tf2torch.frontends.keras.archive import KerasSource, WeightReader, layer_name_of
from tf2torch.frontends.keras.context import LayerContext
from tf2torch.frontends.keras.custom import USER_LAYERS, import_user_layer, user_layer_weights
from tf2torch.frontends.keras.importers.lambda_layer import lambda_allowed
from tf2torch.frontends.keras.layer_calls import (
    MODEL_CLASSES,
    LayerCall,
    LayerEntry,
    TensorRef,
    entry_class_name,
    is_user_class,
    parse_layer,
    refs_from_spec,
)
from tf2torch.frontends.keras.masking import record_output_masks
from tf2torch.frontends.keras.op_calls import TF_OP_LAYERS, display_name, op_spec
from tf2torch.frontends.keras.registry import LAYER_IMPORTERS
from tf2torch.frontends.keras.tf_available import TF_OP_WITHOUT_TENSORFLOW, tensorflow_available
from tf2torch.frontends.keras.unsupported import unsupported_reason as layer_reason
from tf2torch.frontends.keras.user_code import bare_class_name, current_session, is_keras_hub_class
from tf2torch.frontends.keras.weight_check import check_layer_weights
from tf2torch.ir import Graph, TensorSpec, Value


def conversion_route(raw: dict) -> str | None:
    """How a layer config entry converts: "native" (a tf2torch importer), "registered" (the
    user's @register_layer converter), "traced" (its call() traced with TensorFlow, only with
    the opt-in), or None (it cannot). A user class never takes the importer of a Keras or
    keras_hub class it shares a name with; a Lambda converts only with allow_lambda=True."""
    class_name = entry_class_name(raw) if "class_name" in raw else "?"
    if class_name in MODEL_CLASSES:
        return "native"
    if bare_class_name(class_name) in USER_LAYERS:
        return "registered"
    if class_name == "Lambda" and not is_user_class(raw):
        return "native" if lambda_allowed() else None  # runs code from the file
    if is_traced_tf_function(raw):  # its importer traces TensorFlow's own function
        return "native" if tensorflow_available() else None
    if class_name in LAYER_IMPORTERS and not is_user_class(raw):
        return "native"
    if current_session().keras_class(class_name, raw) is not None:
        return "traced"
    return None


def is_traced_tf_function(raw: dict) -> bool:
    """A tf.keras raw TF call outside the op table (traced when TensorFlow is installed)."""
    return raw.get("class_name") in TF_OP_LAYERS and op_spec(parse_layer(raw, "")) is None


def is_supported(class_name: str) -> bool:
    """Whether a layer class (a Keras or keras_hub class name) converts."""
    return conversion_route({"class_name": class_name}) is not None


def find_unsupported(model_config: dict) -> list[UnsupportedLayer]:
    """Every layer (in nested models too) that has no importer, and every raw TF / keras.ops
    call outside the supported vocabulary (listed by op name)."""
    found: list[UnsupportedLayer] = []
    for raw in model_config.get("config", {}).get("layers", []):
        class_name = entry_class_name(raw) if "class_name" in raw else "?"
        if class_name in MODEL_CLASSES:
            found.extend(find_unsupported(raw))
        elif class_name in TF_OP_LAYERS or class_name.startswith("ops."):
            entry = parse_layer(raw, "")
            if class_name in TF_OP_LAYERS and op_spec(entry) is None and not tensorflow_available():
                found.append(UnsupportedLayer(entry.name, display_name(entry), TF_OP_WITHOUT_TENSORFLOW))
            elif op_spec(entry) is None and class_name not in TF_OP_LAYERS and class_name not in LAYER_IMPORTERS:
                found.append(UnsupportedLayer(entry.name, display_name(entry), "this op is not supported yet"))
        elif conversion_route(raw) is None:
            found.append(UnsupportedLayer(layer_name_of(raw), class_name, unsupported_reason(raw)))
    return found


def unsupported_reason(raw: dict) -> str:
    class_name = entry_class_name(raw) if "class_name" in raw else "?"
    return layer_reason(raw, class_name, current_session().opted_in)


def import_keras_model(source: KerasSource) -> Graph:
    unsupported = find_unsupported(source.model_config)
    if unsupported:
        # With user code given, the layers it traces may fail too: list those as well.
        everything = _all_blockers(source) if current_session().opted_in else []
        raise UnsupportedLayers(source.path, everything if len(everything) > len(unsupported) else unsupported)
    cfg = source.model_config
    name = cfg.get("config", {}).get("name", "model")
    graph = Graph(name=name, source_format=f"keras{source.keras_major}")
    walker = _ModelWalker(graph, source)
    try:
        outputs = walker.import_model(cfg, source.weights, prefix="", bound_inputs=None)
    except (UnsupportedFeature, UnsupportedLayers) as exc:
        # One message lists every blocker: those of the layers after this one too (a traced
        # layer with an op tf2torch lacks, an option not supported yet, ...).
        blockers = _all_blockers(source)
        if len(blockers) > 1:
            raise UnsupportedLayers(source.path, blockers) from exc
        raise
    graph.outputs = outputs
    output_spec = cfg.get("config", {}).get("output_layers")
    if isinstance(output_spec, dict) and len(output_spec) == len(outputs):
        graph.output_names = [str(k) for k in output_spec]  # Keras returns a dict with these keys
        graph.named_outputs = True
    _name_nested_outputs(outputs, output_spec)
    return graph


def _name_nested_outputs(outputs: list[Value], output_spec: Any) -> None:
    """An output computed by a nested model is named after it, as Keras names it (`head`,
    not `head/logits`)."""
    refs = output_spec if isinstance(output_spec, list) and output_spec and isinstance(output_spec[0], list) else [
        output_spec]
    if len(refs) != len(outputs):
        return
    for value, ref in zip(outputs, refs):
        layer = ref[0] if isinstance(ref, list) and ref and isinstance(ref[0], str) else None
        if layer is not None and value.name.startswith(f"{layer}/"):
            value.name = layer


def _in_call_order(outputs: list[Value], output_spec: Any) -> list[Value]:
    """A nested model's outputs as its callers index them: Keras flattens a dict of outputs
    in sorted key order (a task model reads a backbone's `pooled_output` as output 0), while
    the config lists the dict in the order it was built."""
    if not isinstance(output_spec, dict) or len(output_spec) != len(outputs):
        return outputs
    by_key = dict(zip(output_spec, outputs))
    return [by_key[key] for key in sorted(by_key)]


def _all_blockers(source: KerasSource) -> list[UnsupportedLayer]:
    """Every layer that fails to import, found by `inspect`'s tolerant walk of the model."""
    from tf2torch.inspect_model import failing_layers

    return [UnsupportedLayer(name, class_name, reason) for name, class_name, reason in failing_layers(source)]


@dataclass
class _ModelWalker:
    graph: Graph
    source: KerasSource
    _input_count: int = field(default=0)
    # Keras mask of each tensor, keyed by id(Value); see frontends/keras/masking.py.
    masks: dict[int, Value | None] = field(default_factory=dict)
    scope: tuple[tuple[str, str], ...] = ()  # the nested models being imported (SourceRef.scope)

    def import_model(
        self, cfg: dict, reader: WeightReader, prefix: str, bound_inputs: list[Value] | None
    ) -> list[Value]:
        class_name = cfg.get("class_name")
        if class_name == "Sequential":
            return self._import_sequential(cfg, reader, prefix, bound_inputs)
        if class_name in ("Functional", "Model"):
            return self._import_functional(cfg, reader, prefix, bound_inputs)
        raise BadModelFile(
            f"{self.source.path}: top-level class {class_name!r} is not a Sequential or functional "
            "model. A subclassed model has no layer graph in its config: convert it with the code "
            "defining it (--custom-code my_model.py), which traces its call() with TensorFlow."
        )

    # -- inputs -------------------------------------------------------------------------

    def _new_input(self, name: str, shape: list | tuple | None, dtype: Any) -> Value:
        if not isinstance(shape, (list, tuple)):
            raise BadModelFile(f"{self.source.path}: the model config is invalid: input {name!r} declares no "
                               "batch_shape (the shape of its input is unknown)")
        spec = TensorSpec(tuple(None if d is None else int(d) for d in shape), _dtype_name(dtype))
        value = Value(name, spec)
        self.graph.inputs.append(value)
        self.graph.input_names.append(name)
        return value

    def _sequential_input_shape(self, cfg: dict, layers: list[dict]) -> tuple[list, Any, str]:
        first = layers[0] if layers else {}
        first_cfg = first.get("config", {})
        if first.get("class_name") == "InputLayer":
            shape = first_cfg.get("batch_shape") or first_cfg.get("batch_input_shape")
            return shape, first_cfg.get("dtype", "float32"), first_cfg.get("name", "input")
        shape = first_cfg.get("batch_input_shape") or first_cfg.get("batch_shape")
        if shape is None:
            shape = (cfg.get("build_config") or {}).get("input_shape") or cfg.get("config", {}).get("build_input_shape")
        if shape is None:
            raise BadModelFile(
                f"{self.source.path}: the Sequential model was never built, so its input shape is "
                "unknown. Give it an Input(...) or call it once before saving."
            )
        return shape, first_cfg.get("dtype", "float32"), "input"

    # -- model kinds ----------------------------------------------------------------------

    def _import_sequential(
        self, cfg: dict, reader: WeightReader, prefix: str, bound_inputs: list[Value] | None
    ) -> list[Value]:
        layers = cfg["config"]["layers"]
        if bound_inputs is None:
            shape, dtype, name = self._sequential_input_shape(cfg, layers)
            current = self._new_input(name, shape, dtype)
        else:
            current = bound_inputs[0]
        for raw in layers:
            if raw.get("class_name") == "InputLayer":
                continue
            entry = self._parse(raw)
            outputs = self._import_call(entry, LayerCall([]), 0, [current], {}, reader, prefix)
            if len(outputs) != 1:
                raise InvalidGraph(f"{self.source.path}: layer {entry.name!r} in a Sequential model has {len(outputs)} outputs")
            current = outputs[0]
        return [current]

    def _import_functional(
        self, cfg: dict, reader: WeightReader, prefix: str, bound_inputs: list[Value] | None
    ) -> list[Value]:
        body = cfg["config"]
        entries = [self._parse(raw) for raw in body["layers"]]
        by_name = {e.name: e for e in entries}
        produced: dict[TensorRef, Value] = {}
        input_refs = refs_from_spec(body["input_layers"])
        if bound_inputs is not None and len(bound_inputs) != len(input_refs):
            raise InvalidGraph(f"{self.source.path}: nested model {prefix!r} takes {len(input_refs)} inputs, got {len(bound_inputs)}")
        for i, ref in enumerate(input_refs):
            entry = by_name.get(ref.layer)
            if entry is None:
                raise InvalidGraph(f"{self.source.path}: model input {ref.layer!r} is not among the layers")
            if bound_inputs is not None:
                produced[TensorRef(ref.layer, 0, 0)] = bound_inputs[i]
            else:
                shape = entry.config.get("batch_shape") or entry.config.get("batch_input_shape")
                produced[TensorRef(ref.layer, 0, 0)] = self._new_input(entry.name, shape, entry.config.get("dtype", "float32"))

        offsets = _call_index_offsets(entries, body["output_layers"])
        pending = [
            (entry, call_index, call)
            for entry in entries
            if entry.class_name != "InputLayer"
            for call_index, call in enumerate(entry.calls)
        ]
        while pending:
            progressed = False
            still_pending = []
            for entry, call_index, call in pending:
                needed = call.inputs + [r for refs in call.tensor_kwargs.values() for r in refs]
                if not all(ref in produced for ref in needed):
                    still_pending.append((entry, call_index, call))
                    continue
                inputs = [produced[ref] for ref in call.inputs]
                tensor_kwargs = {k: [produced[r] for r in refs] for k, refs in call.tensor_kwargs.items()}
                outputs = self._import_call(entry, call, call_index, inputs, tensor_kwargs, reader, prefix)
                for tensor_index, value in enumerate(outputs):
                    produced[TensorRef(entry.name, call_index + offsets.get(entry.name, 0), tensor_index)] = value
                progressed = True
            if not progressed:
                raise InvalidGraph(_unresolved_message(self.source.path, still_pending, by_name))
            pending = still_pending

        outputs = []
        for ref in refs_from_spec(body["output_layers"]):
            if ref not in produced:
                raise InvalidGraph(f"{self.source.path}: model output {ref.layer!r} is never computed")
            outputs.append(produced[ref])
        return outputs

    def _parse(self, raw: dict) -> LayerEntry:
        try:
            return parse_layer(raw, self.source.path)
        except ConversionError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            name = raw.get("name") if isinstance(raw, dict) else None
            raise BadModelFile(
                f"{self.source.path}: the model config is invalid: layer {name!r}: its inbound nodes are "
                f"malformed ({describe_exception(exc)})"
            ) from exc

    # -- one layer call -------------------------------------------------------------------

    def _import_call(
        self,
        entry: LayerEntry,
        call: LayerCall,
        call_index: int,
        inputs: list[Value],
        tensor_kwargs: dict[str, list[Value]],
        reader: WeightReader,
        prefix: str,
    ) -> list[Value]:
        """One layer call; a failure that is not already a ConversionError is a problem of
        the file at this layer (its config or its weights), said so with the layer's name."""
        try:
            return self._import_call_unchecked(entry, call, call_index, inputs, tensor_kwargs, reader, prefix)
        except ConversionError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, ArithmeticError, OSError,
                RuntimeError, MemoryError, AssertionError) as exc:
            raise BadModelFile(
                f"{self.source.path}: layer {prefix + entry.name!r} ({entry.class_name}): {describe_exception(exc)}"
            ) from exc

    def _import_call_unchecked(
        self,
        entry: LayerEntry,
        call: LayerCall,
        call_index: int,
        inputs: list[Value],
        tensor_kwargs: dict[str, list[Value]],
        reader: WeightReader,
        prefix: str,
    ) -> list[Value]:
        name = prefix + entry.name
        if entry.is_model:
            inner_layers = entry.config.get("layers", [])
            nested_reader = reader.nested(entry.name, inner_layers, entry.class_name == "Sequential")
            outer = self.scope
            self.scope = (*outer, (name, bare_class_name(entry.class_name)))
            try:
                outputs = self.import_model(entry.raw, nested_reader, prefix=name + "/", bound_inputs=inputs)
            finally:
                self.scope = outer
            return _in_call_order(outputs, entry.config.get("output_layers"))
        # A keras_hub layer is a block of its own (its importer writes several submodules).
        own = ((name, bare_class_name(entry.class_name)),) if is_keras_hub_class(entry.raw) else ()
        ctx = LayerContext(
            graph=self.graph,
            entry=entry,
            call=call,
            call_index=call_index,
            inputs=inputs,
            tensor_kwargs=tensor_kwargs,
            keras_major=self.source.keras_major,
            name=name,
            file=self.source.path,
            _weights=reader.read(entry.name),
            input_masks=[self.masks.get(id(v)) for v in inputs],
            reader=reader,
            kwarg_masks={k: [self.masks.get(id(v)) for v in vs] for k, vs in tensor_kwargs.items()},
            scope=self.scope + own,
        )
        route = conversion_route(entry.raw)
        if route == "registered":
            ctx._weights = user_layer_weights(ctx, reader, entry.name)
            outputs = import_user_layer(ctx)
        elif route == "traced":
            from tf2torch.frontends.tf.keras_layers import import_traced_layer

            outputs = import_traced_layer(ctx)
        elif route == "native":
            check_layer_weights(ctx)  # user classes keep their own weight layout: only built-ins are checked
            outputs = LAYER_IMPORTERS[entry.class_name](ctx)
        else:
            raise UnsupportedLayers(self.source.path, [UnsupportedLayer(name, entry.class_name, unsupported_reason(entry.raw))])
        record_output_masks(ctx, outputs, self.masks)
        return outputs


def _unresolved_message(file: str, pending: list, by_name: dict) -> str:
    """Why some layers never got their inputs: a reference to a missing layer, or a cycle."""
    needs: dict[str, set[str]] = {}
    for entry, _, call in pending:
        for ref in call.inputs + [r for refs in call.tensor_kwargs.values() for r in refs]:
            if ref.layer not in by_name:
                return f"{file}: layer {entry.name!r} takes the output of {ref.layer!r}, which is not a layer of the model"
            needs.setdefault(entry.name, set()).add(ref.layer)
    cycle = _find_cycle(needs)
    if cycle:
        return (f"{file}: the layer graph has a cycle ({' -> '.join(cycle)}, each taking the output of the next); "
                "a model's layers must form a DAG")
    missing = sorted({e.name for e, _, _ in pending})
    return f"{file}: cannot resolve the inputs of layers {missing} (they refer to calls that do not exist)"


def _find_cycle(needs: dict[str, set[str]]) -> list[str]:
    """A cycle in the 'takes the output of' relation, as a path that returns to its start."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(needs):
        if start in state:
            continue
        state[start] = 1
        path = [start]
        stack = [(start, iter(sorted(needs.get(start, ()))))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                return path[path.index(child):] + [child]
            elif state.get(child) is None:
                state[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(needs.get(child, ())))))
    return []


def _call_index_offsets(entries: list[LayerEntry], output_spec: object) -> dict[str, int]:
    """Keras 2 numbers a nested model's calls from 1 (its node 0 is the one it made for its
    own Input); the config lists only the outer calls. Detect it from the references."""
    highest: dict[str, int] = {}
    refs = [r for e in entries for c in e.calls for r in c.inputs + [x for v in c.tensor_kwargs.values() for x in v]]
    for ref in refs + refs_from_spec(output_spec):
        highest[ref.layer] = max(highest.get(ref.layer, 0), ref.call_index)
    return {
        e.name: 1
        for e in entries
        if e.is_model and e.calls and highest.get(e.name, 0) >= len(e.calls)
    }


def _dtype_name(dtype: Any) -> str:
    if isinstance(dtype, dict):  # Keras 3 DTypePolicy
        dtype = dtype.get("config", {}).get("name", "float32")
    dtype = str(dtype or "float32")
    return "float32" if dtype.startswith("mixed") else dtype

"""Per-layer report of a Keras file: name, class, output shape, parameter count, supported.

Works without TensorFlow: the file is read by the Keras frontend and the layer graph is
imported into the IR to compute output shapes. Layers after an unsupported (or failing)
layer get no shape ('?' in the CLI) but are still listed, so one run shows every problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from tf2torch.errors import ConversionError
from tf2torch.frontends.keras.archive import KerasSource, KerasV3WeightReader, WeightReader, load_keras_file
from tf2torch.frontends.keras.importer import _ModelWalker, conversion_route, is_traced_tf_function, unsupported_reason
from tf2torch.frontends.keras.layer_calls import LayerCall, LayerEntry, has_layer_graph, refs_from_spec
from tf2torch.frontends.keras.user_code import (
    UnsavableLayers,
    current_session,
    has_functional_graph,
    is_keras_hub_class,
    save_functional_copy,
    user_code_session,
)
from tf2torch.ir import Graph, TensorSpec, Value

Shape = tuple[int | None, ...]
_MAX_OUTPUTS = 64  # placeholder outputs of a layer whose real output count is unknown


@dataclass
class LayerRow:
    """One Keras layer. `output_shapes` is None where the shape could not be computed."""

    name: str  # prefixed with the enclosing models' names: "encoder/conv1"
    class_name: str
    output_shapes: list[Shape] | None
    params: int
    supported: bool
    note: str = ""  # why a layer is unsupported, or why its shape is unknown
    route: str = "native"  # "native", "registered" (a user converter) or "traced" (TensorFlow)

    @property
    def converts_text(self) -> str:
        if not self.supported:
            return "NO"
        return {"traced": "traced", "registered": "registered"}.get(self.route, "yes")

    @property
    def output_shape_text(self) -> str:
        if self.output_shapes is None:
            return "?"
        texts = ["(" + ", ".join("None" if d is None else str(d) for d in shape) + (",)" if len(shape) == 1 else ")")
                 for shape in self.output_shapes]
        return texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"


def inspect_model(path: str, custom_objects: dict | None = None, *, opted_in: bool = False) -> list[LayerRow]:
    """One row per layer in config order, nested models' layers included after the model's row.

    With custom code (`custom_objects`, `opted_in`: the CLI's --custom-code) custom layers are
    traced, as convert() would, so their rows show whether tracing succeeds.
    Raises BadModelFile (a ConversionError) when the file cannot be read.
    """
    with user_code_session(custom_objects, opted_in or bool(custom_objects)):
        return _inspect(path)


def _inspect(path: str) -> list[LayerRow]:
    source = load_keras_file(str(path))
    try:
        if not has_layer_graph(source.model_config):
            return _inspect_built_model(source)
        walker = _InspectingWalker(Graph(name="inspect", source_format=f"keras{source.keras_major}"), source)
        try:
            walker.import_model(source.model_config, source.weights, prefix="", bound_inputs=None)
        except ConversionError as exc:
            # A model-level problem (e.g. an unbuilt Sequential): the rows gathered so far
            # still stand; the remaining layers are listed without shapes below.
            walker.model_error = str(exc)
        return _rows_in_config_order(source.model_config, "", walker)
    finally:
        source.close()


def failing_layers(source: KerasSource) -> list[tuple[str, str, str]]:
    """(layer name, class, why) of every layer of an open source that fails to import."""
    walker = _InspectingWalker(Graph(name="blockers", source_format=f"keras{source.keras_major}"), source)
    try:
        walker.import_model(source.model_config, source.weights, prefix="", bound_inputs=None)
    except ConversionError:
        pass
    prefix = f"{source.path}: "
    return [
        (name, walker.classes.get(name, "?"), walker.errors.get(name, seen.note).removeprefix(prefix).replace("\n", "\n    "))
        for name, seen in walker.observed.items()
        if seen.shapes is None and seen.note and seen.note != "input shape unknown"
    ]


def _inspect_built_model(source: KerasSource) -> list[LayerRow]:
    """A model whose config has no layer graph (subclassed, keras_hub): with its code, Keras
    builds it; a functional one is inspected layer by layer, another is traced whole."""
    import tempfile

    cfg = source.model_config
    class_name = str(cfg.get("class_name"))
    name = str((cfg.get("config") or {}).get("name") or class_name)
    session = current_session()
    if not session.opted_in and not is_keras_hub_class(cfg):
        note = "a subclassed model: pass the module defining it with --custom-code to trace it"
        return [LayerRow(name, class_name, None, 0, False, note, "")]
    model = session.reference_model(source.path, source.keras_major)
    if has_functional_graph(model):
        with tempfile.TemporaryDirectory(prefix="tf2torch-inspect-") as directory:
            try:
                path, session.keras_model = save_functional_copy(model, directory, name)
            except UnsavableLayers:
                pass
            else:
                return _inspect(path)
    return [LayerRow(name, class_name, None, int(model.count_params()), True, "traced whole", "traced")]


@dataclass
class _Observed:
    shapes: list[Shape] | None
    params: int
    note: str = ""


class _InspectingWalker(_ModelWalker):
    """The importer's model walker, tolerant: an unsupported or failing layer yields
    placeholder outputs instead of an error, and the layers fed by them are skipped."""

    def __init__(self, graph: Graph, source: KerasSource) -> None:
        super().__init__(graph, source)
        self.observed: dict[str, _Observed] = {}
        self.placeholders: set[int] = set()
        self.model_error = ""
        self.classes: dict[str, str] = {}  # layer name -> class name
        self.errors: dict[str, str] = {}  # layer name -> the whole message of its failure
        self._sequential_depth: list[bool] = []

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
        name = prefix + entry.name
        self.classes[name] = entry.class_name
        all_inputs = inputs + [v for values in tensor_kwargs.values() for v in values]
        unknown_input = any(id(v) in self.placeholders for v in all_inputs)
        if entry.is_model:
            if unknown_input:
                return self._placeholders(entry, name)
            try:
                return super()._import_call(entry, call, call_index, inputs, tensor_kwargs, reader, prefix)
            except ConversionError as exc:
                self._record(name, None, 0, str(exc), call_index)
                return self._placeholders(entry, name)
        params = _param_count(reader, entry.name)
        if conversion_route(entry.raw) is None:
            self._record(name, None, params, unsupported_reason(entry.raw), call_index)
            return self._placeholders(entry, name)
        if unknown_input:
            self._record(name, None, params, "input shape unknown", call_index)
            return self._placeholders(entry, name)
        try:
            outputs = super()._import_call(entry, call, call_index, inputs, tensor_kwargs, reader, prefix)
        except ConversionError as exc:
            self.errors.setdefault(name, str(exc))
            self._record(name, None, params, _first_line(str(exc)).removeprefix(f"{self.source.path}: "), call_index)
            return self._placeholders(entry, name)
        self._record(name, [v.spec.shape for v in outputs], params, "", call_index)
        return outputs

    def _record(self, name: str, shapes: list[Shape] | None, params: int, note: str, call_index: int) -> None:
        if call_index == 0 or name not in self.observed:
            self.observed[name] = _Observed(shapes, params, note)

    def _import_sequential(self, *args: Any, **kwargs: Any) -> list[Value]:
        self._sequential_depth.append(True)
        try:
            return super()._import_sequential(*args, **kwargs)
        finally:
            self._sequential_depth.pop()

    def _import_functional(self, *args: Any, **kwargs: Any) -> list[Value]:
        self._sequential_depth.append(False)
        try:
            return super()._import_functional(*args, **kwargs)
        finally:
            self._sequential_depth.pop()

    def _placeholders(self, entry: LayerEntry, name: str) -> list[Value]:
        """Stand-ins for the outputs of a layer whose shapes are unknown: one in a Sequential
        model, else more than any consumer could refer to."""
        count = 1 if self._sequential_depth and self._sequential_depth[-1] else _MAX_OUTPUTS
        values = [Value(f"{name}:{i}", TensorSpec(())) for i in range(count)]
        self.placeholders.update(id(v) for v in values)
        return values


def _param_count(reader: WeightReader, layer_name: str) -> int:
    """Every stored variable of the layer, including those of sub-objects (an RNN's cell)."""
    try:
        if isinstance(reader, KerasV3WeightReader):
            group = reader.group(layer_name)
            return 0 if group is None else _dataset_sizes(group)
        return int(sum(int(np.asarray(w).size) for w in reader.read(layer_name)))
    except (KeyError, ValueError, OSError):
        return 0


def _dataset_sizes(group: h5py.Group) -> int:
    total = 0

    def add(_name: str, item: object) -> None:
        nonlocal total
        if isinstance(item, h5py.Dataset):
            total += int(item.size)

    group.visititems(add)
    return total


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _rows_in_config_order(model_config: dict, prefix: str, walker: _InspectingWalker) -> list[LayerRow]:
    rows: list[LayerRow] = []
    for raw in model_config.get("config", {}).get("layers", []):
        class_name = raw.get("class_name", "?")
        layer_config = raw.get("config", {})
        name = prefix + str(raw.get("name") or layer_config.get("name", "?"))
        observed = walker.observed.get(name)
        if class_name == "InputLayer":
            shape = layer_config.get("batch_shape") or layer_config.get("batch_input_shape")
            shapes = [tuple(shape)] if shape is not None else None
            rows.append(LayerRow(name, class_name, shapes, 0, True))
            continue
        if class_name in ("Functional", "Model", "Sequential"):
            nested = _rows_in_config_order(raw, name + "/", walker)
            shapes = observed.shapes if observed else _model_output_shapes(raw, name + "/", walker)
            params = sum(r.params for r in nested)
            note = observed.note if observed else ""
            supported = all(r.supported for r in nested)
            rows.append(LayerRow(name, class_name, shapes, params, supported, note))
            rows.extend(nested)
            continue
        route = conversion_route(raw)
        if route == "native" and is_traced_tf_function(raw):
            route = "traced"  # shown as such; its importer does the tracing
        supported = route is not None
        if observed is None:
            if not supported:
                note = unsupported_reason(raw)
            else:
                note = _first_line(walker.model_error) if walker.model_error else "not reached"
            rows.append(LayerRow(name, class_name, None, 0, supported, note, route or ""))
            continue
        # A traced layer whose tracing failed is not supported after all.
        failed = route == "traced" and observed.shapes is None and observed.note != "input shape unknown"
        rows.append(LayerRow(name, class_name, observed.shapes, observed.params, supported and not failed,
                             observed.note, route or ""))
    return rows


def _model_output_shapes(raw: dict, prefix: str, walker: _InspectingWalker) -> list[Shape] | None:
    """A nested model's output shape: that of its last layer (Sequential) or output layers."""
    body: dict[str, Any] = raw.get("config", {})
    layers = body.get("layers", [])
    if raw.get("class_name") == "Sequential":
        names = [prefix + str(layers[-1].get("name") or layers[-1]["config"]["name"])] if layers else []
    else:
        try:
            names = [prefix + ref.layer for ref in refs_from_spec(body.get("output_layers", []))]
        except ConversionError:
            return None
    shapes: list[Shape] = []
    for name in names:
        observed = walker.observed.get(name)
        if observed is None or observed.shapes is None:
            return None
        shapes.append(observed.shapes[0])
    return shapes or None



def supported_layers() -> list[str]:
    """Keras layer classes tf2torch converts (sorted; InputLayer and user-registered layers left out)."""
    from tf2torch.frontends.keras.registry import LAYER_IMPORTERS

    return sorted(name for name in LAYER_IMPORTERS if name != "InputLayer")

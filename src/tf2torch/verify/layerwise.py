"""Layer-by-layer verification: every Keras layer's output against the converted code's.

The torch side is the generated model.py itself, rendered once more with `_tap(...)` calls
after the statements that compute each Keras layer's output (codegen.render `taps`), so
nothing is re-implemented here. A structured model.py (block classes) is tapped through its
flat rendering: the same statements in one forward(), so layers inside blocks are compared
too, loaded with the structured module's weights under their flat names. The Keras side is a probe model whose outputs are all the
layers' outputs. Tensors are compared in the Keras layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tf2torch.codegen.loader import import_source
from tf2torch.codegen.render import render_module
from tf2torch.ir import Graph, Value
from tf2torch.verify.compare import DEFAULT_TOLERANCE, compare_output
from tf2torch.verify.runner import run_keras, to_source_layout, to_torch_layout

if TYPE_CHECKING:
    from tf2torch.api import ConversionResult

INACCURATE_LIMIT = 1e-3  # relative error above this is a failure, below it rounding drift


@dataclass
class LayerCheck:
    name: str
    class_name: str
    shape: tuple[int, ...]
    max_abs_error: float
    max_rel_error: float
    status: str  # OK, INACCURATE, FAILED


@dataclass
class LayerReport:
    source: str
    mode: str
    layers: list[LayerCheck] = field(default_factory=list)
    not_compared: list[str] = field(default_factory=list)  # e.g. shared layers, nested models

    @property
    def first_divergence(self) -> LayerCheck | None:
        for status in ("FAILED", "INACCURATE"):
            for check in self.layers:
                if check.status == status:
                    return check
        return None

    def table(self) -> str:
        lines = [f"Layer-by-layer verification of {self.source} ({self.mode} mode):"]
        lines.append(f"{'layer':<32} {'class':<22} {'max abs err':>12} {'rel to max':>12}  status")
        for c in self.layers:
            lines.append(f"{c.name:<32} {c.class_name:<22} {c.max_abs_error:>12.3e} {c.max_rel_error:>12.3e}  {c.status}")
        if self.not_compared:
            lines.append(f"not compared (shared or nested): {', '.join(self.not_compared)}")
        first = self.first_divergence
        if first is None:
            lines.append("Every layer matches.")
        else:
            lines.append(f"First divergence: layer '{first.name}' ({first.class_name}), {first.status}.")
        return "\n".join(lines)


def _final_values(graph: Graph) -> dict[str, list[Value]]:
    """Keras layer name -> the IR values of its (first call's) final node."""
    final: dict[str, list[Value]] = {}
    for node in graph.nodes:
        if node.source.kind != "layout" and node.source.call_index == 0:
            final[node.source.name] = node.outputs
    return final


def _keras_probe(model: Any) -> tuple[Any, list[tuple[str, str, int]], list[str]]:
    """A Keras model returning every single-call layer's outputs, and what each output is."""
    outputs, keys, skipped = [], [], []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        try:
            out = layer.output
        except (AttributeError, ValueError, RuntimeError):
            skipped.append(layer.name)
            continue
        tensors = list(out) if isinstance(out, (list, tuple)) else [out]
        for i, tensor in enumerate(tensors):
            outputs.append(tensor)
            keys.append((layer.name, type(layer).__name__, i))
    model_class = type(model).__mro__[[c.__name__ for c in type(model).__mro__].index("Model")]
    inputs = model.inputs if len(model.inputs) > 1 else model.inputs[0]
    return model_class(inputs, outputs), keys, skipped


def _source_layout(tensor: torch.Tensor, value: Value) -> np.ndarray:
    array = to_source_layout(tensor, value)
    if value.feature_order is not None:
        restored = np.empty_like(array)
        restored[:, value.feature_order] = array
        array = restored
    return array


def verify_layers(
    result: ConversionResult, keras_model: Any, inputs: list[np.ndarray], training: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
) -> LayerReport:
    graph, generated = result.graph, result.generated
    final = _final_values(graph)
    taps = {id(v): f"{name}:{i}" for name, values in final.items() for i, v in enumerate(values)}
    source = render_module(graph, generated.builder, generated.class_name, result.source_path, taps=taps)
    tapped_module = import_source(source)
    module = getattr(tapped_module, generated.class_name)()
    module.load_state_dict(generated.flat_state(result.module.state_dict()), strict=True)
    module.train(training)
    tapped_module.TAPS.clear()
    with torch.no_grad():
        module(*[to_torch_layout(a, v) for a, v in zip(inputs, graph.inputs)])

    probe, keys, skipped = _keras_probe(keras_model)
    expected = run_keras(probe, inputs, training)
    report = LayerReport(result.source_path, "train" if training else "eval", not_compared=skipped)
    for (name, class_name, index), reference in zip(keys, expected):
        key = f"{name}:{index}"
        values = final.get(name)
        if values is None or key not in tapped_module.TAPS or index >= len(values):
            if name not in report.not_compared:
                report.not_compared.append(name)
            continue
        actual = _source_layout(tapped_module.TAPS[key], values[index])
        check = compare_output(name, reference, actual, tolerance)
        status = "OK" if check.status == "OK" else ("INACCURATE" if check.max_rel_error <= INACCURATE_LIMIT else "FAILED")
        report.layers.append(LayerCheck(name, class_name, check.shape, check.max_abs_error, check.max_rel_error, status))
    return report

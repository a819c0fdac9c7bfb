"""Layer-by-layer verification: every Keras layer's output against the converted code's.

The torch side is the generated model.py itself, rendered once more with a
`value = _tap(key, value)` line after the statements that compute each Keras layer's output
(codegen.render `taps`), so nothing is re-implemented here. It runs twice:

- cumulative: the converted model on the inputs; a layer's error includes every earlier
  layer's rounding (in a deep network, fp32 drift grows with depth);
- isolated: every tap hands the *Keras* value on to the layers after it, so each layer is fed
  its Keras inputs and its error is its own. The status comes from the isolated error.

The Keras side is a probe model whose outputs are all the layers' outputs. Tensors are
compared in the Keras layout. A structured model.py (block classes) is tapped through its flat
rendering: the same statements in one forward(), loaded with the structured module's weights
under their flat names, so layers inside blocks are compared too.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tf2torch.codegen.loader import import_source
from tf2torch.codegen.render import render_module
from tf2torch.ir import Graph, Node, Value
from tf2torch.verify.compare import DEFAULT_TOLERANCE, compare_output
from tf2torch.verify.runner import run_keras, to_source_layout, to_torch_layout
from tf2torch.verify.source_lines import layer_lines
from tf2torch.verify.train_noise import silence_torch_noise

if TYPE_CHECKING:
    from tf2torch.api import ConversionResult

INACCURATE_LIMIT = 1e-3  # relative error above this is a failure, below it rounding drift


@dataclass
class LayerCheck:
    name: str
    class_name: str
    shape: tuple[int, ...]
    max_abs_error: float  # isolated: the layer fed the Keras inputs
    max_rel_error: float
    status: str  # OK, INACCURATE, FAILED (from the isolated error)
    cumulative_abs_error: float = 0.0  # the converted model run end to end
    cumulative_rel_error: float = 0.0
    cumulative_rel_error_fp64: float | None = None  # both sides in float64 (--fp64)
    code: list[tuple[int, str]] = field(default_factory=list)  # (model.py line number, text)


@dataclass
class LayerReport:
    source: str
    mode: str
    tolerance: float = DEFAULT_TOLERANCE
    layers: list[LayerCheck] = field(default_factory=list)
    not_compared: list[str] = field(default_factory=list)  # e.g. shared layers, nested models
    fp64_checked: bool = False
    summary_info: dict = field(default_factory=dict, repr=False)  # verify.summary.model_summary
    # What a minimal reproduction needs: (result, keras_model, inputs); set by attach().
    _context: tuple | None = field(default=None, repr=False)

    def attach(self, result: ConversionResult, keras_model: Any, inputs: list[np.ndarray]) -> None:
        """Keep the model summary, and what `minimize` needs, with the report."""
        from tf2torch.verify.summary import model_summary

        self.summary_info = model_summary(result)
        self._context = (result, keras_model, inputs)

    def document(self, *others: LayerReport) -> dict:
        """The verification.json document of this report (and e.g. the train-mode one)."""
        from tf2torch.verify.html_report import verification_document

        return verification_document([self, *others], self.summary_info)

    def save_html(self, path: str | os.PathLike, *others: LayerReport) -> None:
        """verification.html: the error plot, the per-layer table with model.py lines, the summary."""
        from tf2torch.verify.html_report import render_html

        Path(path).write_text(render_html(self.document(*others)), encoding="utf-8")

    def save_json(self, path: str | os.PathLike, *others: LayerReport) -> None:
        Path(path).write_text(json.dumps(self.document(*others), indent=2) + "\n", encoding="utf-8")

    def minimize(self, directory: str | os.PathLike) -> Path | None:
        """Write a reproduction of the first isolated-failing layer into `directory` (None when
        every layer is OK): the one-layer Keras model, its input, its torch code, a script."""
        from tf2torch.verify.minimize import write_reproduction

        first = self.first_divergence
        if first is None:
            return None
        if self._context is None:
            raise ValueError("minimize needs a report from ConversionResult.verify_layers()")
        result, keras_model, inputs = self._context
        return write_reproduction(Path(directory), first, result, keras_model, inputs, self.mode == "train")

    @property
    def first_divergence(self) -> LayerCheck | None:
        for status in ("FAILED", "INACCURATE"):
            for check in self.layers:
                if check.status == status:
                    return check
        return None

    @property
    def first_drift(self) -> LayerCheck | None:
        """The first layer whose cumulative error crosses the tolerance (may be only rounding)."""
        return next((c for c in self.layers if not c.cumulative_rel_error <= self.tolerance), None)

    @property
    def drift_is_rounding(self) -> bool | None:
        """With the fp64 re-run: True when every drifting layer is within the bound in float64."""
        if not self.fp64_checked:
            return None
        return all(
            c.cumulative_rel_error_fp64 is not None and c.cumulative_rel_error_fp64 <= self.tolerance
            for c in self.layers if not c.cumulative_rel_error <= self.tolerance
        )

    def table(self) -> str:
        lines = [f"Layer-by-layer verification of {self.source} ({self.mode} mode):"]
        fp64 = f" {'cumul. fp64':>12}" if self.fp64_checked else ""
        lines.append(f"{'layer':<32} {'class':<22} {'isolated abs':>12} {'isolated rel':>12} {'cumul. rel':>12}{fp64}  status")
        for c in self.layers:
            extra = ""
            if self.fp64_checked:
                extra = f" {c.cumulative_rel_error_fp64:>12.3e}" if c.cumulative_rel_error_fp64 is not None else f" {'-':>12}"
            lines.append(
                f"{c.name:<32} {c.class_name:<22} {c.max_abs_error:>12.3e} {c.max_rel_error:>12.3e} "
                f"{c.cumulative_rel_error:>12.3e}{extra}  {c.status}"
            )
        if self.not_compared:
            lines.append(f"not compared (shared or nested): {', '.join(self.not_compared)}")
        lines.append(self.summary())
        return "\n".join(lines)

    def summary(self) -> str:
        first = self.first_divergence
        if first is None:
            text = "Every layer matches in isolation."
        else:
            text = f"First divergence: layer '{first.name}' ({first.class_name}), {first.status} in isolation."
        drift = self.first_drift
        if drift is not None:
            text += f" Cumulative error crosses {self.tolerance:g} from layer '{drift.name}'"
            rounding = self.drift_is_rounding
            if rounding is None:
                text += " (re-run with --fp64 to tell rounding from a bug)."
            else:
                text += " (fp64: rounding)." if rounding else " (fp64: not only rounding)."
        return text

    def to_dict(self) -> dict:
        return {
            "source": self.source, "mode": self.mode, "tolerance": self.tolerance,
            "inaccurate_limit": INACCURATE_LIMIT, "fp64_checked": self.fp64_checked,
            "first_divergence": self.first_divergence.name if self.first_divergence else None,
            "first_drift": self.first_drift.name if self.first_drift else None,
            "drift_is_rounding": self.drift_is_rounding,
            "not_compared": list(self.not_compared),
            "layers": [
                {"name": c.name, "class_name": c.class_name, "shape": list(c.shape), "status": c.status,
                 "isolated_abs_error": _finite(c.max_abs_error), "isolated_rel_error": _finite(c.max_rel_error),
                 "cumulative_abs_error": _finite(c.cumulative_abs_error),
                 "cumulative_rel_error": _finite(c.cumulative_rel_error),
                 "cumulative_rel_error_fp64": None if c.cumulative_rel_error_fp64 is None else _finite(c.cumulative_rel_error_fp64),
                 "code": [[number, text] for number, text in c.code]}
                for c in self.layers
            ],
        }


def _finite(number: float) -> float | str:
    """JSON has no inf / nan: those are written as strings."""
    return number if np.isfinite(number) else str(number)


def _final_values(graph: Graph) -> dict[str, list[Value]]:
    """Keras layer name -> the IR values of its (first call's) final node."""
    final: dict[str, list[Value]] = {}
    for node in graph.nodes:
        if node.source.kind != "layout" and node.source.call_index == 0:
            final[node.source.name] = node.outputs
    return final


def _nested_outputs(graph: Graph) -> dict[str, str]:
    """Nested model name -> the layer whose output is the model's: its last node's (models
    with one output only, as Keras gives the probe one tensor for them; see _called_output)."""
    last: dict[str, Node] = {}
    for node in graph.nodes:
        if node.source.kind != "layout" and node.source.call_index == 0:
            last.update({name: node for name, kind in node.source.scope if kind in ("Functional", "Sequential")})
    return {name: node.source.name for name, node in last.items() if len(node.outputs) == 1}


def _keras_probe(model: Any) -> tuple[Any, list[tuple[str, str, int]], list[str]]:
    """A Keras model returning every single-call layer's outputs, and what each output is."""
    outputs, keys, skipped = [], [], []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        try:
            out = _called_output(model, layer)
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


def _called_output(model: Any, layer: Any) -> Any:
    """What `model`'s call of `layer` returned. A nested model's `output` is that of its own
    graph (tf.keras, with its own Input): a probe asking for it would be "disconnected", or take
    in the nested layers, whose names may repeat. The call node belonging to `model` is used."""
    own_nodes = {id(node) for nodes in getattr(model, "_nodes_by_depth", {}).values() for node in nodes}
    for node in getattr(layer, "_inbound_nodes", None) or []:
        if id(node) in own_nodes:
            out = node.output_tensors
            tensors = list(out) if isinstance(out, (list, tuple)) else [out]
            return tensors[0] if len(tensors) == 1 else tensors
    return layer.output


def _source_layout(tensor: torch.Tensor, value: Value) -> np.ndarray:
    array = to_source_layout(tensor, value)
    if value.feature_order is not None:
        restored = np.empty_like(array)
        restored[:, value.feature_order] = array
        array = restored
    return array


def _torch_layout(array: np.ndarray, value: Value, like: torch.Tensor) -> torch.Tensor | None:
    """A Keras reference as the converted code holds it (None when it cannot stand in)."""
    if value.feature_order is not None:
        array = array[:, value.feature_order]
    tensor = to_torch_layout(np.array(array), value)  # a writable copy (Keras arrays are read-only)
    if tuple(tensor.shape) != tuple(like.shape):
        return None
    return tensor.to(like.dtype)


@dataclass
class _Tapped:
    """The generated code with taps, and what each tap key is."""

    module: Any  # the imported source module (TAPS, SUBSTITUTES)
    model: torch.nn.Module
    final: dict[str, list[Value]]
    code: dict[str, list[tuple[int, str]]]
    aliases: dict[str, str]  # nested model -> the layer computing its output (the tap's name)


def _tapped_model(result: ConversionResult) -> _Tapped:
    graph, generated = result.graph, result.generated
    final = _final_values(graph)
    taps = {id(v): f"{name}:{i}" for name, values in final.items() for i, v in enumerate(values)}
    aliases = {name: layer for name, layer in _nested_outputs(graph).items() if layer in final}
    source = render_module(graph, generated.builder, generated.class_name, result.source_path, taps=taps)
    tapped_module = import_source(source)
    model = getattr(tapped_module, generated.class_name)()
    model.load_state_dict(generated.flat_state(result.module.state_dict()), strict=True)
    final.update({name: final[layer] for name, layer in aliases.items()})
    return _Tapped(tapped_module, model, final, layer_lines(source, result.source_code), aliases)


def _run_tapped(
    tapped: _Tapped, graph: Graph, inputs: list[np.ndarray], training: bool, substitutes: dict[str, torch.Tensor],
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    tapped.module.TAPS.clear()
    tapped.module.SUBSTITUTES.clear()
    tapped.module.SUBSTITUTES.update({_tap_key(tapped, key): value for key, value in substitutes.items()})
    model = tapped.model.to(dtype)
    # Training mode updates BatchNorm statistics: each run starts from the converted ones.
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.train(training)
    try:
        with torch.no_grad():
            args = [to_torch_layout(a, v) for a, v in zip(inputs, graph.inputs)]
            model(*[a.to(dtype) if a.is_floating_point() else a for a in args])
    finally:
        model.load_state_dict(state)
        model.eval()
        tapped.module.SUBSTITUTES.clear()
    taps = dict(tapped.module.TAPS)
    for name, layer in tapped.aliases.items():
        taps.update({f"{name}:{key.rsplit(':', 1)[1]}": value for key, value in taps.items()
                     if key.rsplit(":", 1)[0] == layer})
    return taps


def _tap_key(tapped: _Tapped, key: str) -> str:
    name, index = key.rsplit(":", 1)
    return f"{tapped.aliases.get(name, name)}:{index}"


def verify_layers(
    result: ConversionResult, keras_model: Any, inputs: list[np.ndarray], training: bool = False,
    tolerance: float = DEFAULT_TOLERANCE, fp64: bool = False, progress: Any = None,
) -> LayerReport:
    """Compare every layer cumulatively and in isolation. `fp64`: when the cumulative error
    crosses `tolerance`, run both sides once more in float64 to tell rounding from a bug."""
    graph = result.graph
    tapped = _tapped_model(result)
    if training:
        silence_torch_noise(tapped.model)
    probe, keys, skipped = _keras_probe(keras_model)
    expected = run_keras(probe, inputs, training)
    _step(progress, "Keras")
    cumulative = _run_tapped(tapped, graph, inputs, training, {})
    _step(progress, "cumulative")
    substitutes = {}
    for (name, _, index), reference in zip(keys, expected):
        key = f"{name}:{index}"
        values = tapped.final.get(name)
        if values is not None and key in cumulative and index < len(values):
            tensor = _torch_layout(reference, values[index], cumulative[key])
            if tensor is not None:
                substitutes[key] = tensor
    isolated = _run_tapped(tapped, graph, inputs, training, substitutes)
    _step(progress, "isolated")

    report = LayerReport(result.source_path, "train" if training else "eval", tolerance, not_compared=skipped)
    for (name, class_name, index), reference in zip(keys, expected):
        key = f"{name}:{index}"
        values = tapped.final.get(name)
        if values is None or key not in cumulative or index >= len(values):
            if name not in report.not_compared:
                report.not_compared.append(name)
            continue
        together = compare_output(name, reference, _source_layout(cumulative[key], values[index]), tolerance)
        alone = compare_output(name, reference, _source_layout(isolated[key], values[index]), tolerance)
        status = "OK" if alone.status == "OK" else ("INACCURATE" if alone.max_rel_error <= INACCURATE_LIMIT else "FAILED")
        report.layers.append(LayerCheck(
            name, class_name, alone.shape, alone.max_abs_error, alone.max_rel_error, status,
            together.max_abs_error, together.max_rel_error, code=tapped.code.get(name, []),
        ))
    if fp64 and report.first_drift is not None:
        _fp64_rerun(report, tapped, graph, keras_model, keys, inputs, training)
        _step(progress, "fp64")
    return report


def _step(progress: Any, label: str) -> None:
    if progress is not None:
        progress.advance(label)


def _fp64_rerun(
    report: LayerReport, tapped: _Tapped, graph: Graph, keras_model: Any, keys: list, inputs: list[np.ndarray],
    training: bool,
) -> None:
    """Cumulative errors with both sides in float64 (the Keras model rebuilt with a float64 policy)."""
    from tf2torch.verify.fp64 import keras_float64

    model64 = keras_float64(keras_model)
    probe, keys64, _ = _keras_probe(model64)
    inputs64 = [a.astype(np.float64) if np.issubdtype(a.dtype, np.floating) else a for a in inputs]
    expected = dict(zip([f"{n}:{i}" for n, _, i in keys64], run_keras(probe, inputs64, training)))
    try:
        ours = _run_tapped(tapped, graph, inputs64, training, {}, dtype=torch.float64)
    finally:
        tapped.model.to(torch.float32)
    index_of = {f"{n}:{i}": i for n, _, i in keys}
    for check in report.layers:
        key = f"{check.name}:0" if f"{check.name}:0" in index_of else None
        values = tapped.final.get(check.name)
        if key is None or key not in ours or key not in expected or values is None:
            continue
        compared = compare_output(check.name, expected[key], _source_layout(ours[key], values[0]), report.tolerance)
        check.cumulative_rel_error_fp64 = compared.max_rel_error
    report.fp64_checked = True


__all__ = ["INACCURATE_LIMIT", "LayerCheck", "LayerReport", "verify_layers"]

"""verification.json and verification.html: the layer-by-layer reports as one document.

The HTML is drawn from the JSON document (every number in the page is in the JSON) and is
self-contained: inline CSS and an SVG plot built here, no script, nothing fetched at view time.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tf2torch.verify.compare import VerificationReport
    from tf2torch.verify.layerwise import LayerReport

SCHEMA_VERSION = 1
_FLOOR = 1e-12  # exact zeros are drawn at this height of the log scale
_WIDTH, _HEIGHT, _LEFT, _RIGHT, _TOP, _BOTTOM = 960, 340, 64, 16, 16, 40
_COLORS = {"eval": "#1f6feb", "train": "#d1242f"}


def verification_document(
    layer_reports: list[LayerReport], summary: dict | None = None, outputs: VerificationReport | None = None
) -> dict:
    """The machine-readable report (verification.json)."""
    document: dict = {"schema_version": SCHEMA_VERSION, "summary": summary or {}}
    if layer_reports:
        document["source"] = layer_reports[0].source
    if outputs is not None:
        # The model outputs' check at the top level, as verification.json has always had it.
        document.update(outputs.to_dict())
    document["modes"] = [report.to_dict() for report in layer_reports]
    return document


def _log_y(value: float | str | None, low: float, high: float) -> float:
    number = float(value) if value is not None else math.inf
    if not math.isfinite(number):
        number = 10**high
    exponent = math.log10(max(number, _FLOOR))
    exponent = min(max(exponent, low), high)
    return _TOP + (high - exponent) / (high - low) * (_HEIGHT - _TOP - _BOTTOM)


def _x(index: int, count: int) -> float:
    span = _WIDTH - _LEFT - _RIGHT
    return _LEFT + (span * index / (count - 1) if count > 1 else span / 2)


def _plot(document: dict) -> str:
    modes = document["modes"]
    count = max((len(m["layers"]) for m in modes), default=0)
    numbers = [float(layer[k]) for m in modes for layer in m["layers"]
               for k in ("isolated_rel_error", "cumulative_rel_error") if math.isfinite(float(layer[k]))]
    tolerance = modes[0]["tolerance"] if modes else 1e-5
    low = math.floor(math.log10(max(min(numbers + [tolerance], default=tolerance), _FLOOR)))
    high = max(math.ceil(math.log10(max(max(numbers + [tolerance], default=tolerance), _FLOOR))), low + 1)
    parts = [(f'<svg id="error-plot" xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
             f'viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" aria-label="relative error per layer, log scale">')]
    for exponent in range(low, high + 1):
        y = _log_y(10.0**exponent, low, high)
        parts.append(f'<line class="grid" x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text class="axis" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">1e{exponent}</text>')
    y = _log_y(tolerance, low, high)
    parts.append(f'<line class="tolerance" x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
                 f'<text class="axis" x="{_WIDTH - _RIGHT}" y="{y - 4:.1f}" text-anchor="end">tolerance {tolerance:g}</text>')
    for mode in modes:
        color = _COLORS.get(mode["mode"], "#555")
        layers = mode["layers"]
        names = [layer["name"] for layer in layers]
        first = mode["first_divergence"]
        if first in names:
            x = _x(names.index(first), count)
            parts.append(f'<line class="first-divergence" data-mode="{mode["mode"]}" x1="{x:.1f}" x2="{x:.1f}" '
                         f'y1="{_TOP}" y2="{_HEIGHT - _BOTTOM}"/><text class="axis" x="{x + 4:.1f}" y="{_TOP + 10}">'
                         f'first divergence: {html.escape(first)} ({mode["mode"]})</text>')
        for series in ("cumulative", "isolated"):
            points = [(_x(i, count), _log_y(layer[f"{series}_rel_error"], low, high)) for i, layer in enumerate(layers)]
            if series == "cumulative":  # isolated errors are independent per layer: dots only
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
                parts.append(f'<polyline class="series {series} {mode["mode"]}" fill="none" stroke="{color}" points="{path}"/>')
            for (x, y), layer in zip(points, layers):
                shape = "circle" if series == "isolated" else "rect"
                tip = f'{layer["name"]} ({layer["class_name"]}): {series} {layer[f"{series}_rel_error"]}, {layer["status"]}'
                marker = (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3"' if shape == "circle"
                          else f'<rect x="{x - 2:.1f}" y="{y - 2:.1f}" width="4" height="4"')
                status = layer["status"] if series == "isolated" else "drift"
                parts.append(f'{marker} class="point {series} {mode["mode"]} {status}" fill="{color}" '
                             f'data-layer="{html.escape(layer["name"])}"><title>{html.escape(tip)}</title></{shape}>')
    parts.append(f'<text class="axis" x="{_LEFT}" y="{_HEIGHT - 8}">layers in graph order ({count}); '
                 'line and squares: cumulative; circles: isolated (fed the Keras inputs); '
                 'eval blue, train red; exact zeros at the bottom</text>')
    parts.append("</svg>")
    return "".join(parts)


def _number(value: float | str | None) -> str:
    if value is None:
        return "-"
    return f"{float(value):.2e}"


def _summary_html(document: dict) -> str:
    summary = document["summary"]
    if not summary:
        return ""
    rows = [
        ("class", summary.get("class_name")),
        ("parameters", f'{summary["parameters"]:,} ({summary["trainable_fraction"]:.1%} trainable)'),
        ("BatchNorm layers kept", summary["batchnorm_layers"]),
    ]
    for kind in ("inputs", "outputs"):
        for entry in summary[kind]:
            if entry["torch_layout"] == "as Keras":
                text = f'{entry["torch_shape"]} {entry["dtype"]} (the Keras layout)'
            else:
                text = (f'torch {entry["torch_layout"]} {entry["torch_shape"]}, Keras {entry["keras_layout"]} '
                        f'{entry["keras_shape"]}, {entry["dtype"]}')
            rows.append((kind[:-1] + " " + entry["name"], text))
    if summary.get("conversion_seconds") is not None:
        rows.append(("conversion time", f'{summary["conversion_seconds"]:.2f} s'))
    rows.append(("versions", ", ".join(f"{k} {v}" for k, v in summary["versions"].items() if v)))
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f'<table id="summary">{cells}</table>'


def _layer_table(document: dict) -> str:
    modes = document["modes"]
    if not modes:
        return ""
    head = ["layer", "class", "output shape"]
    for mode in modes:
        m = mode["mode"]
        head += [f"{m} isolated abs", f"{m} isolated rel", f"{m} cumulative rel"]
        if mode["fp64_checked"]:
            head.append(f"{m} cumulative rel fp64")
        head.append(f"{m} status")
    head.append("model.py")
    rows = ["<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    by_mode = [{layer["name"]: layer for layer in mode["layers"]} for mode in modes]
    for layer in modes[0]["layers"]:
        cells = [f'<td class="name">{html.escape(layer["name"])}</td>', f'<td>{html.escape(layer["class_name"])}</td>',
                 f'<td>{html.escape(str(layer["shape"]))}</td>']
        statuses = []
        for mode, layers in zip(modes, by_mode):
            entry = layers.get(layer["name"])
            if entry is None:
                cells += ["<td>-</td>"] * (4 + mode["fp64_checked"])
                continue
            drift = "drift" if not float(entry["cumulative_rel_error"]) <= mode["tolerance"] else ""
            cells += [f'<td>{_number(entry["isolated_abs_error"])}</td>', f'<td>{_number(entry["isolated_rel_error"])}</td>',
                      f'<td class="{drift}">{_number(entry["cumulative_rel_error"])}</td>']
            if mode["fp64_checked"]:
                cells.append(f'<td>{_number(entry["cumulative_rel_error_fp64"])}</td>')
            cells.append(f'<td class="status {entry["status"]}" data-mode="{mode["mode"]}">{entry["status"]}</td>')
            statuses.append(entry["status"])
        code = "\n".join(f"{number:>5}  {text}" for number, text in layer["code"])
        cells.append(f"<td><details><summary>{len(layer['code'])} lines</summary><pre>{html.escape(code)}</pre></details></td>"
                     if layer["code"] else "<td></td>")
        worst = "FAILED" if "FAILED" in statuses else ("INACCURATE" if "INACCURATE" in statuses else "OK")
        rows.append(f'<tr class="layer {worst}" data-layer="{html.escape(layer["name"])}">' + "".join(cells) + "</tr>")
    return f'<table id="layers">{"".join(rows)}</table>'


def _verdicts(document: dict) -> str:
    items = []
    for mode in document["modes"]:
        if mode["first_divergence"] is None:
            text = f'{mode["mode"]}: every layer is isolated-OK'
        else:
            text = f'{mode["mode"]}: first divergence at layer {mode["first_divergence"]}'
        if mode["first_drift"] is not None:
            text += f'; cumulative error crosses {mode["tolerance"]:g} from layer {mode["first_drift"]}'
            if mode["drift_is_rounding"] is True:
                text += " (float64 re-run: rounding)"
            elif mode["drift_is_rounding"] is False:
                text += " (float64 re-run: not only rounding)"
        items.append(f"<li>{html.escape(text)}</li>")
    if "ok" in document:
        items.append(f'<li>model outputs ({document["mode"]} mode): {"OK" if document["ok"] else "FAILED"}</li>')
    return f'<ul id="verdict">{"".join(items)}</ul>'


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1f2328}
table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
#layers td{font-variant-numeric:tabular-nums}.status.OK{color:#1a7f37}.status.FAILED{color:#d1242f;font-weight:bold}
.status.INACCURATE{color:#9a6700}td.drift{background:#fff8c5}pre{margin:4px 0;font-size:12px}
svg .grid{stroke:#eaeef2}svg .tolerance{stroke:#d1242f;stroke-dasharray:2 2}svg .first-divergence{stroke:#9a6700}
svg .axis{font-size:11px;fill:#57606a}
"""


def render_html(document: dict) -> str:
    """verification.html from the verification document."""
    title = f'tf2torch verification of {Path(document.get("source", "model")).name}'
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n{_verdicts(document)}\n"
        f"<h2>Model</h2>\n{_summary_html(document)}\n"
        "<h2>Relative error per layer</h2>\n<p>Isolated: each layer fed the Keras values of its inputs, so its error is "
        "its own; the status comes from it. Cumulative: the converted model run end to end (rounding grows with depth)."
        f"</p>\n{_plot(document)}\n<h2>Layers</h2>\n{_layer_table(document)}\n"
        f'<p class="schema">schema_version {document["schema_version"]}</p></body></html>\n'
    )

"""`tf2torch inspect` on a TF graph (SavedModel directory or frozen .pb): every op type the
outputs depend on (function bodies, loop bodies and branches included), with its count and
whether it converts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tf2torch.frontends.tf.registry import TF_OP_IMPORTERS


@dataclass
class OpRow:
    op_type: str
    count: int
    status: str  # "yes", "NO", or "NO (<reason>)"

    @property
    def supported(self) -> bool:
        return self.status == "yes"


def inspect_tf_ops(path: str, signature: str = "serving_default", inputs: list[str] | None = None,
                   outputs: list[str] | None = None) -> list[OpRow]:
    from tf2torch.frontends.tf.loader import import_graph_def_file, import_saved_model

    if Path(path).is_dir():
        imported = import_saved_model(path, signature, tolerant=True)
    else:
        imported = import_graph_def_file(path, inputs, outputs, tolerant=True)
    return op_rows(imported.importer)


def op_rows(importer: Any) -> list[OpRow]:
    """One row per op type a tolerant GraphImporter met, sorted by name."""
    rows = []
    for op_type, count in sorted(importer.op_counts.items()):
        if op_type in importer.unsupported:
            status = "NO"
        elif op_type in importer.failures:
            status = f"NO ({importer.failures[op_type]})"
        else:
            status = "yes"
        rows.append(OpRow(op_type, count, status))
    return rows


def format_tf_ops(source: str, rows: list[OpRow]) -> str:
    header = ("op type", "count", "supported")
    table = [header] + [(r.op_type, str(r.count), r.status) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(2)]
    lines = [f"TensorFlow ops of {source}:"]
    for i, (op_type, count, status) in enumerate(table):
        lines.append(f"{op_type.ljust(widths[0])}  {count.rjust(widths[1])}  {status}".rstrip())
        if i == 0:
            lines.append(f"{'-' * widths[0]}  {'-' * widths[1]}  ---------")
    bad = [r.op_type for r in rows if not r.supported]
    lines.append(f"{len(rows)} op types, {sum(r.count for r in rows)} ops, {len(bad)} unsupported"
                 + (f": {', '.join(bad)}" if bad else ""))
    return "\n".join(lines)


def supported_tf_ops() -> list[str]:
    from tf2torch.frontends.tf import ops  # noqa: F401

    return sorted(TF_OP_IMPORTERS)

"""Write the supported-layer table into README.md, between the supported-layers markers.

    python scripts/gen_supported_table.py          # rewrite README.md
    python scripts/gen_supported_table.py --check  # exit 1 if README.md is stale

The table comes from the Keras layer registry (tf2torch.supported_layers()), grouped by the
importer module that handles each class; tests/test_readme.py fails when it is out of date.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
START = "<!-- supported-layers:start -->"
END = "<!-- supported-layers:end -->"


def render_table() -> str:
    """Markdown: one row per importer family, its Keras classes in alphabetical order."""
    import tf2torch
    from tf2torch.frontends.keras.registry import LAYER_IMPORTERS

    families: dict[str, list[str]] = {}
    for name in tf2torch.supported_layers():
        family = LAYER_IMPORTERS[name].__module__.rsplit(".", 1)[-1]
        families.setdefault(family, []).append(name)
    lines = [
        (
            f"{len(tf2torch.supported_layers())} Keras layer classes (aliases such as `MaxPool2D` / "
            "`MaxPooling2D` counted separately):"
        ),
        "",
        "| Family | Keras layers |",
        "| --- | --- |",
    ]
    for family in sorted(families):
        lines.append(f"| {family} | " + ", ".join(f"`{name}`" for name in families[family]) + " |")
    return "\n".join(lines)


def between_markers(text: str) -> str:
    """The text between the markers, without the newlines that frame it."""
    start, end = _marker_positions(text)
    return text[start + len(START) : end].strip("\n")


def replace_between_markers(text: str, table: str) -> str:
    start, end = _marker_positions(text)
    return text[: start + len(START)] + "\n" + table + "\n" + text[end:]


def _marker_positions(text: str) -> tuple[int, int]:
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README.md needs the markers {START} and {END}, in that order")
    return start, end


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether README.md is up to date")
    args = parser.parse_args(argv)
    text = README.read_text()
    table = render_table()
    if between_markers(text) == table:
        print("README.md supported-layer table is up to date")
        return 0
    if args.check:
        print("README.md supported-layer table is stale: run python scripts/gen_supported_table.py", file=sys.stderr)
        return 1
    README.write_text(replace_between_markers(text, table))
    print(f"updated the supported-layer table in {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

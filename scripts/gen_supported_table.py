"""Write the supported-layer table into README.md, between the supported-layers markers.

    python scripts/gen_supported_table.py          # rewrite README.md
    python scripts/gen_supported_table.py --check  # exit 1 if README.md is stale

Two tables: every public layer class of the installed Keras 3 (`keras.layers`) and tf_keras
(`tf_keras.layers`) with its status (converted, or refused with the reason from
tf2torch.frontends.keras.builtin_layers), then the layer registry (tf2torch.supported_layers())
grouped by the importer module that handles each class. tests/test_readme.py fails when the
README is out of date or a public class has no status.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
START = "<!-- supported-layers:start -->"
END = "<!-- supported-layers:end -->"


def public_layer_classes(layers_module: object, base: type) -> dict[str, str]:
    """Public Layer subclasses of a `keras.layers`-like module: exported name -> class name
    (they differ for aliases such as Convolution2D -> Conv2D)."""
    classes = {}
    for name in dir(layers_module):
        obj = getattr(layers_module, name)
        if not name.startswith("_") and isinstance(obj, type) and issubclass(obj, base):
            classes[name] = obj.__name__
    return classes


def layer_status(class_name: str) -> str | None:
    """How tf2torch handles a built-in class (by its own name), or None if it has no status."""
    from tf2torch.frontends.keras.builtin_layers import CONVERTED_INSIDE, REFUSED_BUILTINS, STRUCTURAL
    from tf2torch.frontends.keras.registry import LAYER_IMPORTERS

    if class_name in STRUCTURAL:
        return "converted (model input)"
    if class_name in LAYER_IMPORTERS:
        return "converted"
    if class_name in CONVERTED_INSIDE:
        return f"converted inside `{CONVERTED_INSIDE[class_name]}`"
    if class_name in REFUSED_BUILTINS:
        return f"refused: {REFUSED_BUILTINS[class_name]}"
    return None


def builtin_sources() -> list[tuple[str, str, dict[str, str]]]:
    """(label, version, public classes) for the installed Keras 3 and tf_keras."""
    import keras
    import tf_keras

    return [
        ("Keras", keras.__version__, public_layer_classes(keras.layers, keras.layers.Layer)),
        ("tf_keras", tf_keras.__version__, public_layer_classes(tf_keras.layers, tf_keras.layers.Layer)),
    ]


def render_builtin_table() -> str:
    """Markdown: counts per library, then one row per public class name with its status."""
    import tf2torch.frontends.keras.importer  # noqa: F401  (fills LAYER_IMPORTERS)

    sources = builtin_sources()
    lines = []
    for label, version, classes in sources:
        converted = sum(1 for cls in classes.values() if (layer_status(cls) or "").startswith("converted"))
        lines.append(
            f"- {label} {version}: {len(classes)} public layer classes, {converted} converted, "
            f"{len(classes) - converted} refused."
        )
    lines += ["", "| Class | Keras 3 | tf_keras | Status |", "| --- | --- | --- | --- |"]
    names = sorted({name for _, _, classes in sources for name in classes})
    for name in names:
        own = next(classes[name] for _, _, classes in sources if name in classes)
        status = layer_status(own)
        if status is None:
            raise SystemExit(
                f"{name} has no status: add an importer, or a reason to "
                "tf2torch.frontends.keras.builtin_layers.REFUSED_BUILTINS"
            )
        if own != name:
            status = f"alias of `{own}`: {status}"
        marks = " | ".join("yes" if name in classes else "" for _, _, classes in sources)
        lines.append(f"| `{name}` | {marks} | {status} |")
    return "\n".join(lines)


def render_table() -> str:
    """Markdown: the built-in class table, then one row per importer family, its Keras
    classes in alphabetical order."""
    import tf2torch
    from tf2torch.frontends.keras.registry import LAYER_IMPORTERS

    families: dict[str, list[str]] = {}
    for name in tf2torch.supported_layers():
        family = LAYER_IMPORTERS[name].__module__.rsplit(".", 1)[-1]
        families.setdefault(family, []).append(name)
    lines = [
        render_builtin_table(),
        "",
        "By importer family (keras_hub layers and Keras 3 operation nodes included):",
        "",
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

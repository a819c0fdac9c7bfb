"""Command line: `tf2torch convert | inspect | verify`.

Exit status: 0 success, 1 verification FAILED, 2 bad input (unreadable file, unsupported
layers, missing TensorFlow for verification). Errors are one message on stderr, never a
traceback: every ConversionError carries a message a user can act on.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_OK = 0
EXIT_VERIFICATION_FAILED = 1
EXIT_BAD_INPUT = 2


def main(argv: Sequence[str] | None = None) -> int:
    from tf2torch import __version__

    parser = _build_parser(__version__)
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tf2torch.errors import ConversionError

    try:
        return args.handler(args)
    except ConversionError as exc:
        print(f"tf2torch {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:  # e.g. OUTDIR not writable
        print(f"tf2torch {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _build_parser(version: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tf2torch",
        description="Convert Keras models (.keras / .h5) into readable, trainable PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"tf2torch {version}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    convert = commands.add_parser("convert", help="write OUTDIR/model.py and OUTDIR/model.safetensors")
    convert.add_argument("source", metavar="SRC", help="a .keras or .h5 file")
    convert.add_argument("-o", "--output", metavar="OUTDIR", required=True, help="directory to write into")
    convert.add_argument("--name", metavar="ClassName", help="class name of the generated module")
    convert.add_argument("--verify", action="store_true", help="compare against Keras (needs TensorFlow)")
    _add_input_options(convert)
    _add_tf_options(convert)
    _add_custom_code_option(convert)
    convert.set_defaults(handler=_run_convert)

    inspect = commands.add_parser("inspect", help="list the layers, their shapes and whether they convert")
    inspect.add_argument("source", metavar="SRC", help="a .keras or .h5 file")
    _add_tf_options(inspect)
    _add_custom_code_option(inspect)
    inspect.set_defaults(handler=_run_inspect)

    verify = commands.add_parser("verify", help="convert in memory and compare with Keras (needs TensorFlow)")
    verify.add_argument("source", metavar="SRC", help="a .keras or .h5 file")
    verify.add_argument("--train", action="store_true", help="compare in training mode (Dropout off, batch statistics)")
    verify.add_argument("--outputs-only", action="store_true", help="skip the layer-by-layer comparison")
    _add_input_options(verify)
    _add_tf_options(verify)
    _add_custom_code_option(verify)
    verify.set_defaults(handler=_run_verify)
    return parser


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=_positive_int, default=2, metavar="N", help="batch of random inputs (default 2)")
    parser.add_argument("--inputs", metavar="FILE.npz", help="inputs in the Keras layout, one array per model input")


def _add_tf_options(parser: argparse.ArgumentParser) -> None:
    """TF frontend: SRC may also be a SavedModel directory or a frozen GraphDef .pb."""
    parser.add_argument("--signature", default="serving_default", help="SavedModel signature (default serving_default)")
    parser.add_argument("--input-names", metavar="A,B", help="frozen .pb: input node names (default: its placeholders)")
    parser.add_argument("--output-names", metavar="A,B", help="frozen .pb: output node names (default: unconsumed ops)")
    parser.add_argument("--frontend", choices=("auto", "tf", "keras"), default="auto",
                        help="force the TF (op-level) or the Keras frontend for a SavedModel")


def _add_custom_code_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--custom-code", action="append", default=[], metavar="FILE.py|MODULE",
        help="a .py file or importable module defining the model's custom Keras classes (repeatable); "
             "opts in to running that code: custom layers are traced with TensorFlow",
    )


def _custom_code_options(args: argparse.Namespace) -> dict:
    """convert()'s custom_objects / trace_custom_layers from --custom-code (imported here)."""
    if not args.custom_code:
        return {}
    from tf2torch.custom_code import load_custom_code

    return {"custom_objects": load_custom_code(args.custom_code), "trace_custom_layers": True}


def _tf_options(args: argparse.Namespace) -> dict:
    def split(text: str | None) -> list[str] | None:
        return text.split(",") if text else None

    return {"signature": args.signature, "inputs": split(args.input_names), "outputs": split(args.output_names),
            "frontend": args.frontend}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _run_convert(args: argparse.Namespace) -> int:
    import tf2torch

    _check_inputs_file(args.inputs)
    custom = _custom_code_options(args)
    result = tf2torch.convert(args.source, model_name=args.name, **_tf_options(args), **custom)
    report = None
    if args.verify:
        report = result.verify(args.inputs, batch_size=args.batch_size, custom_objects=custom.get("custom_objects"))
    directory = result.save(args.output, report=report)
    written = ["model.py", "model.safetensors"] + (["verification.json"] if report is not None else [])
    written += [n for n in ("train.py", "optimizer.safetensors") if n in result._saved_files]
    print(f"Converted {args.source} -> {directory}/ ({', '.join(written)}), class {result.class_name}")
    if report is None:
        return EXIT_OK
    print(report.table())
    return EXIT_OK if report.ok else EXIT_VERIFICATION_FAILED


def _run_verify(args: argparse.Namespace) -> int:
    import tf2torch

    _check_inputs_file(args.inputs)
    custom = _custom_code_options(args)
    objects = custom.get("custom_objects")
    result = tf2torch.convert(args.source, **_tf_options(args), **custom)
    report = result.verify(args.inputs, training=args.train, batch_size=args.batch_size, custom_objects=objects)
    # A TF graph (SavedModel, .pb) or a subclassed model traced whole has no Keras layers to
    # compare one by one.
    reference = result._keras_model
    layered = not getattr(reference, "inference_only", False) and bool(getattr(reference, "inputs", None))
    if not args.outputs_only and layered:
        # Same inputs as the output check; names the first layer that diverges.
        layers = result.verify_layers(args.inputs, training=args.train, batch_size=args.batch_size,
                                      custom_objects=objects)
        print(layers.table())
        print()
    print(report.table())
    return EXIT_OK if report.ok else EXIT_VERIFICATION_FAILED


def _run_inspect(args: argparse.Namespace) -> int:
    from tf2torch.frontends.tf.dispatch import is_tf_source
    from tf2torch.inspect_model import inspect_model

    if is_tf_source(args.source) and args.frontend != "keras":
        from tf2torch.frontends.tf.inspect_ops import format_tf_ops, inspect_tf_ops

        options = _tf_options(args)
        rows = inspect_tf_ops(args.source, options["signature"], options["inputs"], options["outputs"])
        print(format_tf_ops(args.source, rows))
        return EXIT_OK
    custom = _custom_code_options(args)
    rows = inspect_model(args.source, custom.get("custom_objects"), opted_in=bool(custom))
    print(format_inspection(args.source, rows))
    return EXIT_OK


def format_inspection(source: str, rows: list) -> str:
    """The `inspect` table: one row per layer, then a summary line."""
    header = ("layer", "class", "output shape (Keras layout)", "params", "converts")
    table = [header] + [
        (row.name, row.class_name, row.output_shape_text, f"{row.params:,}", row.converts_text)
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = [f"Layers of {source}:"]
    for i, line in enumerate(table):
        cells = [cell.rjust(w) if col == 3 else cell.ljust(w) for col, (cell, w) in enumerate(zip(line, widths))]
        text = "  ".join(cells).rstrip()
        note = rows[i - 1].note if i > 0 else ""
        lines.append(f"{text}  ({note})" if note and not rows[i - 1].supported else text)
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    unsupported = [row for row in rows if not row.supported and row.class_name not in ("Functional", "Model", "Sequential")]
    total = sum(row.params for row in rows if row.class_name not in ("Functional", "Model", "Sequential"))
    lines.append(f"{len(rows)} layers, {len(unsupported)} unsupported, {total:,} parameters")
    if unsupported:
        classes = sorted({row.class_name for row in unsupported})
        lines.append(
            f"Unsupported classes: {', '.join(classes)}. Pass the code of custom classes with "
            "--custom-code my_layers.py (they are then traced with TensorFlow), or register converters "
            "with @tf2torch.register_layer(\"ClassName\") (see the README, 'Custom layers')."
        )
    return "\n".join(lines)


def _check_inputs_file(path: str | None) -> None:
    from tf2torch.errors import BadModelFile

    if path is not None and not Path(path).is_file():
        raise BadModelFile(f"{path}: no such inputs file (expected an .npz with one array per model input)")


if __name__ == "__main__":
    sys.exit(main())

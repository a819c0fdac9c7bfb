"""Command line: `tf2torch convert | inspect | verify`.

Exit status: 0 success, 1 verification FAILED, 2 bad input (unreadable file, unsupported
layers, missing TensorFlow for verification), 130 interrupted. Errors are one message on
stderr that names the file first, never a traceback, whatever the input: every
ConversionError carries a message a user can act on, and anything else is reported as a
(one-line) tf2torch bug. Warnings are one line each.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

EXIT_OK = 0
EXIT_VERIFICATION_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    from tf2torch import __version__

    parser = _build_parser(__version__)
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tf2torch.errors import ConversionError, UnsupportedLayers, one_line

    prefix = f"tf2torch {args.command}"
    with warnings.catch_warnings():
        # tf2torch's own warnings (converted weights, NaN, train.py not written) always show.
        warnings.filterwarnings("default", module=r"tf2torch(\.|$)")
        warnings.showwarning = lambda message, *_: print(f"{prefix}: warning: {one_line(str(message))}", file=sys.stderr)
        try:
            return args.handler(args)
        except ConversionError as exc:
            message = str(exc) if isinstance(exc, UnsupportedLayers) else one_line(str(exc))
            print(f"{prefix}: error: {_naming_source(message, args.source)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except KeyboardInterrupt:
            print(f"{prefix}: interrupted; nothing was written", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Exception as exc:  # noqa: BLE001  (a tf2torch bug: still one line, never a traceback)
            detail = one_line(f"{type(exc).__name__}: {exc}")[:300]
            print(f"{prefix}: error: {args.source}: unexpected error ({detail}); this is a tf2torch bug, "
                  "please report it with the file", file=sys.stderr)
            return EXIT_BAD_INPUT


def _naming_source(message: str, source: str) -> str:
    """Every message names the file first."""
    return message if message.startswith(source) else f"{source}: {message}"


def _build_parser(version: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tf2torch",
        description="Convert Keras models (.keras / .h5, also SavedModel, .pb, .onnx) into readable, trainable PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"tf2torch {version}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    convert = commands.add_parser("convert", help="write OUTDIR/model.py and OUTDIR/model.safetensors")
    convert.add_argument("source", metavar="SRC", help="a .keras, .h5, .tflite, .onnx file or a TF.js model.json")
    convert.add_argument("-o", "--output", metavar="OUTDIR", required=True, help="directory to write into")
    convert.add_argument("--name", metavar="ClassName", help="class name of the generated module")
    convert.add_argument("--verify", action="store_true", help="compare against Keras (needs TensorFlow)")
    convert.add_argument("--allow-lambda", action="store_true",
                         help="convert Lambda layers: runs code from the file to trace them (needs TensorFlow)")
    convert.add_argument("--flat", action="store_true",
                         help="one class with every layer (default: a class per repeated block)")
    convert.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_input_options(convert)
    _add_tf_options(convert)
    _add_custom_code_option(convert)
    _add_quantization_option(convert)
    convert.set_defaults(handler=_run_convert)

    inspect = commands.add_parser("inspect", help="list the layers, their shapes and whether they convert")
    inspect.add_argument("source", metavar="SRC", help="a .keras, .h5, .tflite, .onnx file or a TF.js model.json")
    _add_tf_options(inspect)
    _add_custom_code_option(inspect)
    inspect.set_defaults(handler=_run_inspect)

    verify = commands.add_parser("verify", help="convert in memory and compare with Keras (needs TensorFlow)")
    verify.add_argument("source", metavar="SRC", help="a .keras, .h5, .tflite, .onnx file or a TF.js model.json")
    verify.add_argument("--train", action="store_true", help="compare in training mode (Dropout off, batch statistics)")
    verify.add_argument("--outputs-only", action="store_true", help="skip the layer-by-layer comparison")
    verify.add_argument("--html", metavar="FILE", default="verification.html",
                        help="where to write the visual report (default ./verification.html)")
    verify.add_argument("--json", action="store_true", help="print verification.json instead of the tables")
    verify.add_argument("--fp64", action="store_true",
                        help="re-run both sides in float64 when the cumulative error crosses the bound (rounding or bug?)")
    verify.add_argument("--minimize", metavar="OUT", help="on a mismatch, write a one-layer reproduction into OUT/")
    verify.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_input_options(verify)
    _add_tf_options(verify)
    _add_custom_code_option(verify)
    _add_quantization_option(verify)
    verify.set_defaults(handler=_run_verify)
    return parser


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=_positive_int, default=2, metavar="N", help="batch of random inputs (default 2)")
    parser.add_argument("--inputs", metavar="FILE.npz", help="inputs in the Keras layout, one array per model input")
    _add_limit_options(parser)


def _add_limit_options(parser: argparse.ArgumentParser) -> None:
    """Limits on what a file may ask for (tf2torch.limits); raise them for honest huge models."""
    from tf2torch.limits import DEFAULT_LIMITS

    parser.add_argument("--max-weight-bytes", type=_positive_int, default=DEFAULT_LIMITS.max_weight_bytes, metavar="N",
                        help=f"refuse models whose weights exceed N bytes (default {DEFAULT_LIMITS.max_weight_bytes})")
    parser.add_argument("--max-layers", type=_positive_int, default=DEFAULT_LIMITS.max_layers, metavar="N",
                        help=f"refuse models with more than N layers (default {DEFAULT_LIMITS.max_layers})")


def _limits(args: argparse.Namespace) -> object:
    from tf2torch.limits import Limits

    return Limits(max_weight_bytes=args.max_weight_bytes, max_layers=args.max_layers)


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


def _add_quantization_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep-quantization", action="store_true",
                        help="quantized .tflite: round weights and int8 activations as the file does (torch "
                             "fake-quant) instead of dequantizing them to float")


def _quantization_options(args: argparse.Namespace) -> dict:
    return {"keep_quantization": True} if args.keep_quantization else {}


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
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _run_convert(args: argparse.Namespace) -> int:
    import tf2torch

    _check_inputs_file(args.inputs)
    custom = _custom_code_options(args)
    structure = "flat" if args.flat else "blocks"
    result = tf2torch.convert(args.source, model_name=args.name, limits=_limits(args), allow_lambda=args.allow_lambda,
                              structure=structure, **_tf_options(args), **custom, **_quantization_options(args))
    objects = custom.get("custom_objects")
    report = layers = None
    if args.verify:
        from tf2torch.verify.progress import Progress

        progress = Progress(4, "verifying", quiet=args.quiet)
        report = result.verify(args.inputs, batch_size=args.batch_size, custom_objects=objects)
        progress.advance("outputs")
        if not getattr(result._keras_model, "inference_only", False):
            try:
                layers = result.verify_layers(args.inputs, batch_size=args.batch_size, custom_objects=objects,
                                              progress=progress)
            except Exception as exc:  # noqa: BLE001  (the per-layer report is extra: the outputs were compared)
                print(f"tf2torch convert: warning: no per-layer report ({type(exc).__name__}: "
                      f"{str(exc).splitlines()[0] if str(exc) else ''})", file=sys.stderr)
        progress.close()
    directory = result.save(args.output, report=report, layers=layers)
    written = ["model.py", "model.safetensors"] + (["verification.json"] if report is not None else [])
    written += ["verification.html"] if layers is not None else []
    written += [n for n in ("train.py", "train_utils.py", "optimizer.safetensors", "weights_map.json")
                if n in result._saved_files]
    print(f"Converted {args.source} -> {directory}/ ({', '.join(written)}), class {result.class_name}")
    if report is None:
        return EXIT_OK
    print(report.table())
    return EXIT_OK if report.ok else EXIT_VERIFICATION_FAILED


def _run_verify(args: argparse.Namespace) -> int:
    import tf2torch

    _check_inputs_file(args.inputs)
    from tf2torch.verify.progress import Progress

    progress = Progress(5 + args.fp64, "verifying", quiet=args.quiet or args.json)
    custom = _custom_code_options(args)
    objects = custom.get("custom_objects")
    result = tf2torch.convert(args.source, limits=_limits(args), **_tf_options(args), **custom,
                              **_quantization_options(args))
    progress.advance("converted")
    report = result.verify(args.inputs, training=args.train, batch_size=args.batch_size, custom_objects=objects)
    progress.advance("outputs")
    layers = None
    # A TF graph (SavedModel, .pb) or a subclassed model traced whole has no Keras layers to
    # compare one by one.
    reference = result._keras_model
    layered = reference is None or (
        not getattr(reference, "inference_only", False) and bool(getattr(reference, "inputs", None)))
    if not args.outputs_only and layered:
        # Same inputs as the output check; names the first layer that diverges.
        layers = result.verify_layers(args.inputs, training=args.train, batch_size=args.batch_size,
                                      custom_objects=objects, fp64=args.fp64, progress=progress)
    progress.close()
    return _report_verification(args, report, layers)


def _report_verification(args: argparse.Namespace, report, layers) -> int:
    """Print the tables (or the JSON document), write the HTML and the minimal reproduction."""
    import json

    from tf2torch.verify.html_report import render_html, verification_document

    document = verification_document(
        [] if layers is None else [layers], None if layers is None else layers.summary_info, report
    )
    if layers is not None:
        Path(args.html).write_text(render_html(document), encoding="utf-8")
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        if layers is not None:
            print(layers.table())
            print()
        print(report.table())
        if layers is not None:
            print(f"Report: {args.html}")
    if args.minimize and layers is not None:
        stream = sys.stderr if args.json else sys.stdout
        if layers.first_divergence is None:
            print("--minimize: every layer matches in isolation, nothing to reproduce", file=stream)
        else:
            out = layers.minimize(args.minimize)
            print(f"Reproduction of layer '{layers.first_divergence.name}': {out}/ (python {out}/reproduce.py)",
                  file=stream)
    return EXIT_OK if report.ok else EXIT_VERIFICATION_FAILED


def _run_inspect(args: argparse.Namespace) -> int:
    from tf2torch.errors import model_file_boundary
    from tf2torch.frontends.tf.dispatch import is_tf_source
    from tf2torch.frontends.tflite.reader import is_tflite_file
    from tf2torch.inspect_model import inspect_model

    if Path(args.source).suffix.lower() == ".onnx":
        from tf2torch.frontends.onnx.inspect_ops import format_onnx_ops, inspect_onnx_ops

        print(format_onnx_ops(args.source, inspect_onnx_ops(args.source)))
        return EXIT_OK
    if is_tflite_file(args.source):
        from tf2torch.frontends.tflite.inspect_ops import format_tflite_ops

        print(format_tflite_ops(args.source))
        return EXIT_OK
    from tf2torch.frontends.tfjs.model_json import is_tfjs_path

    if is_tfjs_path(args.source):  # TF.js: a graph-model's ops; a layers-model is a Keras model
        from tf2torch.frontends.tfjs.inspect_ops import inspect_graph_model

        with model_file_boundary(args.source):
            table = inspect_graph_model(args.source)
        if table is not None:
            print(table)
            return EXIT_OK
    if is_tf_source(args.source) and args.frontend != "keras":
        from tf2torch.frontends.tf.inspect_ops import format_tf_ops, inspect_tf_ops

        options = _tf_options(args)
        with model_file_boundary(args.source):
            rows = inspect_tf_ops(args.source, options["signature"], options["inputs"], options["outputs"])
        print(format_tf_ops(args.source, rows))
        return EXIT_OK
    custom = _custom_code_options(args)
    with model_file_boundary(args.source):
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

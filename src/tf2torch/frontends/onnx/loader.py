"""Read an .onnx file safely: bounded size, external data only next to the file, checked."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from tf2torch.errors import BadModelFile, ConversionError

MAX_FILE_BYTES = 2 * 1024**3  # protobuf's own limit for a single message


def onnx_module() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ConversionError("ONNX models need the onnx package: pip install 'tf2torch[onnx]'") from exc
    return onnx


def load_onnx_file(path: str | os.PathLike, rewrites: list[str] | None = None) -> Any:
    """The ModelProto of `path`, with external tensors loaded (only from its own directory),
    shapes inferred, and checked by onnx.checker. Any defect is a BadModelFile. Nodes of the
    non-ONNX op types tf2onnx writes unconverted are rewritten into ONNX ops (`rewrites` gets a
    note per kind), so that the reference runtime gets the same graph."""
    onnx = onnx_module()
    file = Path(path)
    if not file.is_file():
        raise BadModelFile(f"{file}: no such file")
    if file.stat().st_size > MAX_FILE_BYTES:
        raise BadModelFile(f"{file}: larger than 2 GB; store the weights as ONNX external data next to it")
    try:
        model = onnx.load(str(file), load_external_data=False)
    except Exception as exc:  # noqa: BLE001  (protobuf raises DecodeError, RuntimeWarning, ValueError...)
        raise BadModelFile(f"{file}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    if not model.graph.node and not model.graph.output:
        raise BadModelFile(f"{file}: not an ONNX model (no graph nodes or outputs)")
    _load_external_data(onnx, model, file)
    if _rewrite_erfc(onnx, model) and rewrites is not None:
        rewrites.append("Erfc (written by tf2onnx, not an ONNX op) read as 1 - Erf")
    try:
        onnx.checker.check_model(model)
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as exc:  # noqa: BLE001  (ValidationError, InferenceError: the file's defect, whatever kind)
        raise BadModelFile(f"{file}: invalid ONNX model: {str(exc).strip().splitlines()[0]}") from None
    return model


def _load_external_data(onnx: Any, model: Any, file: Path) -> None:
    """External tensors must live inside the model's directory: a path escaping it is refused."""
    from onnx.external_data_helper import load_external_data_for_tensor, uses_external_data

    base = file.resolve().parent
    for tensor in _all_tensors(model.graph):
        if not uses_external_data(tensor):
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (base / location).resolve()
        if base not in target.parents or not target.is_file():
            raise BadModelFile(
                f"{file}: tensor {tensor.name!r} refers to external data {location!r} outside the model's "
                "directory (or missing); keep the weight files next to the .onnx file")
        try:
            load_external_data_for_tensor(tensor, str(base))
        except Exception as exc:  # noqa: BLE001  (truncated or mismatched data file)
            raise BadModelFile(f"{file}: external data of tensor {tensor.name!r} unreadable: {exc}") from None
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT


def _all_tensors(graph: Any) -> list:
    tensors = list(graph.initializer)
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                tensors.append(attr.t)
            for sub in list(attr.graphs) + ([attr.g] if attr.HasField("g") else []):
                tensors += _all_tensors(sub)
    return tensors


def _rewrite_erfc(onnx: Any, model: Any) -> int:
    """tf2onnx leaves TF's Erfc (its exact GELU is 0.5 x erfc(-x / sqrt 2)) as an `Erfc` node in the
    ONNX domain, which no runtime has: each becomes Sub(1, Erf(x)), the same function."""
    nodes = list(model.graph.node)
    erfc = [n for n in nodes if n.op_type == "Erfc" and n.domain in ("", "ai.onnx")]
    if not erfc:
        return 0
    one = "tf2torch_erfc_one"
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array(1.0, np.float32), one))
    rewritten = []
    for node in nodes:
        if node not in erfc:
            rewritten.append(node)
            continue
        erf_out = f"{node.output[0]}_erf"
        rewritten.append(onnx.helper.make_node("Erf", list(node.input), [erf_out], name=f"{node.name}_erf"))
        rewritten.append(onnx.helper.make_node("Sub", [one, erf_out], list(node.output), name=node.name))
    del model.graph.node[:]
    model.graph.node.extend(rewritten)
    return len(erfc)

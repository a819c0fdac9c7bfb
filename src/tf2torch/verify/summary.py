"""The model summary shown at the top of the verification report."""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING

import torch

from tf2torch.ir import Value

if TYPE_CHECKING:
    from tf2torch.api import ConversionResult

_LAYOUTS = {3: ("NCL", "NLC"), 4: ("NCHW", "NHWC"), 5: ("NCDHW", "NDHWC")}


def _layout(value: Value, name: str) -> dict:
    entry = {"name": name, "dtype": value.spec.dtype, "torch_shape": [d for d in value.torch_shape],
             "keras_shape": list(value.spec.shape), "torch_layout": "as Keras", "keras_layout": "as torch"}
    if value.perm is not None:
        torch_layout, keras_layout = _LAYOUTS.get(value.rank, ("channels-first", "channels-last"))
        entry.update(torch_layout=torch_layout, keras_layout=keras_layout)
    return entry


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def model_summary(result: ConversionResult) -> dict:
    """Parameters, trainable fraction, BatchNorm layers kept, layouts, conversion time, versions."""
    module = result.module
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    batchnorms = sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules())
    builder = result.generated.builder
    from tf2torch import __version__

    return {
        "class_name": result.class_name,
        "parameters": total,
        "trainable_parameters": trainable,
        "trainable_fraction": trainable / total if total else 1.0,
        "batchnorm_layers": batchnorms,
        "inputs": [_layout(v, builder.var(v)) for v in result.graph.inputs],
        "outputs": [_layout(v, builder.var(v)) for v in result.graph.outputs],
        "conversion_seconds": result.conversion_seconds,
        "versions": {"tensorflow": _version("tensorflow"), "keras": _version("keras"),
                     "tf_keras": _version("tf_keras"), "torch": torch.__version__, "tf2torch": __version__},
    }

"""Explicit registry of Keras layer importers: class name -> function building IR nodes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tf2torch.frontends.keras.context import LayerContext
    from tf2torch.ir import Value

ImporterFn = Callable[["LayerContext"], list["Value"]]

LAYER_IMPORTERS: dict[str, ImporterFn] = {}


def register_importer(*class_names: str) -> Callable[[ImporterFn], ImporterFn]:
    def decorate(fn: ImporterFn) -> ImporterFn:
        for class_name in class_names:
            if class_name in LAYER_IMPORTERS:
                raise ValueError(f"Keras layer {class_name!r} has two importers")
            LAYER_IMPORTERS[class_name] = fn
        return fn

    return decorate

"""Helpers shared by converters for weights and their trainability."""

from __future__ import annotations

import numpy as np

from tf2torch.ir import Node


def state_array(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32)


def frozen_names(node: Node, mapping: dict[str, str]) -> tuple[str, ...]:
    """torch names of the params that Keras does not train (trainable=False layers)."""
    names = [mapping[k] for k, p in node.params.items() if k in mapping and not p.trainable]
    if names and len(names) == len([k for k in node.params if k in mapping]):
        return ("*",)
    return tuple(names)

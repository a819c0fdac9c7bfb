"""What a layer importer sees: the layer's config, its input Values, its weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tf2torch.errors import BadModelFile, UnsupportedFeature
from tf2torch.frontends.keras.layer_calls import LayerCall, LayerEntry, TensorRef
from tf2torch.ir import Graph, Node, Param, SourceRef, TensorSpec, Value


@dataclass
class LayerContext:
    graph: Graph
    entry: LayerEntry
    call: LayerCall
    call_index: int
    inputs: list[Value]
    tensor_kwargs: dict[str, list[Value]]
    keras_major: int
    name: str  # prefixed with the enclosing models' names
    file: str
    _weights: list[np.ndarray]
    # Keras masks (see frontends/keras/masking.py): one per input, None when unmasked.
    input_masks: list[Value | None] = field(default_factory=list)
    # Set by importers that compute their outputs' masks (set_output_masks); None means the
    # default propagation of masking.default_output_masks.
    output_masks: list[Value | None] | None = None
    # The layer's weight reader, for layers whose variables sit in sub-objects (RNN cells).
    reader: Any = None
    # Keras masks of the tensor keyword arguments (MultiHeadAttention(query=, value=)).
    kwarg_masks: dict[str, list[Value | None]] = field(default_factory=dict)
    scope: tuple[tuple[str, str], ...] = ()  # see SourceRef.scope

    @property
    def config(self) -> dict[str, Any]:
        return self.entry.config

    @property
    def class_name(self) -> str:
        return self.entry.class_name

    @property
    def source(self) -> SourceRef:
        return SourceRef(f"keras{self.keras_major}", self.class_name, self.name, self.call_index, self.scope)

    @property
    def trainable(self) -> bool:
        return bool(self.config.get("trainable", True))

    def arg_values(self) -> list[Any]:
        """Positional arguments with tensors resolved to Values (constants kept as they are)."""
        it = iter(self.inputs)
        return [next(it) if isinstance(a, TensorRef) else a for a in self.call.args] if self.call.args else list(self.inputs)

    def weights(self, expected: int | None = None) -> list[np.ndarray]:
        if expected is not None and len(self._weights) != expected:
            raise BadModelFile(
                f"{self.file}: layer {self.name!r} ({self.class_name}) has {len(self._weights)} "
                f"weights, its config implies {expected}; the file may be damaged or from an unknown Keras version."
            )
        return self._weights

    def param(self, array: np.ndarray, layout: str, trainable: bool | None = None) -> Param:
        """A float parameter. Weights arrive checked (weight_check.py); a boolean, complex or
        text array here is a weight stored with the wrong type, never silently cast. (Integers
        are fine: Normalization's mean may be a list of ints in its config.)"""
        array = np.asarray(array)
        if array.dtype.kind not in "iuf" and array.dtype.name != "bfloat16":
            raise BadModelFile(
                f"{self.file}: layer {self.name!r} ({self.class_name}): a weight of shape {array.shape} is stored as "
                f"{array.dtype}, but the layer computes in floating point"
            )
        return Param(np.asarray(array, dtype=np.float32), layout, self.trainable if trainable is None else trainable)

    def add(
        self,
        op: str,
        inputs: list[Value],
        output_specs: list[TensorSpec],
        attrs: dict[str, Any] | None = None,
        params: dict[str, Param] | None = None,
    ) -> Node:
        return self.graph.add_node(op, inputs, output_specs, self.source, attrs, params)

    def set_output_masks(self, masks: list[Value | None]) -> None:
        """The Keras masks of this call's outputs, one per output (None: unmasked)."""
        self.output_masks = list(masks)

    def unsupported(self, what: str) -> UnsupportedFeature:
        return UnsupportedFeature(f"{self.file}: layer {self.name!r} ({self.class_name}): {what} is not supported yet.")


def as_tuple(value: Any, rank: int) -> tuple[int, ...]:
    """Keras accepts an int or a tuple for kernel sizes, strides, dilation rates."""
    if isinstance(value, (list, tuple)):
        if len(value) == 1 and rank > 1:
            return tuple(int(value[0]) for _ in range(rank))
        return tuple(int(v) for v in value)
    return tuple(int(value) for _ in range(rank))


def channels_last(ctx: LayerContext) -> None:
    """Refuse channels_first configs until their layout rules are implemented."""
    data_format = ctx.config.get("data_format") or "channels_last"
    if data_format != "channels_last":
        raise ctx.unsupported(f"data_format={data_format!r}")

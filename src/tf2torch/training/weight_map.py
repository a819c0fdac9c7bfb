"""Which Keras variable each element of each torch tensor came from.

Converters build torch tensors from Keras weights with transposes, reshapes, row reorders
(the Dense after a Flatten), concatenations (attention projections) ... Rather than asking
every converter to declare its transform, the conversion is run once more on *probe*
weights: every element of every Keras variable is replaced by its own index (2, 3, 4, ...
as float32), and the generated state dict then says, element by element, where each value
came from. The result is checked against the real conversion: a tensor whose values were
computed (not merely moved) is reported as unmapped instead of being guessed.

From the element map follow the Keras-layout view of a parameter (for constraints and
axis-dependent regularizers) and the gather that carries optimizer slots (moments,
accumulators) from Keras variables to torch optimizer state.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tf2torch.errors import ConversionError
from tf2torch.frontends.keras.archive import KerasSource, WeightReader, layer_name_of

PROBE_OFFSET = 2  # 0 and 1 stay free for constants that converters create (zero biases, unit scales)
EXACT_FLOAT32 = 1 << 24  # integers up to this are exact in float32


@dataclass
class KerasVariable:
    layer: str  # full layer path ("outer/inner" in nested models)
    index: int  # position among the layer's variables (Keras' vars/<i> order)
    shape: tuple[int, ...]
    offset: int  # first global probe index
    real: np.ndarray

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass
class TensorSource:
    """torch tensor `name`: `index[...]` is the global probe index of each element (-1: a
    constant the converter created)."""

    name: str
    index: np.ndarray
    variables: list[int]  # positions in WeightMap.variables
    keras_axes: tuple[int, ...] | None = None  # torch dims holding Keras axes 0, 1, ...
    same_layout: bool = False


@dataclass
class WeightMap:
    variables: list[KerasVariable]
    tensors: dict[str, TensorSource]
    unmapped: list[str] = field(default_factory=list)  # torch tensors computed from weights

    def variable(self, layer: str, index: int) -> int | None:
        for i, v in enumerate(self.variables):
            if v.layer == layer and v.index == index:
                return i
        return None

    def tensor_of(self, variable: int) -> TensorSource | None:
        """The torch tensor that holds exactly this Keras variable (every element, once)."""
        for source in self.tensors.values():
            if source.variables == [variable] and (source.index >= 0).all():
                v = self.variables[variable]
                if source.index.size == v.size:
                    return source
        return None

    def gather(self, arrays: dict[int, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
        """Per-variable arrays (Keras layout; e.g. optimizer moments) -> torch-layout arrays."""
        total = sum(v.size for v in self.variables)
        flat = np.zeros(total, dtype=np.float32)
        for i, array in arrays.items():
            v = self.variables[i]
            flat[v.offset : v.offset + v.size] = np.asarray(array, dtype=np.float32).reshape(-1)
        out = {}
        for name in names:
            source = self.tensors[name]
            values = np.where(source.index >= 0, flat[np.clip(source.index, 0, None)], 0.0)
            out[name] = values.astype(np.float32)
        return out


class _Allocator:
    def __init__(self) -> None:
        self.variables: list[KerasVariable] = []
        self._by_key: dict[tuple[str, str], list[np.ndarray]] = {}
        self._counts: dict[str, int] = {}
        self.next = 0

    def probe(self, layer: str, key: str, arrays: list[np.ndarray]) -> list[np.ndarray | None]:
        """Global element indices for each float array (None for others); the same key gets
        the same ids (a shared layer is read once per call)."""
        cached = self._by_key.get((layer, key))
        if cached is not None:
            return cached
        out: list[np.ndarray | None] = []
        for array in arrays:
            array = np.asarray(array)
            if array.dtype.kind != "f":
                out.append(None)
                continue
            index = self._counts.get(layer, 0)
            self._counts[layer] = index + 1
            v = KerasVariable(layer, index, tuple(array.shape), self.next, array)
            self.variables.append(v)
            self.next += v.size
            out.append(np.arange(v.offset, v.offset + v.size, dtype=np.int64).reshape(array.shape))
        self._by_key[(layer, key)] = out
        return out


class _ProbeReader(WeightReader):
    def __init__(self, inner: WeightReader, allocator: _Allocator, prefix: str, encode) -> None:
        self._inner, self._alloc, self._prefix, self._encode = inner, allocator, prefix, encode

    def read(self, layer_name: str) -> list[np.ndarray]:
        path = self._prefix + layer_name
        real = self._inner.read(layer_name)
        ids = self._alloc.probe(path, "", real)
        return [r if i is None else self._encode(i) for r, i in zip(real, ids)]

    def nested(self, layer_name: str, layer_configs: list[dict], sequential: bool) -> WeightReader:
        inner = self._inner.nested(layer_name, layer_configs, sequential)
        return _ProbeReader(inner, self._alloc, self._prefix + layer_name + "/", self._encode)

    def group(self, layer_name: str) -> Any:
        group = self._inner.group(layer_name)  # type: ignore[attr-defined]
        return None if group is None else _ProbeGroup(group, self._alloc, self._prefix + layer_name, self._encode)


class _ProbeGroup:
    """Stands in for an h5py group: datasets read as probe arrays."""

    def __init__(self, group: Any, allocator: _Allocator, layer: str, encode) -> None:
        self._group, self._alloc, self._layer, self._encode = group, allocator, layer, encode

    def __getitem__(self, key: str) -> Any:
        item = self._group[key]
        if hasattr(item, "keys"):
            return _ProbeGroup(item, self._alloc, self._layer, self._encode)
        return _ProbeDataset(item, self._alloc, self._layer, self._encode)

    def __contains__(self, key: str) -> bool:
        return key in self._group

    def __iter__(self):
        return iter(self._group)

    def keys(self):
        return self._group.keys()

    def __len__(self) -> int:
        return len(self._group)

    @property
    def attrs(self) -> Any:
        return self._group.attrs

    @property
    def name(self) -> str:
        return self._group.name


class _ProbeDataset:
    def __init__(self, dataset: Any, allocator: _Allocator, layer: str, encode) -> None:
        self._dataset, self._alloc, self._layer, self._encode = dataset, allocator, layer, encode
        self.shape, self.dtype = dataset.shape, dataset.dtype

    def __getitem__(self, index: Any) -> np.ndarray:
        real = np.asarray(self._dataset[()])
        ids = self._alloc.probe(self._layer, self._dataset.name, [real])[0]
        return (real if ids is None else self._encode(ids))[index]

    def __array__(self, dtype=None):
        out = self[()]
        return out if dtype is None else out.astype(dtype)


def build_weight_map(path: str, real_state: dict[str, np.ndarray], structure: str = "flat") -> WeightMap:
    """Convert `path` again (with the same `structure` of model.py) on probe weights and read
    back where every element went; `real_state` (the real conversion) is the check."""
    from tf2torch.codegen.emit import emit_module
    from tf2torch.frontends.keras.archive import load_keras_file
    from tf2torch.frontends.keras.importer import import_keras_model
    from tf2torch.passes.pipeline import run_passes

    def run(encode) -> tuple[_Allocator, dict[str, np.ndarray]]:
        source = load_keras_file(path)
        try:
            alloc = _Allocator()
            probe_source = dataclasses.replace(source, weights=_ProbeReader(source.weights, alloc, "", encode), _resources=[])
            graph = import_keras_model(probe_source)
            graph.output_names = [v.name for v in graph.outputs]
            graph = run_passes(graph)
            state = emit_module(graph, "probe", "probe", structure).state
            return alloc, state
        finally:
            source.close()

    alloc, state = run(lambda ids: (ids + PROBE_OFFSET).astype(np.float32))
    total = alloc.next
    if total + PROBE_OFFSET < EXACT_FLOAT32:
        decoded = {k: _decode(v, total) for k, v in state.items()}
    else:
        # Two probes: high and low 12 bits of each index, each exact in float32.
        alloc, high = run(lambda ids: ((ids >> 12) + PROBE_OFFSET).astype(np.float32))
        _, low = run(lambda ids: ((ids & 4095) + PROBE_OFFSET).astype(np.float32))
        decoded = {}
        for k in high:
            h, lo = _decode(high[k], (total >> 12) + 1), _decode(low[k], 4096)
            decoded[k] = np.where((h >= 0) & (lo >= 0), (h << 12) + lo, -1) if h is not None and lo is not None else None
    weight_map = _assemble(alloc, decoded, list(real_state))
    check_against(weight_map, real_state)
    return weight_map


def _decode(values: np.ndarray, limit: int) -> np.ndarray | None:
    if values.dtype.kind != "f":
        return None
    v = values.astype(np.float64) - PROBE_OFFSET
    ok = (v >= 0) & (v < limit) & (v == np.round(v))
    return np.where(ok, v, -1).astype(np.int64)


def _assemble(alloc: _Allocator, decoded: dict[str, np.ndarray | None], names: list[str] | None) -> WeightMap:
    variables = alloc.variables
    starts = np.array([v.offset for v in variables], dtype=np.int64)
    tensors: dict[str, TensorSource] = {}
    unmapped: list[str] = []
    for name, index in decoded.items():
        if index is None or (names is not None and name not in names):
            continue
        if not (index >= 0).any():
            continue
        owners = sorted({int(i) for i in np.searchsorted(starts, index[index >= 0], side="right") - 1})
        source = TensorSource(name, index, owners)
        if len(owners) == 1:
            _set_axes(source, variables[owners[0]])
        tensors[name] = source
    return WeightMap(variables, tensors, unmapped)


def check_against(weight_map: WeightMap, state: dict[str, np.ndarray]) -> None:
    """Drop tensors whose real values are not the real Keras values at the mapped places
    (the converter computed them instead of moving them)."""
    total = sum(v.size for v in weight_map.variables)
    real_flat = np.zeros(total, dtype=np.float32)
    for v in weight_map.variables:
        real_flat[v.offset : v.offset + v.size] = np.asarray(v.real, dtype=np.float32).reshape(-1)
    for name in list(weight_map.tensors):
        source = weight_map.tensors[name]
        actual = np.asarray(state[name], dtype=np.float32)
        mask = source.index >= 0
        if actual.shape != source.index.shape or not np.array_equal(actual[mask], real_flat[source.index[mask]]):
            del weight_map.tensors[name]
            weight_map.unmapped.append(name)


def _set_axes(source: TensorSource, v: KerasVariable) -> None:
    """Find which torch dim holds each Keras axis (a permutation, possibly with the entries
    of an axis reordered, as for the Dense after a Flatten)."""
    index = source.index
    if (index < 0).any() or index.size != v.size:
        return
    local = index - v.offset
    if index.shape == v.shape and np.array_equal(local.reshape(-1), np.arange(v.size)):
        source.same_layout = True
        return
    if index.ndim != len(v.shape):
        return
    multi = np.unravel_index(local, v.shape)
    dims_of_axis: list[int | None] = []
    for axis, coords in enumerate(multi):
        varying = [d for d in range(index.ndim) if index.shape[d] > 1 and np.any(np.diff(coords, axis=d) != 0)]
        if len(varying) > 1:
            return
        dims_of_axis.append(varying[0] if varying else None)
    used = {d for d in dims_of_axis if d is not None}
    free = [d for d in range(index.ndim) if d not in used]
    axes = []
    for d in dims_of_axis:
        axes.append(d if d is not None else free.pop(0))
    if sorted(axes) != list(range(index.ndim)):
        return
    if any(index.shape[axes[a]] != v.shape[a] for a in range(len(axes))):
        return
    source.keras_axes = tuple(axes)


def keras_layer_order(model_config: dict, prefix: str = "") -> list[str]:
    """Layer paths in the order of model.layers (nested models recursively): the order of
    Keras' trainable_variables and thus of the optimizer's slot variables."""
    from tf2torch.frontends.keras.layer_calls import MODEL_CLASSES

    order: list[str] = []
    for raw in model_config.get("config", {}).get("layers", []):
        name = prefix + layer_name_of(raw)
        if raw.get("class_name") in MODEL_CLASSES:
            order.extend(keras_layer_order(raw, name + "/"))
        else:
            order.append(name)
    return order


def require_mapped(weight_map: WeightMap, layer: str, index: int, what: str) -> TensorSource:
    i = weight_map.variable(layer, index)
    source = None if i is None else weight_map.tensor_of(i)
    if source is None:
        raise ConversionError(
            f"layer {layer!r}: variable {index} ({what}) has no one-to-one torch tensor; "
            "this needs a converter-specific mapping that is not supported yet."
        )
    return source


__all__ = ["KerasSource", "WeightMap", "build_weight_map", "check_against", "keras_layer_order"]

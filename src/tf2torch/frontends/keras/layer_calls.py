"""Normalize Keras 2 and Keras 3 model configs into one shape: layers and their calls.

Keras 3 writes `inbound_nodes` as `[{"args": [...keras tensors...], "kwargs": {...}}]`,
Keras 2 as `[[["layer", node_index, tensor_index, {kwargs}], ...]]`. Both become
`LayerCall`s whose inputs are `TensorRef`s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tf2torch.errors import BadModelFile

MODEL_CLASSES = {"Functional", "Model", "Sequential"}


@dataclass(frozen=True)
class TensorRef:
    layer: str
    call_index: int
    tensor_index: int


@dataclass
class LayerCall:
    inputs: list[TensorRef]
    kwargs: dict[str, Any] = field(default_factory=dict)
    tensor_kwargs: dict[str, list[TensorRef]] = field(default_factory=dict)
    # Positional arguments as written, tensors replaced by TensorRefs: Keras 3 op entries
    # (e.g. `x + 3.0`) mix tensors and constants.
    args: list[Any] = field(default_factory=list)


@dataclass
class LayerEntry:
    class_name: str
    name: str
    config: dict
    calls: list[LayerCall]
    raw: dict  # the full layer entry (module, registered_name, build_config, ...)

    @property
    def is_model(self) -> bool:
        return self.class_name in MODEL_CLASSES


def _is_keras_tensor(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("class_name") == "__keras_tensor__"


def _tensor_ref_v3(obj: dict) -> TensorRef:
    layer, call_index, tensor_index = obj["config"]["keras_history"]
    return TensorRef(layer, int(call_index), int(tensor_index))


def _collect_tensors_v3(obj: Any) -> list[TensorRef]:
    if _is_keras_tensor(obj):
        return [_tensor_ref_v3(obj)]
    if isinstance(obj, (list, tuple)):
        return [ref for item in obj for ref in _collect_tensors_v3(item)]
    if isinstance(obj, dict) and obj.get("class_name") != "__keras_tensor__":
        return [ref for item in obj.values() for ref in _collect_tensors_v3(item)]
    return []


def _args_v3(args: list) -> list[Any]:
    return [_tensor_ref_v3(a) if _is_keras_tensor(a) else a for a in args]


def _parse_call_v3(node: dict) -> LayerCall:
    inputs = _collect_tensors_v3(node.get("args", []))
    kwargs: dict[str, Any] = {}
    tensor_kwargs: dict[str, list[TensorRef]] = {}
    for key, value in node.get("kwargs", {}).items():
        refs = _collect_tensors_v3(value)
        if refs:
            tensor_kwargs[key] = refs
        else:
            kwargs[key] = value
    return LayerCall(inputs, kwargs, tensor_kwargs, _args_v3(node.get("args", [])))


def _flat_entries_v2(node: list) -> list:
    """Keras 2 nests the entries of nested call arguments (RNN(StackedRNNCells)'s initial
    states: `[x, [h1, c1], h2]`); flatten them in order."""
    flat: list = []
    for entry in node:
        if entry and isinstance(entry[0], list):
            flat.extend(_flat_entries_v2(entry))
        else:
            flat.append(entry)
    return flat


def _parse_call_v2(node: list) -> LayerCall:
    inputs: list[TensorRef] = []
    kwargs: dict[str, Any] = {}
    tensor_kwargs: dict[str, list[TensorRef]] = {}
    args: list[Any] = []
    if node and isinstance(node[0], str):
        node = [node]  # a TFOpLambda called on one tensor: the node is that single entry
    for entry in _flat_entries_v2(node):
        if entry[0] == "_CONSTANT_VALUE":
            # TFOpLambda whose first argument is a constant (`0.5 * x`: multiply(0.5, y=x)).
            args.append(entry[2])
        else:
            inputs.append(TensorRef(entry[0], int(entry[1]), int(entry[2])))
        extra = entry[3] if len(entry) > 3 else {}
        for key, value in (extra or {}).items():
            if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
                tensor_kwargs[key] = [TensorRef(value[0], int(value[1]), int(value[2]))]
            else:
                kwargs[key] = value
    return LayerCall(inputs, kwargs, tensor_kwargs, args)


def has_layer_graph(model_config: dict) -> bool:
    """A Sequential or functional config; a subclassed model's (or a keras_hub backbone's)
    holds only its constructor arguments."""
    return model_config.get("class_name") in MODEL_CLASSES


def entry_class_name(raw: dict) -> str:
    """The registry key of a config entry. Keras 3 op entries (`x + 3.0` on a KerasTensor)
    are keyed apart from layers: ops.numpy.Add is not the Add merge layer."""
    class_name = raw["class_name"]
    if str(raw.get("module", "")).startswith("keras.src.ops"):
        return "ops." + class_name
    if "module" not in raw and set(raw.get("config") or {}) == {"name"}:
        # Keras 3's legacy .h5 drops the module: an op entry is told by its name-only config
        # (a layer's config always has dtype and trainable).
        from tf2torch.frontends.keras.registry import LAYER_IMPORTERS

        if "ops." + class_name in LAYER_IMPORTERS:
            return "ops." + class_name
    return class_name


# Packages whose classes tf2torch converts natively. Classes are matched on the package or
# module recorded in the config, never on a bare class name a user class may share.
NATIVE_PACKAGES = ("keras", "keras_hub", "keras_nlp", "tf_keras")


def is_user_class(raw: dict) -> bool:
    """A class defined by the user (or a third-party package), not by Keras or keras_hub.

    Keras 3 configs carry `module` (None for classes defined in __main__) and
    `registered_name` ("package>Name" when registered); Keras 3's legacy .h5 writes the
    registered name as the class name. Keras 2 configs name the package only for
    registered classes ("Custom>Name")."""
    for name in (raw.get("registered_name"), raw.get("class_name")):
        if isinstance(name, str) and ">" in name and name.split(">", 1)[0] not in NATIVE_PACKAGES:
            return True
    if "registered_name" in raw:
        module = raw.get("module") or ""
        return module.split(".", 1)[0] not in NATIVE_PACKAGES
    return False


def parse_layer(raw: dict, source: str) -> LayerEntry:
    try:
        class_name = entry_class_name(raw)
        config = raw.get("config", {})
        name = raw.get("name") or config["name"]
    except (KeyError, TypeError) as exc:
        raise BadModelFile(f"{source}: malformed layer entry in the model config: {raw!r:.200}") from exc
    calls = []
    for node in raw.get("inbound_nodes", []):
        calls.append(_parse_call_v3(node) if isinstance(node, dict) else _parse_call_v2(node))
    return LayerEntry(class_name, name, config, calls, raw)


def refs_from_spec(spec: Any) -> list[TensorRef]:
    """`input_layers` / `output_layers`: `["name", 0, 0]` or a list (or dict) of those."""
    if isinstance(spec, dict):
        return [ref for item in spec.values() for ref in refs_from_spec(item)]
    if isinstance(spec, list) and len(spec) == 3 and isinstance(spec[0], str) and isinstance(spec[1], int):
        return [TensorRef(spec[0], spec[1], spec[2])]
    if isinstance(spec, list):
        return [ref for item in spec for ref in refs_from_spec(item)]
    raise BadModelFile(f"unexpected input/output spec in the model config: {spec!r:.200}")

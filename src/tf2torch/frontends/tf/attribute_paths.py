"""Name a traced Keras layer's variables by where its code keeps them: `att/query/kernel` for
`self.att` (a MultiHeadAttention, whose query projection Keras names "query"), `ffn/0/kernel`
for the first layer of `self.ffn = keras.Sequential(...)`.

Keras' own variable paths use layer names (`multi_head_attention_3/query/kernel`), which carry
a per-model counter: two instances of one custom class would get different submodule names in
the generated class and could not share it. Attribute names are the same in every instance and
are the names the author wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass
class AttributeNames:
    variables: dict[int, str] = field(default_factory=dict)  # id(variable) -> "att/query/kernel"
    layers: dict[str, str] = field(default_factory=dict)  # sub-layer's Keras name -> "att"

    def readable(self, op_name: str) -> str:
        """A traced op's name with its layers' names replaced by their attributes':
        `multi_head_attention_3_1/query_1/add` -> `att/query/add` (the `_1` are TensorFlow's
        name-scope counters)."""
        parts = []
        for part in op_name.split("/"):
            candidate = part
            while candidate not in self.layers and re.fullmatch(r".+_\d+", candidate):
                candidate = candidate.rsplit("_", 1)[0]
            parts.append(self.layers.get(candidate, part))
        return "/".join(parts)


def attribute_paths(root: Any) -> AttributeNames:
    """Where each variable and sub-layer of `root` is kept, by attribute names."""
    names = AttributeNames()
    _walk(root, "", names, {id(root)})
    return names


def _walk(obj: Any, prefix: str, names: AttributeNames, seen: set[int]) -> None:
    for name, child in _children(obj):
        if id(child) in seen:
            continue
        seen.add(id(child))
        names.layers.setdefault(str(child.name), name)
        _walk(child, f"{prefix}{name}/", names, seen)
    # What no sub-layer holds is the layer's own: `kernel`, `gamma`.
    for variable in list(getattr(obj, "weights", [])) + list(getattr(obj, "variables", [])):
        if id(variable) not in names.variables:
            names.variables[id(variable)] = prefix + _short_name(variable)


def _children(obj: Any) -> list[tuple[str, Any]]:
    """Sub-layers in the order the code assigned them: public attributes under their own
    names, private ones (keras' `_query_dense`) under the layer's name unless Keras made it
    up, the layers of a Sequential or functional model by name or position."""
    if _is_container(obj):
        return [(layer.name if not _auto_named(layer) else str(i), layer) for i, layer in enumerate(obj.layers)]
    public, private = [], []
    for attr, value in vars(obj).items():
        if attr.startswith("__") or attr in ("_layers", "_tracker", "_inbound_nodes", "_outbound_nodes"):
            continue
        items = [(attr, value)] if _is_layer(value) else []
        if isinstance(value, (list, tuple)):
            items = [(f"{attr}_{i}", v) for i, v in enumerate(value) if _is_layer(v)]
        for name, layer in items:
            if name.startswith("_"):
                private.append((layer.name if not _auto_named(layer) else name.lstrip("_"), layer))
            else:
                public.append((name, layer))
    return public + private


def _is_layer(value: Any) -> bool:
    return hasattr(value, "weights") and hasattr(value, "name") and callable(getattr(value, "call", None))


def _is_container(obj: Any) -> bool:
    return type(obj).__name__ in ("Sequential", "Functional")


def _auto_named(layer: Any) -> bool:
    """Is `layer.name` one Keras derived from the class (`dense_6`, `sequential_3`)?"""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", type(layer).__name__).lower()
    snake = re.sub(r"_+", "_", snake)
    return re.fullmatch(rf"{re.escape(snake)}(_\d+)?", str(layer.name)) is not None


def _short_name(variable: Any) -> str:
    name = str(getattr(variable, "name", "") or "variable")
    return name.rsplit("/", 1)[-1].removesuffix(":0")


# Children of a tf.Module / Keras object that list variables or bookkeeping, not attributes
# the author wrote: a variable reached through them is named by its attribute path instead.
_BOOKKEEPING = frozenset({
    "variables", "trainable_variables", "non_trainable_variables", "_all_variables", "_variables",
    "_trainable_variables", "_non_trainable_variables", "weights", "trainable_weights", "non_trainable_weights",
    "keras_api", "signatures", "_default_save_signature", "_self_saveable_object_factories", "_tracked",
    "_layers", "_inbound_nodes", "_outbound_nodes", "_losses", "_loss_ids", "_losses_override",
    "_seed_generators", "_metrics", "_trackable_saver",
})


def object_graph_paths(root: Any) -> dict[int, str]:
    """id(variable handle) -> the variable's attribute path in a loaded SavedModel's object
    graph (`blocks/0/d1/kernel`: the SavedObjectGraph children names, Keras' private `_kernel`
    without its underscore), breadth first so that each variable gets its shortest path."""
    paths: dict[int, str] = {}
    seen = {id(root)}
    queue: list[tuple[Any, str]] = [(root, "")]
    while queue:
        obj, prefix = queue.pop(0)
        children = getattr(obj, "_trackable_children", None)
        try:
            items = list(children().items()) if callable(children) else []
        except Exception:  # noqa: BLE001  (a restored object that cannot list its children: not named by path)
            items = []
        for name, child in items:
            if name in _BOOKKEEPING or id(child) in seen:
                continue
            seen.add(id(child))
            path = f"{prefix}{name.lstrip('_') or name}"
            handle = getattr(child, "handle", None)
            if handle is not None and hasattr(child, "trainable"):
                paths.setdefault(id(handle), path)
            else:
                queue.append((child, path + "/"))
    return paths

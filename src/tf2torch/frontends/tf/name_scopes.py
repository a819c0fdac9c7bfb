"""The Keras names in a TF graph's op names, and the objects its name scopes nest.

Keras 3 on TensorFlow opens a name scope per layer call, and TensorFlow makes every scope
unique with a counter: layer `dense_3` inside `residual_mlp_1` runs its MatMul as
`residual_mlp_1_2/dense_3_1/MatMul`. Those counters are noise (and differ between instances
of one block, so they would keep the instances from sharing a class); the names under them
are the Keras layer names. A scope that holds two or more layers with weights is an object
the author nested (a custom layer, a nested model): it becomes a submodule of its own class.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from tf2torch.ir import Graph

_COUNTER = re.compile(r"^(?P<base>.+)_\d+$")


def counter_free_scopes(op_names: Iterable[str]) -> dict[str, str]:
    """Scope path -> the same path without TensorFlow's uniquifying counters.

    A level's counters are dropped only where every sibling scope carries one (as every
    Keras 3 layer scope does) and dropping them keeps the siblings apart; otherwise the
    numbers may be the layers' own (`dense_1` in a Keras 2 graph) and stay."""
    children: dict[str, set[str]] = {}
    for name in op_names:
        parts = name.split("/")[:-1]
        for depth in range(len(parts)):
            children.setdefault("/".join(parts[:depth]), set()).add(parts[depth])
    renames: dict[str, str] = {}
    pending = [("", "")]
    while pending:
        raw, clean = pending.pop()
        names = sorted(children.get(raw, ()))
        stripped = [_COUNTER.match(n) for n in names]
        bases = [m.group("base") for m in stripped if m is not None]
        keep = len(bases) != len(names) or len(set(bases)) != len(bases)
        for name, base in zip(names, names if keep else bases):
            child_raw = f"{raw}/{name}" if raw else name
            child_clean = f"{clean}/{base}" if clean else base
            renames[child_raw] = child_clean
            pending.append((child_raw, child_clean))
    return renames


def rename_scope(name: str, renames: dict[str, str]) -> str:
    """`name` with its scope path replaced by the counter-free one."""
    if "/" not in name or not renames:
        return name
    scope, _, leaf = name.rpartition("/")
    return f"{renames.get(scope, scope)}/{leaf}"


def scope_objects(graph: Graph, scopes: set[str]) -> None:
    """A node inside a scope that holds two or more layers with weights (`residual_mlp_1`
    holding `dense_3` and `dense_4`) is part of that object: SourceRef.scope, which codegen
    makes a submodule of a class named after the scope's Keras name (`ResidualMlp`: Keras
    names a layer after its class). Only the outermost such scope counts (one level of
    classes). `scopes` are the graph's scope paths: a layer is a scope (a weight op named
    `conv1_bn/mul` directly in its layer's scope is not a layer of `conv1_bn`)."""
    layers: dict[str, set[str]] = {}
    for node in graph.nodes:
        parts = node.source.name.split("/")
        if node.params and len(parts) >= 2 and f"{parts[0]}/{parts[1]}" in scopes:
            layers.setdefault(parts[0], set()).add(parts[1])
    objects = {scope for scope, held in layers.items() if len(held) >= 2}
    for node in graph.nodes:
        parts = node.source.name.split("/")
        if len(parts) >= 2 and parts[0] in objects and not node.source.scope:
            node.source = dataclasses.replace(node.source, scope=((parts[0], class_name_of(parts[0])),))


def class_name_of(scope: str) -> str:
    """`residual_mlp_1` -> `ResidualMlp`: the class Keras named the layer after."""
    match = _COUNTER.match(scope)
    words = [w for w in re.split(r"[_\W]+", match.group("base") if match else scope) if w]
    return "".join(w[:1].upper() + w[1:] for w in words) or "Block"

"""The Keras names in a TF graph's op names, and the objects its name scopes nest.

Keras 3 on TensorFlow opens a name scope per layer call, and TensorFlow makes every scope
unique with a counter: layer `dense_3` inside `residual_mlp_1` runs its MatMul as
`residual_mlp_1_2/dense_3_1/MatMul`. Those counters are noise (and differ between instances
of one block, so they would keep the instances from sharing a class); the names under them
are the Keras layer names. A scope that holds two or more layers with weights is an object
the author nested (a custom layer, a nested model): it becomes a submodule of its own class.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from collections.abc import Iterable

from tf2torch.ir import Graph

_COUNTER = re.compile(r"^(?P<base>.+)_\d+$")
# The scopes of inlined function calls (a restored Keras layer's `StatefulPartitionedCall`,
# in a graph frozen from a loaded SavedModel): no Keras name, dropped from paths.
_CALL = re.compile(r"(Stateful)?PartitionedCall(_\d+)?")
# A layer of a numbered block (`layer_0_att`, a MultiHeadAttention in block `layer_0`): the
# Keras names propose the block around it (codegen.blocks), as they do for the `.keras` file.
_IN_NUMBERED_BLOCK = re.compile(r"_\d+[a-z]?_[a-z]")
# Grappler's plumbing of the calls it inlined (`Func/net/StatefulPartitionedCall/input/_3`).
INLINED = "Func/"


def counter_free_scopes(op_names: Iterable[str]) -> dict[str, str]:
    """Scope path -> the same path without TensorFlow's uniquifying counters.

    Counters are dropped only in a Keras 3 graph, recognised by its top-level scopes (two or
    more, every one with a counter); a Keras 2 graph's numbers are the layers' own (`dense_1`)
    and stay. A counter stays where dropping it would merge two names of a level (`einsum_1`,
    TensorFlow's second `einsum` op scope, next to `einsum`)."""
    children: dict[str, set[str]] = {}
    leaves: dict[str, set[str]] = {}
    for name in op_names:
        parts = name.split("/")
        for depth in range(len(parts) - 1):
            children.setdefault("/".join(parts[:depth]), set()).add(parts[depth])
        leaves.setdefault("/".join(parts[:-1]), set()).add(parts[-1])
    top = children.get("", set())
    keras3 = len(top) >= 2 and all(_COUNTER.match(n) for n in top)
    renames: dict[str, str] = {}
    pending = [("", "")]
    while pending:
        raw, clean = pending.pop()
        names = sorted(children.get(raw, ()))
        finals = _without_counters(names, leaves.get(raw, set())) if keras3 else names
        if len(set(finals)) != len(finals):
            finals = names
        for name, final in zip(names, finals):
            child_raw = f"{raw}/{name}" if raw else name
            child_clean = f"{clean}/{final}" if clean else final
            renames[child_raw] = child_clean
            pending.append((child_raw, child_clean))
    # A call scope merges into its parent; other scopes must stay apart.
    without_calls = {raw: "/".join(p for p in clean.split("/") if not _CALL.fullmatch(p)) for raw, clean in renames.items()}
    named = [without_calls[raw] for raw in renames
             if not _CALL.fullmatch(raw.rsplit("/", 1)[-1]) and not raw.startswith(INLINED)]
    if len(set(named)) == len(named):
        return without_calls
    return renames


def _without_counters(names: list[str], leaves: set[str]) -> list[str]:
    """Each name without its counter, unless a sibling has the same base or is that base
    without a counter of its own (`einsum` next to `einsum_1`), or an op of the level is."""
    matches = [_COUNTER.match(n) for n in names]
    bases = collections.Counter(m.group("base") for m in matches if m is not None)
    plain = {n for n, m in zip(names, matches) if m is None} | leaves
    return [m.group("base") if m is not None and bases[m.group("base")] == 1 and m.group("base") not in plain else n
            for n, m in zip(names, matches)]


def rename_scope(name: str, renames: dict[str, str]) -> str:
    """`name` with its scope path replaced by the counter-free one."""
    if "/" not in name or not renames:
        return name
    scope, _, leaf = name.rpartition("/")
    scope = renames.get(scope, scope)
    return f"{scope}/{leaf}" if scope else leaf


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
    objects = {scope for scope, held in layers.items() if len(held) >= 2 and not _IN_NUMBERED_BLOCK.search(scope)}
    for node in graph.nodes:
        parts = node.source.name.split("/")
        if len(parts) >= 2 and parts[0] in objects and not node.source.scope:
            node.source = dataclasses.replace(node.source, scope=((parts[0], class_name_of(parts[0])),))


def class_name_of(scope: str) -> str:
    """`residual_mlp_1` -> `ResidualMlp`, the class Keras named the layer after; numbers are
    instance indices (`layer_0_att` and `layer_1_att` are both a `LayerAtt`)."""
    words = [w for w in re.split(r"[_\W]+", scope) if w and not w.isdigit()]
    return "".join(w[:1].upper() + w[1:] for w in words) or "Block"


def name_scope_outputs(graph: Graph) -> None:
    """A value that is the only one leaving its name scope (`conv1_relu/relu`, read by the next
    layers) is named after the scope: `conv1_relu`, the Keras layer whose output it is."""
    inside: dict[int, str] = {}
    for node in graph.nodes:
        for value in node.outputs:
            inside[id(value)] = value.name.rpartition("/")[0]
    leaving: dict[str, list] = {}
    for node in graph.nodes:
        for value in node.inputs:
            scope = inside.get(id(value), "")
            if scope and not node.source.name.startswith(f"{scope}/") and value not in leaving.get(scope, []):
                leaving.setdefault(scope, []).append(value)
    for value in graph.outputs:
        scope = inside.get(id(value), "")
        if scope and value not in leaving.get(scope, []):
            leaving.setdefault(scope, []).append(value)
    taken = {v.name for node in graph.nodes for v in node.outputs}
    for scope, values in leaving.items():
        if len(values) == 1 and scope not in taken:
            values[0].name = scope

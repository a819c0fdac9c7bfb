"""Blocks proposed by the dataflow, for models whose layer names propose none.

InceptionV3's modules (`conv2d_57`, ..., `mixed5`), InceptionResNetV2's residual modules (the
branches are `conv2d_N`, only the tail is `block35_3_*`) and NASNet's cells repeat, but their
layer names say nowhere where a block starts. The flat forward() says it: a module starts and
ends where only one value is live (the tensor all its branches read; for NASNet's cells, which
read the two previous cells' outputs, two values). The statements between two such points are
a candidate; candidates with one structure (`blocks._signature`) that occur at least twice
become a block kind, the same way named blocks do. A candidate must branch and merge (a chain
of layers is no block) and own at least three submodules.

    activation_5 = ...  (conv2d_5 ...)                 class Mixed(nn.Module):
    ...                                        ->          ...
    mixed0 = torch.cat([...], dim=1)                   x = self.mixed(x)
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tf2torch.codegen.code_names import self_attributes
from tf2torch.codegen.naming import MODULE_RESERVED, NameScope, identifier
from tf2torch.codegen.program import Statement

# Live values at a block boundary: one for a module of branches, two for a cell that reads
# the two previous cells (NASNet). Tried in this order; wider cuts only where narrower found nothing.
CUT_WIDTHS = (1, 2)
MIN_SUBMODULES = 3
# A stage name a class can be named after (`mixed`, `block35`, `normal_concat`).
_PLAIN = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z][a-z0-9]*)*$")

ReadsWrites = Callable[[Statement], tuple[list[str], list[str]]]
MakeInstance = Callable[[str, str, int, int], object]


def live_counts(statements: list[Statement], reads_writes: ReadsWrites, returned: list[str]) -> list[int]:
    """How many values are live before each statement (and, last, after the final one)."""
    live = set(returned)
    counts = [len(live)]
    for st in reversed(statements):
        reads, writes = reads_writes(st)
        live = (live - set(writes)) | set(reads)
        counts.append(len(live))
    return counts[::-1]


def segments(counts: list[int], width: int, statements: list[Statement]) -> list[tuple[int, int]]:
    """The statement ranges between consecutive positions with at most `width` live values.
    Between cells (width 2) a range without submodules (the next cell's `relu(previous)`)
    belongs to the cell after it."""
    cuts = [p for p, count in enumerate(counts) if count <= width]
    ranges = []
    start = cuts[0] if cuts else 0
    for stop in cuts[1:]:
        if width > 1 and not any(self_attributes(st.expr) for st in statements[start:stop]):
            continue
        ranges.append((start, stop))
        start = stop
    return ranges


def block_name(layer: str) -> tuple[str, str]:
    """(block id, stage) from the name of the layer computing a block's output: the name up to
    its last number (`block35_3_ac` -> `block35_3`, `mixed5` -> `mixed5`); the stage is the id
    without that number (`block35`, `mixed`)."""
    match = re.match(r"^(?P<block>(?P<stage>.*?)_?\d+)(?:_[A-Za-z][A-Za-z_]*)?$", layer)
    if match is None or not match.group("stage"):
        return layer, layer
    return match.group("block"), match.group("stage")


def _is_candidate(own: list[Statement], reads_writes: ReadsWrites) -> bool:
    attrs = {a for st in own for a in self_attributes(st.expr)}
    merges = any(len(set(reads_writes(st)[0])) >= 2 for st in own)
    return merges and len(attrs - {"training"}) >= MIN_SUBMODULES


def _output_layer(own: list[Statement]) -> tuple[str, str] | None:
    """The name and class of the last layer of the segment whose name Keras did not make up
    (`block35_1_ac` rather than the `custom_scale_layer_3` before it); else of the last layer."""
    layers = [(v.producer.source.name, v.producer.source.kind) for st in own for v in st.values if v.producer is not None]
    named = [layer for layer in layers if not _made_up(*layer)]
    return (named or layers or [None])[-1]


def _made_up(layer: str, kind: str) -> bool:
    return re.sub(r"_\d+$", "", layer.rsplit("/", 1)[-1]) == _snake(kind)


def structural_instances(
    statements: list[Statement], reads_writes: ReadsWrites, returned: list[str], claimed: set[int],
    make_instance: MakeInstance, signature_of: Callable[[object], tuple],
) -> list[list]:
    """Groups (two or more) of same-structure instances among the statements not `claimed`
    (positions already in a block); each made by `make_instance(block, stage, start, stop)`."""
    counts = live_counts(statements, reads_writes, returned)
    taken = set(claimed)
    found: list[list] = []
    for width in CUT_WIDTHS:
        groups: dict[tuple, list] = {}
        for start, stop in _with_named_tails(segments(counts, width, statements), statements):
            own = statements[start:stop]
            if any(p in taken for p in range(start, stop)) or not _is_candidate(own, reads_writes):
                continue
            layer = _output_layer(own)
            if layer is None:
                continue
            block, stage = _block_and_stage(*layer)
            instance = make_instance(block, stage, start, stop)
            if instance is not None:
                groups.setdefault(signature_of(instance), []).append(instance)
        for group in groups.values():
            if len(group) >= 2:
                found.append(group)
                for instance in group:
                    taken.update(range(instance.start, instance.stop))  # type: ignore[attr-defined]
    return found


def _with_named_tails(ranges: list[tuple[int, int]], statements: list[Statement]) -> list[tuple[int, int]]:
    """A range without submodules whose layers are all named after the block before it
    (InceptionResNetV2's `block35_3_ac` after the add of `block35_3`) is part of that block."""
    merged: list[tuple[int, int]] = []
    for start, stop in ranges:
        own = statements[start:stop]
        if merged and not any(self_attributes(st.expr) for st in own):
            before = _output_layer(statements[merged[-1][0]:merged[-1][1]])
            names = {block_name(v.producer.source.name)[0] for st in own for v in st.values if v.producer is not None}
            if before is not None and names == {block_name(before[0])[0]}:
                merged[-1] = (merged[-1][0], stop)
                continue
        merged.append((start, stop))
    return merged


def _block_and_stage(layer: str, kind: str) -> tuple[str, str]:
    block, stage = block_name(layer)
    if _made_up(layer, kind) or not _PLAIN.match(stage.rsplit("/", 1)[-1]):
        return identifier(layer), "block_"  # a name Keras made up (`add_5`) names no kind of block
    return block, stage


def _snake(class_name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", class_name).lower()


def tidy_local_names(local_attrs: dict[str, str], local_vars: dict[str, str], reserved: set[str]) -> None:
    """Names inside a block proposed by structure: a made-up layer name loses its global
    number (`conv2d_57` -> `conv2d`, the next one `conv2d_1`), as the numbers count layers
    of the whole model; a value named after its layer takes that layer's new name."""
    attrs = NameScope(MODULE_RESERVED)
    for flat, local in local_attrs.items():
        local_attrs[flat] = attrs.unique(_unnumbered(local))
    kept = {local for local in local_vars.values() if local == "x" or local.startswith("inputs")}
    scope = NameScope(reserved | kept)
    for flat, local in local_vars.items():
        if local not in kept:
            local_vars[flat] = scope.unique(local_attrs.get(flat) or _unnumbered(local))


def _unnumbered(name: str) -> str:
    return identifier(re.sub(r"_\d+$", "", name))

"""Block classes inside a nested model's class: an application used as a backbone keeps its
own blocks, one level down.

    class Block(nn.Module): ...                     # the backbone's inverted residuals
    class Mobilenetv2(nn.Module):                   # the nested Keras model
        def __init__(self) -> None:
            self.blocks = nn.Sequential(Block(...), ...)
    class Classifier(nn.Module):
        def __init__(self) -> None:
            self.mobilenetv2 = Mobilenetv2()

The nested model's statements are seen as a model of their own (a `Part`): its layers named
without the outer model's prefix (`block_3_expand`, not `mobilenetv2_1.00_224/block_3_expand`),
its source scopes one level shorter, so that `blocks.find_blocks` proposes its blocks (and its
own nested models) exactly as it does for a top-level model, recursively.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import SimpleNamespace

from tf2torch.codegen.blocks import BlockKind, Structure, find_blocks
from tf2torch.codegen.code_names import rename
from tf2torch.codegen.program import Statement, Submodule


@dataclass
class Part:
    """The statements of one nested model, under its class's local names; duck-types the
    `ModuleBuilder` and `Graph` that find_blocks and the renderer read."""

    statements: list[Statement]
    submodules: list[Submodule]
    inputs: list[str]
    outputs: list[str]
    helpers: dict[str, str] = field(default_factory=dict)
    methods: dict[str, str] = field(default_factory=dict)
    named_outputs: bool = False

    def var(self, name: str) -> str:
        return name


@dataclass
class Nested:
    """A nested model's class with block classes of its own."""

    part: Part
    structure: Structure
    # Local attribute (`block_3_expand`) -> its path in the class (`blocks.2.expand`).
    paths: dict[str, str]


def nest_blocks(structure: Structure, statements: list[Statement], reserved: set[str]) -> dict[str, Nested]:
    """For each block kind of `structure` that is a nested model holding repeated blocks of
    its own: its inner structure, by class name. The kind's template then maps each of its
    layers to the nested path (weights, weights_map.json and verification taps follow)."""
    taken = set(reserved) | {k.class_name for k in structure.kinds}
    nested: dict[str, Nested] = {}
    for kind in structure.kinds:
        template = kind.template
        if not template.source_class or kind.parameters:
            continue
        part = _part(kind, statements)
        inner = find_blocks(part, part, taken)  # type: ignore[arg-type]  (duck-typed)
        if not inner.kinds:
            continue
        taken |= {k.class_name for k in inner.kinds}
        inner_nested = nest_blocks(inner, part.statements, taken)
        taken |= {name for n in inner_nested.values() for name in _class_names(n)}
        paths = inner.key_map(part)  # type: ignore[arg-type]  (after the inner kinds nested theirs)
        nested[kind.class_name] = Nested(part, inner, paths)
        nested.update(inner_nested)
        for flat, local in list(template.local_attrs.items()):
            template.local_attrs[flat] = paths.get(local, local)
    return nested


def _class_names(nested: Nested) -> set[str]:
    return {k.class_name for k in nested.structure.kinds}


def _part(kind: BlockKind, statements: list[Statement]) -> Part:
    template = kind.template
    prefix = f"{template.block}/"
    own = []
    for st in statements[template.start:template.stop]:
        values = tuple(_inner_value(v, prefix) for v in st.values)
        expr = rename(st.expr, template.local_vars, template.local_attrs)
        targets = [template.local_vars.get(t, t) for t in st.targets]
        unfused = tuple(dataclasses.replace(u, expr=rename(u.expr, template.local_vars, template.local_attrs),
                                            targets=[template.local_vars.get(t, t) for t in u.targets])
                        for u in st.unfused)
        own.append(dataclasses.replace(st, targets=targets, expr=expr, values=values, unfused=unfused))
    subs = [dataclasses.replace(sub, attr=template.local_attrs[sub.attr]) for sub in template.subs]
    inputs = [template.local_vars[n] for n in template.inputs]
    outputs = [template.local_vars[n] for n in template.outputs]
    return Part(own, subs, inputs, outputs)


def _inner_value(value, prefix: str):
    """A value as the nested model sees it: its layer's name without the outer model's, its
    scopes without the outermost."""
    producer = value.producer
    if producer is None or not producer.source.scope:
        return value
    source = producer.source
    name = source.name.removeprefix(prefix)
    scope = tuple((scope_name.removeprefix(prefix), class_name) for scope_name, class_name in source.scope[1:])
    inner = dataclasses.replace(source, name=name, scope=scope)
    return SimpleNamespace(producer=SimpleNamespace(source=inner))

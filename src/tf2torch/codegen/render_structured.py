"""Render a ModuleBuilder as a structured model.py: one class per repeated block kind,
blocks that chain in an `nn.Sequential`, the rest as in the flat rendering."""

from __future__ import annotations

from tf2torch.codegen.blocks import BlockKind, Instance, Sequence, Structure, find_blocks
from tf2torch.codegen.code_names import free_names, rename
from tf2torch.codegen.nested_blocks import Nested, nest_blocks
from tf2torch.codegen.program import ModuleBuilder, Statement, Submodule
from tf2torch.codegen.render import (
    INDENT,
    blank_unread_targets,
    finish,
    header,
    load_model_lines,
    outputs_class,
    returns_named_tuple,
)
from tf2torch.ir import Graph

LINE_LENGTH = 120


def module_level_names(builder: ModuleBuilder, class_name: str) -> set[str]:
    return {class_name, "Path", "load_model", *builder.helpers}


def structure_of(graph: Graph, builder: ModuleBuilder, class_name: str) -> Structure:
    reserved = module_level_names(builder, class_name)
    structure = find_blocks(graph, builder, reserved)
    structure.nested = nest_blocks(structure, builder.statements, reserved)
    return structure


def render_structured(
    graph: Graph, builder: ModuleBuilder, structure: Structure, class_name: str, source_name: str
) -> str:
    out = header(graph, builder, class_name, source_name)
    for kind in structure.kinds:
        out += _kind_classes(kind, builder, structure.nested)
    out += _model_class(graph, builder, structure, class_name)
    return finish(out + load_model_lines(class_name))


def _kind_classes(kind: BlockKind, builder: ModuleBuilder, nested: dict[str, Nested]) -> list[str]:
    """A block kind's class; for a nested model with blocks of its own, their classes first."""
    inner = nested.get(kind.class_name)
    if inner is None:
        return _block_class(kind, builder) + ["", ""]
    out: list[str] = []
    for sub in inner.structure.kinds:
        out += _kind_classes(sub, inner.part, nested)  # type: ignore[arg-type]  (a Part reads like a builder)
    return out + _model_class(inner.part, inner.part, inner.structure, kind.class_name) + ["", ""]  # type: ignore[arg-type]


def _submodule_lines(attr: str, sub: Submodule, ctor: str, indent: str) -> list[str]:
    out = [f"{indent}# {line}" for line in (sub.comment or "").splitlines()]
    out.append(f"{indent}self.{attr} = {ctor}")
    if sub.frozen == ("*",):
        out.append(f"{indent}self.{attr}.requires_grad_(False)")
    else:
        out += [f"{indent}self.{attr}.{param}.requires_grad_(False)" for param in sub.frozen]
    return out


def _statement_lines(st: Statement, targets: list[str], expr: str, indent: str) -> list[str]:
    out = [f"{indent}# {line}" for line in (st.comment or "").splitlines()]
    out.append(f"{indent}{', '.join(targets)} {st.operator} {expr}")
    return out


def _returns(count: int) -> str:
    return "torch.Tensor" if count == 1 else f"tuple[{', '.join(['torch.Tensor'] * count)}]"


def _block_class(kind: BlockKind, builder: ModuleBuilder) -> list[str]:
    template = kind.template
    names = ", ".join(i.block for i in sorted(kind.instances, key=lambda i: i.start))
    what = template.source_class if template.source_class else "Keras blocks"  # `TransformerEncoder transformer_layer_0`
    doc = f'{INDENT}"""{what} {names}."""'
    if len(doc) > LINE_LENGTH:
        first, last = min(kind.instances, key=lambda i: i.start), max(kind.instances, key=lambda i: i.start)
        doc = f'{INDENT}"""{what} {first.block} ... {last.block} ({len(kind.instances)})."""'
    params = ""
    for p in kind.parameters:
        if p.derived:
            continue
        annotation = f": {p.annotation}" if p.annotation else ""
        default = "" if p.default is None else (f" = {p.default}" if annotation else f"={p.default}")
        params += f", {p.name}{annotation}{default}"
    out = [f"class {kind.class_name}(nn.Module):", doc, ""]
    out += _wrapped_def(f"{INDENT}def __init__(", f"self{params}", ") -> None:")
    out.append(f"{INDENT * 2}super().__init__()")
    out += [f"{INDENT * 2}self.{p.name} = {p.name}" for p in kind.stored]
    part, switch = kind.optional, kind.switch
    for position, sub in enumerate(template.subs):
        ctor = kind.ctor(position)
        if part is not None and switch is not None and position in part.subs:
            ctor += f" if {switch.name} else None"
        out += _submodule_lines(template.local_attrs[sub.attr], sub, ctor, INDENT * 2)
    args = ", ".join(f"{template.local_vars[n]}: torch.Tensor" for n in template.inputs)
    out += ["", f"{INDENT}def forward(self, {args}) -> {_returns(len(template.outputs))}:"]
    own = builder.statements[template.start:template.stop]
    returned = [template.local_vars[n] for n in template.outputs]
    if kind.residual is not None:  # the add writes the value it adds to: the same name either way
        returned = [template.local_vars[own[-2].targets[0]]]
    for position, st in enumerate(own):
        indent = INDENT * 2
        if part is not None and position in part.statements:
            indent = INDENT * 3
            if position == part.statements.start:  # the blocks without it use their input instead
                first = template.local_attrs[template.subs[part.subs[0]].attr]
                value, source = template.local_vars[part.value], template.local_vars[part.source]
                out += [f"{INDENT * 2}{value} = {source}"] if value != source else []
                out.append(f"{INDENT * 2}if self.{first} is not None:")
        expr = kind.statement(position, rename(st.expr, template.local_vars, template.local_attrs))
        kept = blank_unread_targets(st.targets, own[position + 1:], f"return {', '.join(template.outputs)}")
        targets = ["_" if k == "_" else template.local_vars[t] for k, t in zip(kept, st.targets)]
        optional = kind.residual is not None and position == len(own) - 1  # the add only some blocks run
        if optional:
            out += [f"{INDENT * 2}if self.{kind.residual.name}:", *_statement_lines(st, returned, expr, INDENT * 3)]
            continue
        if position == len(own) - 1 and st.operator == "=" and targets == returned and len(targets) == 1:
            out += _statement_lines(st, ["return"], expr, INDENT * 2)[:-1] + [f"{INDENT * 2}return {expr}"]
            return out  # `return F.relu(x)` rather than `out = F.relu(x)` + `return out`
        out += _statement_lines(st, targets, expr, indent)
    out.append(f"{INDENT * 2}return {', '.join(returned)}")
    return out


def _wrapped_def(head: str, params: str, tail: str) -> list[str]:
    """A def line, its parameters wrapped onto indented lines when it is too long."""
    if len(head + params + tail) <= LINE_LENGTH:
        return [head + params + tail]
    lines, line = [], INDENT * 2
    for param in params.split(", "):
        if len(line) + len(param) + 2 > LINE_LENGTH and line.strip():
            lines.append(line.rstrip())
            line = INDENT * 2
        line += param + ", "
    lines.append(line.rstrip())
    return [head] + lines + [f"{INDENT}{tail}"]


def _sequential(sequence: Sequence) -> list[str]:
    calls = [i.kind.arguments(i) for i in sequence.instances if i.kind is not None]
    items: list[str] = []
    n = 0
    while n < len(calls):
        repeat = 1
        while n + repeat < len(calls) and calls[n + repeat] == calls[n]:
            repeat += 1
        items += [f"*({calls[n]} for _ in range({repeat}))"] if repeat >= 3 else [calls[n]] * repeat
        n += repeat
    container = "nn.ModuleList" if sequence.shared_inputs else "nn.Sequential"
    if container == "nn.ModuleList" and len(items) == 1 and items[0].startswith("*("):
        return [f"{INDENT * 2}self.{sequence.attr} = nn.ModuleList({items[0][2:-1]})"]
    if container == "nn.ModuleList":
        items = [f"[{', '.join(items)}]"] if len(items) > 1 else items
    one_line = f"{INDENT * 2}self.{sequence.attr} = {container}({', '.join(items)})"
    if len(one_line) <= LINE_LENGTH:
        return [one_line]
    if container == "nn.ModuleList":
        items = [item.strip("[]") for item in items[0][1:-1].split(", ")] if items[0].startswith("[") else items
        return [f"{INDENT * 2}self.{sequence.attr} = nn.ModuleList(["] + [
            f"{INDENT * 3}{item}," for item in items] + [f"{INDENT * 2}])"]
    return [f"{INDENT * 2}self.{sequence.attr} = {container}("] + _packed(items, INDENT * 3) + [f"{INDENT * 2})"]


def _packed(items: list[str], indent: str) -> list[str]:
    """`items`, comma-separated, as many on a line as fit (a stage of MobileNet's blocks)."""
    lines = [indent]
    for item in items:
        if len(lines[-1]) + len(item) + 2 > LINE_LENGTH and lines[-1].strip():
            lines[-1] = lines[-1].rstrip()
            lines.append(indent)
        lines[-1] += f"{item}, "
    return [line.rstrip() for line in lines]


def _loop(sequence: Sequence) -> list[str]:
    """`x = self.stage(x)`, or for blocks with shared inputs a loop over the ModuleList."""
    first, last = sequence.instances[0], sequence.instances[-1]
    out = last.outputs[0]
    if not sequence.shared_inputs:
        return [f"{INDENT * 2}{out} = self.{sequence.attr}({first.inputs[0]})"]
    lines = [] if first.inputs[0] == out else [f"{INDENT * 2}{out} = {first.inputs[0]}"]
    args = ", ".join([out, *sequence.shared_inputs])
    return lines + [f"{INDENT * 2}for block in self.{sequence.attr}:", f"{INDENT * 3}{out} = block({args})"]


def _renames_previous(statements: list[Statement], sequence: Sequence, result: str) -> bool:
    """Is the loop's input written by the statement just before it and read nowhere after the
    loop (the blocks read it inside their classes)?"""
    first, last = sequence.instances[0], sequence.instances[-1]
    name = first.inputs[0]
    previous = statements[first.start - 1] if first.start else None
    if previous is None or previous.targets != [name] or previous.operator != "=" or name in sequence.shared_inputs:
        return False
    return not any(name in free_names(text) for text in [st.expr for st in statements[last.stop:]] + [result])


def _model_class(graph: Graph, builder: ModuleBuilder, structure: Structure, class_name: str) -> list[str]:
    owner: dict[str, Instance] = {sub.attr: i for i in structure.instances for sub in i.subs}
    sequence_of = {id(i): s for s in structure.sequences for i in s.instances}
    out: list[str] = []
    named = returns_named_tuple(graph)
    if named:
        out.append(f"class {outputs_class(class_name)}(NamedTuple):")
        out += [f"{INDENT}{builder.var(v)}: torch.Tensor" for v in graph.outputs]
        out += ["", ""]
    out += [f"class {class_name}(nn.Module):", f"{INDENT}def __init__(self) -> None:", f"{INDENT * 2}super().__init__()"]
    declared: set[int] = set()
    for sub in builder.submodules:
        instance = owner.get(sub.attr)
        if instance is None:
            out += _submodule_lines(sub.attr, sub, sub.ctor, INDENT * 2)
            continue
        sequence = sequence_of.get(id(instance))
        key = id(sequence) if sequence is not None else id(instance)
        if key in declared:
            continue
        declared.add(key)
        if sequence is not None:
            out += _sequential(sequence)
        elif instance.kind is not None:
            out.append(f"{INDENT * 2}self.{instance.path} = {instance.kind.arguments(instance)}")

    args = ", ".join(f"{builder.var(v)}: torch.Tensor" for v in graph.inputs)
    returns = outputs_class(class_name) if named else _returns(len(graph.outputs))
    out += ["", f"{INDENT}def forward(self, {args}) -> {returns}:"]
    returned = ", ".join(builder.var(v) for v in graph.outputs)
    result = f"return {outputs_class(class_name)}({returned})" if named else f"return {returned}"
    starts = {i.start: i for i in structure.instances}
    position = 0
    statements = builder.statements
    while position < len(statements):
        instance = starts.get(position)
        if instance is None:
            st = statements[position]
            targets = blank_unread_targets(st.targets, statements[position + 1:], result)
            out += _statement_lines(st, targets, st.expr, INDENT * 2)
            position += 1
            continue
        sequence = sequence_of.get(id(instance))
        if sequence is not None:
            loop = _loop(sequence)
            inline = not any(i.start < position <= i.stop for i in structure.instances)  # the line before is its own
            if len(loop) == 3 and inline and _renames_previous(statements, sequence, result):
                # `h = self.dropout(x)` + `sequence_output = h` -> `sequence_output = self.dropout(x)`
                previous = statements[position - 1]
                out[-1] = f"{INDENT * 2}{sequence.instances[-1].outputs[0]} {previous.operator} {previous.expr}"
                loop = loop[1:]
            out += loop
            position = sequence.instances[-1].stop
        else:
            out.append(f"{INDENT * 2}{', '.join(instance.outputs)} = self.{instance.path}({', '.join(instance.inputs)})")
            position = instance.stop
    out.append(f"{INDENT * 2}{result}")
    for method in builder.methods.values():
        out += [""] + [f"{INDENT}{line}" if line else "" for line in method.strip("\n").splitlines()]
    return out

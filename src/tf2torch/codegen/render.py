"""Render a ModuleBuilder as the text of model.py (a pure function of its input)."""

from __future__ import annotations

import re
import sys

from tf2torch.codegen.program import ModuleBuilder, Statement
from tf2torch.ir import Graph, Value

INDENT = "    "


def _dims(shape: tuple) -> str:
    return "[" + ", ".join("N" if i == 0 and d is None else ("?" if d is None else str(d)) for i, d in enumerate(shape)) + "]"


def _describe(value: Value, name: str) -> str:
    text = f"{name}  {value.spec.dtype}{_dims(value.torch_shape)}"
    if value.perm is not None:
        layout = {4: "NCHW", 5: "NCDHW", 3: "NCL"}.get(value.rank, "channels-first")
        keras_layout = {4: "NHWC", 5: "NDHWC", 3: "NLC"}.get(value.rank, "channels-last")
        text += f"  ({layout}; the Keras tensor is {keras_layout} {_dims(value.spec.shape)})"
    return text


def docstring_text(text: str) -> str:
    """Text from the source (a file name, a note naming a layer) made safe inside the
    docstring: one line, and no quote or backslash that could end the string early (a file
    named 'x\"\"\"\nimport os' must not become code in model.py)."""
    return "".join(
        ch if ch.isprintable() and ch not in '\\"' else ("\\" + ch if ch in '\\"' else ch.encode("unicode_escape").decode())
        for ch in text
    )


def docstring(graph: Graph, builder: ModuleBuilder, class_name: str, source_name: str) -> str:
    lines = [f'"""{class_name}, converted from {docstring_text(source_name)} by tf2torch.', ""]
    lines.append("Inputs:")
    for value in graph.inputs:
        lines.append(f"    {_describe(value, builder.var(value))}")
    lines.append(f"Outputs (fields of {outputs_class(class_name)}):" if returns_named_tuple(graph) else "Outputs:")
    for value in graph.outputs:
        lines.append(f"    {_describe(value, builder.var(value))}")
    if graph.notes:
        lines += ["", "Conversion notes:"]
        lines += [f"    - {docstring_text(note)}" for note in graph.notes]
    lines.append('"""')
    return "\n".join(lines)


def returns_named_tuple(graph: Graph) -> bool:
    """A source returning a dict of several outputs: forward returns a NamedTuple of them."""
    return graph.named_outputs and len(graph.outputs) > 1


def outputs_class(class_name: str) -> str:
    return f"{class_name}Outputs"


TAP_PRELUDE = '''
TAPS: dict[str, torch.Tensor] = {}
SUBSTITUTES: dict[str, torch.Tensor] = {}


def _tap(name: str, tensor: torch.Tensor) -> torch.Tensor:
    TAPS[name] = tensor.detach().clone()  # later in-place ops must not change it
    # Isolated checks: the layers after this one read the reference value instead.
    return SUBSTITUTES[name].clone() if name in SUBSTITUTES else tensor
'''


def _import_block(lines: set[str]) -> list[str]:
    """`import` lines before `from` lines, each sorted."""
    return sorted(i for i in lines if i.startswith("import ")) + sorted(i for i in lines if i.startswith("from "))


def blank_unread_targets(targets: list[str], later: list[Statement], result: str) -> list[str]:
    """Targets of a tuple unpacking that nothing reads become `_` (an LSTM's final cell state
    when only its outputs are used): generated code has no unused variables."""
    if len(targets) < 2:
        return targets
    text = "\n".join([st.expr for st in later] + [result])

    def blank(target: str) -> str:
        if target.startswith("(") and target.endswith(")"):  # a nested tuple: `(h_n, c_n)`
            inner = [blank(t.strip()) for t in target[1:-1].split(",")]
            return "_" if set(inner) == {"_"} else f"({', '.join(inner)})"
        if not target.isidentifier() or re.search(rf"\b{target}\b", text):
            return target
        return "_"

    return [blank(t) for t in targets]


def render_module(
    graph: Graph, builder: ModuleBuilder, class_name: str, source_name: str, taps: dict[int, str] | None = None
) -> str:
    """The text of model.py. `taps` (value id -> key) is for layer-by-layer verification only:
    the same code with a `value = _tap(key, value)` line after the statement that computes each
    value (records it and may substitute the reference's value)."""
    out = header(graph, builder, class_name, source_name)
    if taps:
        out += [TAP_PRELUDE.strip("\n"), "", ""]

    named = returns_named_tuple(graph)
    if named:
        out.append(f"class {outputs_class(class_name)}(NamedTuple):")
        out += [f"{INDENT}{builder.var(v)}: torch.Tensor" for v in graph.outputs]
        out += ["", ""]
    out.append(f"class {class_name}(nn.Module):")
    out.append(f"{INDENT}def __init__(self) -> None:")
    out.append(f"{INDENT * 2}super().__init__()")
    for sub in builder.submodules:
        if sub.comment:
            out += [f"{INDENT * 2}# {line}" for line in sub.comment.splitlines()]
        out.append(f"{INDENT * 2}self.{sub.attr} = {sub.ctor}")
        if sub.frozen == ("*",):
            out.append(f"{INDENT * 2}self.{sub.attr}.requires_grad_(False)")
        else:
            for param in sub.frozen:
                out.append(f"{INDENT * 2}self.{sub.attr}.{param}.requires_grad_(False)")

    args = ", ".join(f"{builder.var(v)}: torch.Tensor" for v in graph.inputs)
    returns = "torch.Tensor" if len(graph.outputs) == 1 else f"tuple[{', '.join(['torch.Tensor'] * len(graph.outputs))}]"
    if named:
        returns = outputs_class(class_name)
    out += ["", f"{INDENT}def forward(self, {args}) -> {returns}:"]
    returned = ", ".join(builder.var(v) for v in graph.outputs)
    result = f"return {outputs_class(class_name)}({returned})" if named else f"return {returned}"
    statements = builder.unfused_statements() if taps else builder.statements
    for i, st in enumerate(statements):
        if st.comment:
            out += [f"{INDENT * 2}# {line}" for line in st.comment.splitlines()]
        targets = st.targets if taps else blank_unread_targets(st.targets, statements[i + 1:], result)
        out.append(f"{INDENT * 2}{', '.join(targets)} {st.operator} {st.expr}")
        for value in st.values if taps else ():
            if id(value) in taps:
                var = builder.var(value)
                out.append(f'{INDENT * 2}{var} = _tap("{taps[id(value)]}", {var})')
    out.append(f"{INDENT * 2}{result}")
    for method in builder.methods.values():
        out += [""] + [f"{INDENT}{line}" if line else "" for line in method.strip("\n").splitlines()]
    return finish(out + load_model_lines(class_name))


def header(graph: Graph, builder: ModuleBuilder, class_name: str, source_name: str) -> list[str]:
    """Docstring, imports and helper classes: the lines before the model's own classes."""
    out: list[str] = [docstring(graph, builder, class_name, source_name)]
    # A standard-library block (`import math` for some helpers), then the third-party one:
    # what isort / ruff's I001 expect.
    stdlib = {i for i in builder.imports if i.split()[1].split(".")[0] in sys.stdlib_module_names}
    stdlib |= {"from pathlib import Path"} | ({"from typing import NamedTuple"} if returns_named_tuple(graph) else set())
    out += _import_block(stdlib) + [""] + _import_block(builder.imports - stdlib)
    out += ["", ""]
    for helper in builder.helpers.values():
        out += [helper.strip("\n"), "", ""]
    return out


def load_model_lines(class_name: str) -> list[str]:
    return [
        "",
        "",
        f"def load_model(weights_path: str | Path | None = None) -> {class_name}:",
        f'{INDENT}"""The model with its weights (by default model.safetensors beside this file)."""',
        f"{INDENT}from safetensors.torch import load_file",
        "",
        f"{INDENT}model = {class_name}()",
        f'{INDENT}path = weights_path or Path(__file__).with_name("model.safetensors")',
        f"{INDENT}model.load_state_dict(load_file(str(path)), strict=True)  # every tensor must match",
        f"{INDENT}return model",
        "",
    ]


def finish(out: list[str]) -> str:
    text = "\n".join(out)
    while "\n\n\n\n" in text:
        text = text.replace("\n\n\n\n", "\n\n\n")
    return text


def state_dict(builder: ModuleBuilder) -> dict:
    flat = {}
    for sub in builder.submodules:
        for name, array in sub.state.items():
            flat[f"{sub.attr}.{name}"] = array
    return flat

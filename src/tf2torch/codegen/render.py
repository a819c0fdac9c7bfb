"""Render a ModuleBuilder as the text of model.py (a pure function of its input)."""

from __future__ import annotations

from tf2torch.codegen.program import ModuleBuilder
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
    lines.append("Outputs:")
    for value in graph.outputs:
        lines.append(f"    {_describe(value, builder.var(value))}")
    if graph.notes:
        lines += ["", "Conversion notes:"]
        lines += [f"    - {docstring_text(note)}" for note in graph.notes]
    lines.append('"""')
    return "\n".join(lines)


TAP_PRELUDE = '''
TAPS: dict[str, torch.Tensor] = {}


def _tap(name: str, tensor: torch.Tensor) -> None:
    TAPS[name] = tensor.detach().clone()  # later in-place ops must not change it
'''


def render_module(
    graph: Graph, builder: ModuleBuilder, class_name: str, source_name: str, taps: dict[int, str] | None = None
) -> str:
    """The text of model.py. `taps` (value id -> key) is for layer-by-layer verification only:
    the same code with a `_tap(key, tensor)` call after the statement that computes each value."""
    out: list[str] = [docstring(graph, builder, class_name, source_name)]
    imports = sorted(i for i in builder.imports if i.startswith("import "))
    from_imports = sorted(i for i in builder.imports if i.startswith("from "))
    # One third-party block, `import` lines before `from` lines: what isort / ruff's I001 expect.
    out += ["from pathlib import Path", ""] + imports + from_imports + ["", ""]
    for helper in builder.helpers.values():
        out += [helper.strip("\n"), "", ""]
    if taps:
        out += [TAP_PRELUDE.strip("\n"), "", ""]

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
    out += ["", f"{INDENT}def forward(self, {args}) -> {returns}:"]
    for st in builder.statements:
        if st.comment:
            out += [f"{INDENT * 2}# {line}" for line in st.comment.splitlines()]
        out.append(f"{INDENT * 2}{', '.join(st.targets)} {st.operator} {st.expr}")
        for value in st.values if taps else ():
            if id(value) in taps:
                out.append(f'{INDENT * 2}_tap("{taps[id(value)]}", {builder.var(value)})')
    out.append(f"{INDENT * 2}return {', '.join(builder.var(v) for v in graph.outputs)}")
    for method in builder.methods.values():
        out += [""] + [f"{INDENT}{line}" if line else "" for line in method.strip("\n").splitlines()]
    out += [
        "",
        "",
        f"def load_model(weights_path: str | Path | None = None) -> {class_name}:",
        f'{INDENT}"""Build the model and load its weights (strict: every tensor must match).',
        "",
        f"{INDENT}By default the weights are the model.safetensors next to this file.",
        f'{INDENT}"""',
        f"{INDENT}from safetensors.torch import load_file",
        "",
        f"{INDENT}if weights_path is None:",
        f'{INDENT * 2}weights_path = Path(__file__).with_name("model.safetensors")',
        f"{INDENT}model = {class_name}()",
        f"{INDENT}model.load_state_dict(load_file(str(weights_path)), strict=True)",
        f"{INDENT}return model",
        "",
    ]
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

"""custom: a user-registered torch module, imported by the generated code from its path."""

from __future__ import annotations

import numpy as np

from tf2torch.codegen.literals import call
from tf2torch.codegen.program import ModuleBuilder
from tf2torch.converters.registry import register_converter
from tf2torch.ir import Node


@register_converter("custom")
def convert_custom(node: Node, b: ModuleBuilder) -> None:
    cls = node.attrs["module_class"]
    b.imports.add(f"from {cls.__module__} import {cls.__qualname__.split('.')[0]}")
    state = {k: np.ascontiguousarray(p.array) for k, p in node.params.items()}
    mod = b.submodule(node, call(cls.__qualname__, **node.attrs["kwargs"]), state)
    args = ", ".join(b.var(v) for v in node.inputs)
    b.emit(node.outputs, f"{mod}({args})")

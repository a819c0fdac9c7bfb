"""All naming in one place: unique identifiers that never shadow builtins or keywords."""

from __future__ import annotations

import builtins
import keyword
import re

RESERVED = set(keyword.kwlist) | set(dir(builtins)) | {"self", "torch", "nn", "F", "math"}
# nn.Module attributes a submodule name must not shadow.
MODULE_RESERVED = {
    "training", "forward", "train", "eval", "modules", "parameters", "buffers", "children",
    "state_dict", "load_state_dict", "to", "cuda", "cpu", "float", "double", "half", "type",
    "apply", "zero_grad", "register_buffer", "extra_repr", "named_modules", "requires_grad_",
}


def identifier(name: str) -> str:
    """A Python identifier from a Keras name: 'block1/conv-2' -> 'block1_conv_2'."""
    ident = re.sub(r"\W+", "_", name).strip("_") or "t"
    if ident[0].isdigit():
        ident = "l_" + ident
    return ident


def class_name(name: str) -> str:
    """'small_cnn' -> 'SmallCnn'."""
    parts = [p for p in re.split(r"[^0-9a-zA-Z]+", name) if p]
    ident = "".join(p[:1].upper() + p[1:] for p in parts) or "Model"
    if ident[0].isdigit() or ident in RESERVED or ident == "Path":
        return "Model" + ident  # e.g. a file named f.pb must not shadow the F alias
    return ident


class NameScope:
    """Hands out unique names, appending _1, _2, ... on clashes."""

    def __init__(self, reserved: set[str] | None = None) -> None:
        self._taken = set(reserved or ())

    def unique(self, base: str) -> str:
        base = identifier(base)
        if base in RESERVED:
            base += "_"
        name, n = base, 1
        while name in self._taken:
            name = f"{base}_{n}"
            n += 1
        self._taken.add(name)
        return name

    def reserve(self, name: str) -> None:
        self._taken.add(name)

    def __contains__(self, name: str) -> bool:
        return name in self._taken

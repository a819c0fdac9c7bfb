"""Render Python literals and calls for generated code."""

from __future__ import annotations

from typing import Any

import numpy as np


def literal(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()  # numpy scalars would print as np.float64(...)
    if isinstance(value, float):
        return repr(value)  # shortest text that round-trips exactly
    if isinstance(value, complex):  # repr's "(2+1j)" would be parenthesised twice in an expression
        return repr(value.real) if value.imag == 0 else f"complex({value.real!r}, {value.imag!r})"
    if isinstance(value, tuple):
        if len(value) == 1:
            return f"({literal(value[0])},)"
        return "(" + ", ".join(literal(v) for v in value) + ")"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def compact(values: tuple[int, ...]) -> int | tuple[int, ...]:
    """(3, 3) -> 3, as a person would write kernel_size=3."""
    return values[0] if len(set(values)) == 1 else values


def call(fn: str, *args: Any, **kwargs: Any) -> str:
    parts = [a if isinstance(a, RawCode) else literal(a) for a in args]
    parts += [f"{k}={v if isinstance(v, RawCode) else literal(v)}" for k, v in kwargs.items()]
    return f"{fn}({', '.join(parts)})"


class RawCode(str):
    """A string that is code, not a string literal."""

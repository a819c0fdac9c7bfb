"""The names a line of generated code reads and writes, and renaming them (token-exact).

Generated statements are short Python expressions. A structured model.py moves some of them
into block classes, where variables and submodule attributes get local names; the text is
rewritten token by token so that everything else (literals, spacing) stays as the converter
wrote it.
"""

from __future__ import annotations

import io
import tokenize
from functools import lru_cache


@lru_cache(maxsize=4096)  # the same statements come back many times (every block has `F.relu(x)`)
def _tokens(code: str) -> tuple[tokenize.TokenInfo, ...]:
    return tuple(t for t in tokenize.generate_tokens(io.StringIO(code).readline)
                 if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER))


def _roles(tokens: tuple[tokenize.TokenInfo, ...]) -> list[str]:
    """Per token: "attr" (after `self.`), "member" (after any other `.`), "kwarg" (a keyword
    argument's name), "name" (a free name) or "" (not a name)."""
    roles = []
    for i, tok in enumerate(tokens):
        if tok.type != tokenize.NAME:
            roles.append("")
            continue
        before = tokens[i - 1].string if i > 0 else ""
        after = tokens[i + 1].string if i + 1 < len(tokens) else ""
        if before == ".":
            roles.append("attr" if i >= 2 and tokens[i - 2].string == "self" and roles[i - 2] == "name" else "member")
        elif after == "=":
            roles.append("kwarg")
        else:
            roles.append("name")
    return roles


def free_names(code: str) -> list[str]:
    """Names read or written that are not attributes or keyword-argument names."""
    tokens = _tokens(code)
    return [t.string for t, role in zip(tokens, _roles(tokens)) if role == "name"]


def self_attributes(code: str) -> list[str]:
    """The X of every `self.X` in `code`."""
    tokens = _tokens(code)
    return [t.string for t, role in zip(tokens, _roles(tokens)) if role == "attr"]


def rename(code: str, names: dict[str, str], attrs: dict[str, str]) -> str:
    """`code` with free names renamed by `names` and `self.X` by `attrs` (others unchanged)."""
    tokens = _tokens(code)
    lines = code.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    out, position = [], 0
    for tok, role in zip(tokens, _roles(tokens)):
        table = names if role == "name" else attrs if role == "attr" else None
        if table is None or tok.string not in table:
            continue
        begin = starts[tok.start[0] - 1] + tok.start[1]
        out.append(code[position:begin] + table[tok.string])
        position = begin + len(tok.string)
    return "".join(out) + code[position:]


def numbers(code: str) -> list[str]:
    """The number literals of `code`, in order."""
    return [t.string for t in _tokens(code) if t.type == tokenize.NUMBER]


def number_callers(code: str) -> list[str]:
    """For each number literal of `code`, the name of the innermost call it is an argument
    of (`F.pad(x, (0, 1))` -> "pad" twice; "" outside any call)."""
    callers, stack = [], []
    tokens = _tokens(code)
    for i, tok in enumerate(tokens):
        if tok.string in "([{" and tok.type == tokenize.OP:
            before = tokens[i - 1] if i > 0 else None
            stack.append(before.string if tok.string == "(" and before is not None and before.type == tokenize.NAME
                         else None)
        elif tok.string in ")]}" and tok.type == tokenize.OP and stack:
            stack.pop()
        elif tok.type == tokenize.NUMBER:
            callers.append(next((name for name in reversed(stack) if name), ""))
    return callers


def replace_numbers(code: str, replacements: dict[int, str]) -> str:
    """`code` with its `n`-th number literal replaced by `replacements[n]`."""
    lines = code.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    out, position = [], 0
    found = [t for t in _tokens(code) if t.type == tokenize.NUMBER]
    for n, tok in enumerate(found):
        if n not in replacements:
            continue
        begin = starts[tok.start[0] - 1] + tok.start[1]
        out.append(code[position:begin] + replacements[n])
        position = begin + len(tok.string)
    return "".join(out) + code[position:]

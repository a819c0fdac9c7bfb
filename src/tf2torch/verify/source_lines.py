"""Which lines of model.py compute each Keras layer (for the verification report).

The tapped source (codegen.render with `taps`) is model.py plus the tap prelude and one
`value = _tap("layer:i", value)` line after each layer's output; the forward lines since the
previous tap, and the `__init__` lines of the submodules they call, are that layer's code.
Line numbers are model.py's own: tapped lines are aligned with the real source.
"""

from __future__ import annotations

import difflib
import re

_TAP = re.compile(r'^\s+(\w+) = _tap\("(?P<key>[^"]+)", \1\)$')
_SELF_ATTR = re.compile(r"self\.(\w+)")


def _real_numbers(tapped: list[str], real: list[str]) -> list[int | None]:
    """For each tapped line, its 1-based line number in model.py (None: a verification-only
    line, such as a tap or the prelude)."""
    numbers: list[int | None] = [None] * len(tapped)
    matcher = difflib.SequenceMatcher(None, tapped, real, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            numbers[block.a + k] = block.b + k + 1
    return numbers


def layer_lines(tapped_source: str, model_source: str) -> dict[str, list[tuple[int, str]]]:
    """Keras layer name -> [(model.py line number, text)] in line order."""
    tapped = tapped_source.splitlines()
    numbers = _real_numbers(tapped, model_source.splitlines())
    init: dict[str, list[tuple[int, str]]] = {}
    pending_comments: list[tuple[int, str]] = []
    layers: dict[str, list[tuple[int, str]]] = {}
    pending: list[tuple[int, str]] = []
    section = None
    for line, number in zip(tapped, numbers):
        if line.startswith("    def "):
            section = "init" if line.startswith("    def __init__") else ("forward" if line.startswith("    def forward") else None)
            continue
        if line and not line.startswith(" "):
            section = None
        tap = _TAP.match(line)
        if section == "forward" and tap:
            name = tap.group("key").rsplit(":", 1)[0]
            attrs = {a for _, text in pending for a in _SELF_ATTR.findall(text)}
            own = [entry for a in sorted(attrs) for entry in init.get(a, [])]
            layers.setdefault(name, [])
            layers[name] = sorted(set(layers[name] + own + pending))
            pending = []
        elif number is None or not line.strip():
            continue
        elif section == "init":
            stripped = line.strip()
            if stripped.startswith("#"):
                pending_comments.append((number, line))
                continue
            match = re.match(r"self\.(\w+)", stripped)
            if match:
                init.setdefault(match.group(1), []).extend(pending_comments + [(number, line)])
            pending_comments = []
        elif section == "forward" and not line.strip().startswith("return "):
            pending.append((number, line))
    return layers

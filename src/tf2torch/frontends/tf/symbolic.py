"""Arithmetic on run-time dimensions (`Sym`: an int, a `Dim`, an `Item` or a `DimExpr`).

Integer shape values (`tf.shape(x)`, `tf.size(x)`, products, slices, sums of them) stay
symbolic through the import, simplified as they are built (`1 * d -> d`, `2 * 3 -> 6`), so
that `forward` reads `x.shape[1]` and arithmetic on it, and a converted module keeps a
dynamic batch and sequence length (`torch.export` with `Dim`s).

Float arithmetic on sizes is not kept here: a size cast to float becomes a float32 tensor, so
that it rounds as TensorFlow's float32 does.

In IR attributes a Sym is encoded as an int / float, `("dim", input_index, source_axis)`,
`("item", input_index)` (`int(t)`) or `("fn", name, (args...))`; the converters render it
with `converters.tf_ops.sym_text`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

from tf2torch.frontends.tf.values import Dim, DimExpr, Item, Sym

PYTHON_FNS: dict[str, Callable] = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "floordiv": operator.floordiv,
    "mod": operator.mod, "div": operator.truediv, "maximum": max, "minimum": min,
}


def is_number(s: Sym) -> bool:
    return isinstance(s, (int, float)) and not isinstance(s, bool)


def sym_binary(fn: str, a: Sym, b: Sym) -> Sym | None:
    """`a <fn> b` simplified; None if `fn` is not shape arithmetic."""
    if fn not in PYTHON_FNS:
        return None
    if is_number(a) and is_number(b):
        if fn in ("floordiv", "mod", "div") and b == 0:
            return None  # TF raises (or gives inf) at run time: leave it to the tensor path
        return PYTHON_FNS[fn](a, b)
    if fn == "add" and a == 0 or fn == "mul" and a == 1:
        return b
    if fn in ("add", "sub") and b == 0 or fn in ("mul", "floordiv", "div") and b == 1:
        return a
    if fn == "mul" and (a == 0 or b == 0):
        return 0
    if fn in ("maximum", "minimum") and sym_equal(a, b):
        return a
    if fn == "floordiv" and not isinstance(b, DimExpr):
        factors = _product_terms(a)
        if b in factors:  # (n * s * 3) // n -> s * 3
            factors.remove(b)
            return sym_product(factors)
    return DimExpr(fn, (a, b))


def _product_terms(s: Sym) -> list[Sym]:
    if isinstance(s, DimExpr) and s.fn == "mul":
        return [t for arg in s.args for t in _product_terms(arg)]
    return [s]


def sym_product(items: list[Sym]) -> Sym:
    out: Sym = 1
    for item in items:
        out = sym_binary("mul", out, item)
    return out


def _factors(s: Sym) -> tuple[float, list[str]] | None:
    """A product as (constant, sorted dimension keys), for comparing products in any order."""
    if is_number(s):
        return float(s), []
    if isinstance(s, Dim):
        return 1.0, [f"{id(s.value)}:{s.axis}"]
    if isinstance(s, Item):
        return 1.0, [f"{id(s.value)}:item"]
    if s.fn != "mul":
        return None
    const, keys = 1.0, []
    for arg in s.args:
        part = _factors(arg)
        if part is None:
            return None
        const *= part[0]
        keys += part[1]
    return const, sorted(keys)


def sym_equal(a: Sym, b: Sym) -> bool:
    """True when `a` and `b` are the same dimension whatever the input sizes."""
    if a == b:
        return True
    fa, fb = _factors(a), _factors(b)
    return fa is not None and fa == fb


def is_nonnegative(s: Sym) -> bool:
    """Whether `s` is >= 0 whatever the run-time sizes (False where that is not provable)."""
    if is_number(s):
        return s >= 0
    if isinstance(s, Dim):
        return True
    if isinstance(s, DimExpr):
        signs = [is_nonnegative(a) for a in s.args]
        return any(signs) if s.fn == "maximum" else s.fn in ("add", "mul", "floordiv", "minimum") and all(signs)
    return False


def static_size(s: Sym) -> int | None:
    return int(s) if is_number(s) and float(s).is_integer() else None


def broadcast_dims(a: list[Sym], b: list[Sym]) -> list[Sym]:
    """The broadcast shape of two shape vectors (TF BroadcastArgs), as far as it is known."""
    n = max(len(a), len(b))
    a = [1] * (n - len(a)) + list(a)
    b = [1] * (n - len(b)) + list(b)
    out: list[Sym] = []
    for x, y in zip(a, b):
        if x == 1:
            out.append(y)
        elif y == 1 or sym_equal(x, y):
            out.append(x)
        else:
            out.append(sym_binary("maximum", x, y))  # one of them is 1 at run time, or both agree
    return out

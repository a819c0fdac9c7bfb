"""A runtime function with some arguments fixed: the branches those arguments rule out removed.

train.py copies Keras' loss and metric functions from the training runtime; a model compiled
with `sparse_categorical_crossentropy` on probabilities should not carry the `from_logits`
and `ignore_class` branches. `specialize()` folds the `if` statements and conditional
expressions whose test only depends on fixed arguments, drops the parameters no longer used
and makes the fixed value the default of those still used (so `huber(y, y_pred)` has
`delta=` as compiled).
"""

from __future__ import annotations

import ast
from typing import Any


class _Fold(ast.NodeTransformer):
    def __init__(self, constants: dict[str, Any]) -> None:
        self.constants = constants

    def _value(self, test: ast.expr) -> tuple[bool, Any]:
        names = {n.id for n in ast.walk(test) if isinstance(n, ast.Name)}
        if not names or not names <= set(self.constants):
            return False, None
        try:
            code = compile(ast.Expression(test), "<test>", "eval")
            return True, eval(code, {"__builtins__": {}}, dict(self.constants))  # the test's names are literals
        except Exception:  # noqa: BLE001 (a test that needs more than the constants stays)
            return False, None

    def visit_If(self, node: ast.If) -> Any:
        known, value = self._value(node.test)
        if not known:
            return self.generic_visit(node)
        chosen = []
        for statement in node.body if value else node.orelse:
            result = self.visit(statement)
            chosen += result if isinstance(result, list) else [] if result is None else [result]
        return chosen or None

    def visit_IfExp(self, node: ast.IfExp) -> Any:
        known, value = self._value(node.test)
        if not known:
            return self.generic_visit(node)
        return self.visit(node.body if value else node.orelse)


def _cut_after_return(node: ast.AST) -> None:
    """Statements after a `return` at the same level (left by a folded `if True: return`)."""
    for child in ast.walk(node):
        for field in ("body", "orelse"):
            statements = getattr(child, field, None)
            if isinstance(statements, list):
                for i, statement in enumerate(statements):
                    if isinstance(statement, ast.Return):
                        del statements[i + 1 :]
                        break


def _loaded(function: ast.FunctionDef) -> set[str]:
    return {n.id for n in ast.walk(function) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _literal_locals(function: ast.FunctionDef) -> dict[str, Any]:
    """Local names the body sets once, at its top level, to a literal (`valid = None` whose other
    assignment went with a folded branch)."""
    stores: dict[str, int] = {}
    for node in ast.walk(function):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            stores[node.id] = stores.get(node.id, 0) + 1
    found = {}
    for statement in function.body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1 \
                and isinstance(statement.targets[0], ast.Name) and isinstance(statement.value, ast.Constant):
            name = statement.targets[0].id
            if stores.get(name) == 1:
                found[name] = statement.value.value
    return found


def specialize(source: str, kwargs: dict[str, Any], keep: int = 2) -> str:
    """`source` (one function) with every parameter after the first `keep` fixed to `kwargs`
    or its default. Parameters the body reassigns stay parameters (their value as default)."""
    function = ast.parse(source).body[0]
    assert isinstance(function, ast.FunctionDef)
    args = function.args
    defaults = dict(zip([a.arg for a in args.args][len(args.args) - len(args.defaults):], args.defaults))
    values = {a.arg: kwargs[a.arg] if a.arg in kwargs else ast.literal_eval(defaults[a.arg])
              for a in args.args[keep:] if a.arg in kwargs or a.arg in defaults}
    stored = {n.id for n in ast.walk(function) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    constants = {k: v for k, v in values.items() if k not in stored}
    local_literals: dict[str, Any] = {}
    while True:
        function = _Fold(constants).visit(function)
        _cut_after_return(function)
        found = {k: v for k, v in _literal_locals(function).items() if k not in constants}
        if not found:
            break
        constants.update(found)
        local_literals.update(found)
    used = _loaded(function)
    function.body = [s for s in function.body if not (
        isinstance(s, ast.Assign) and isinstance(s.targets[0], ast.Name) and s.targets[0].id in local_literals
        and s.targets[0].id not in used)]
    kept = [a for a in args.args if a.arg not in values or a.arg in used]
    kept_defaults = [ast.parse(repr(values[a.arg]), mode="eval").body if a.arg in values else defaults[a.arg]
                     for a in kept if a.arg in values or a.arg in defaults]
    function.args = ast.arguments(posonlyargs=[], args=kept, vararg=None, kwonlyargs=[], kw_defaults=[],
                                  kwarg=None, defaults=kept_defaults)
    return ast.unparse(ast.fix_missing_locations(function))

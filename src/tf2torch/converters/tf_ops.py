"""Converters for the ops of the op-level TensorFlow frontend (tf_*), and the generated
classes for sub-graphs: While loops, If branches and traced custom Keras layers."""

from __future__ import annotations

import re

import numpy as np

from tf2torch.codegen.literals import call, literal
from tf2torch.codegen.naming import class_name as make_class_name
from tf2torch.codegen.program import ModuleBuilder
from tf2torch.codegen.render import INDENT, blank_unread_targets
from tf2torch.converters.conv import torch_pad_list
from tf2torch.converters.registry import CONVERTERS, register_converter
from tf2torch.ir import Graph, Node, SourceRef, Value

VARIABLE_HELPER = '''
class Variable(nn.Module):
    """A TensorFlow variable (or constant) used directly in the computation: a parameter,
    or a buffer when TensorFlow does not train it."""

    def __init__(self, shape: tuple[int, ...], trainable: bool = True, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if trainable:
            self.value = nn.Parameter(torch.zeros(shape, dtype=dtype))
        else:
            self.register_buffer("value", torch.zeros(shape, dtype=dtype))
'''

TORCH_DTYPES = {
    "float32": "torch.float32", "float64": "torch.float64", "float16": "torch.float16", "int32": "torch.int32",
    "int64": "torch.int64", "int8": "torch.int8", "uint8": "torch.uint8", "bool": "torch.bool", "int16": "torch.int16",
    "complex64": "torch.complex64", "complex128": "torch.complex128",
}

UNARY = {
    "sin": "torch.sin({})", "cos": "torch.cos({})", "tan": "torch.tan({})", "asin": "torch.asin({})",
    "acos": "torch.acos({})", "atan": "torch.atan({})", "sinh": "torch.sinh({})", "cosh": "torch.cosh({})",
    "asinh": "torch.asinh({})", "acosh": "torch.acosh({})", "atanh": "torch.atanh({})", "exp": "torch.exp({})",
    "expm1": "torch.expm1({})", "log": "torch.log({})", "log1p": "torch.log1p({})", "sqrt": "torch.sqrt({})",
    "rsqrt": "torch.rsqrt({})", "square": "torch.square({})", "abs": "torch.abs({})", "neg": "-{}",
    "sign": "torch.sign({})", "floor": "torch.floor({})", "ceil": "torch.ceil({})", "round": "torch.round({})",
    "reciprocal": "torch.reciprocal({})", "erf": "torch.erf({})", "erfc": "torch.erfc({})", "erfinv": "torch.erfinv({})", "det": "torch.linalg.det({})",
    "logical_not": "torch.logical_not({})", "isnan": "torch.isnan({})", "isinf": "torch.isinf({})",
    "isfinite": "torch.isfinite({})", "sigmoid": "torch.sigmoid({})", "tanh": "torch.tanh({})", "relu": "torch.relu({})", "zeros_like": "torch.zeros_like({})", "ones_like": "torch.ones_like({})",
    "real": "torch.real({})", "imag": "torch.imag({})", "angle": "torch.angle({})",
}
INFIX = {
    "add": "+", "sub": "-", "mul": "*", "div": "/", "floordiv": "//", "mod": "%", "pow": "**", "lt": "<",
    "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!=", "logical_and": "&", "logical_or": "|",
}


def _paren(expr: str) -> str:
    simple = (expr.replace(".", "").replace("_", "").isalnum() or expr.startswith("torch.") and expr.endswith(")")
              or re.fullmatch(r"\w+\.shape\[\d+\]|\d[\d.e+-]*", expr) is not None)
    return expr if simple or expr.startswith("self.") and " " not in expr else f"({expr})"


def binary_expr(fn: str, a: str, b: str, a_scalar: bool = False, b_scalar: bool = False) -> str:
    if fn in INFIX:
        return f"{_paren(a)} {INFIX[fn]} {_paren(b)}"
    if fn in ("maximum", "minimum"):
        bound = "min" if fn == "maximum" else "max"
        if b_scalar:
            return f"torch.clamp({a}, {bound}={b})"
        if a_scalar:
            return f"torch.clamp({b}, {bound}={a})"
        return f"torch.{fn}({a}, {b})"
    if fn == "atan2":
        return f"torch.atan2({a}, {b})"
    if fn == "squared_difference":
        return f"torch.square({_paren(a)} - {_paren(b)})"
    if fn == "div_no_nan":
        return f"torch.where({_paren(b)} == 0, 0.0, {_paren(a)} / {_paren(b)})"
    raise KeyError(fn)


# -- operands ------------------------------------------------------------------------------


def _variable(node: Node, key: str, b: ModuleBuilder, rank: int | None, perm: tuple[int, ...] | None) -> str:
    """`self.<variable>.value`, stored offline in the shape it broadcasts with in torch."""
    param = node.params[key]
    name = node.attrs["var_names"][key]
    array = np.asarray(param.array)
    if rank is not None and array.ndim <= rank and array.ndim > 0:
        array = array.reshape((1,) * (rank - array.ndim) + array.shape)
        if perm is not None:
            array = array.transpose(perm)
        while array.ndim > 1 and array.shape[0] == 1:
            array = array[0]
    if array.dtype.kind == "f":
        array = array.astype(np.float32)
    elif array.dtype.kind in "iu":
        array = array.astype(np.int64)
    b.helper("Variable", VARIABLE_HELPER)
    kwargs: dict = {}
    if not param.trainable:
        kwargs["trainable"] = False
    if array.dtype != np.float32:
        from tf2torch.codegen.literals import RawCode

        kwargs["dtype"] = RawCode(TORCH_DTYPES[array.dtype.name])
    holder = Node("tf_variable", [], [], SourceRef("tf", "Variable", name))
    shapes = b.__dict__.setdefault("_tf_variable_shapes", {})
    ref = b.submodule(holder, call("Variable", tuple(int(d) for d in array.shape), **kwargs),
                      {"value": np.ascontiguousarray(array)})
    stored = shapes.setdefault(ref, array.shape)
    if stored != array.shape:
        return f"{ref}.value.reshape({', '.join(str(d) for d in array.shape) or '()'})"
    return f"{ref}.value"


def _tree(node: Node, tree: tuple, b: ModuleBuilder, rank: int | None, perm) -> str:
    kind = tree[0]
    if kind == "scalar":
        return literal(tree[1])
    if kind == "param":
        return _variable(node, tree[1], b, rank, perm)
    fn, args = tree[1], [_tree(node, a, b, rank, perm) for a in tree[2]]
    if len(args) == 1:
        return UNARY[fn].format(_paren(args[0]) if fn == "neg" else args[0])
    return binary_expr(fn, args[0], args[1], tree[2][0][0] == "scalar", tree[2][1][0] == "scalar")


SYM_INFIX = {"add": "+", "sub": "-", "mul": "*", "floordiv": "//", "mod": "%", "div": "/"}


def sym_text(node: Node, sym: object, b: ModuleBuilder) -> str:
    """A (run-time) size: `7`, `x.shape[1]`, `x.shape[0] * x.shape[1]` (frontends/tf/symbolic.py)."""
    if not isinstance(sym, tuple):
        return literal(sym)
    if sym[0] == "dim":
        value = node.inputs[sym[1]]
        return f"{b.var(value)}.shape[{value.torch_axis(sym[2])}]"
    if sym[0] == "item":
        return f"int({b.var(node.inputs[sym[1]])})"
    fn, args = sym[1], [sym_text(node, a, b) for a in sym[2]]
    if fn in ("maximum", "minimum"):
        return f"{fn[:3]}({args[0]}, {args[1]})"
    parts = []
    for i, (arg, text) in enumerate(zip(sym[2], args)):
        same = isinstance(arg, tuple) and arg[0] == "fn" and arg[1] == fn and fn in ("add", "mul") and i == 0
        nested = isinstance(arg, tuple) and arg[0] == "fn" and arg[1] not in ("maximum", "minimum")
        negative = not isinstance(arg, tuple) and arg < 0
        parts.append(f"({text})" if (nested and not same) or negative else text)
    return f" {SYM_INFIX[fn]} ".join(parts)


def operand(node: Node, op: tuple, b: ModuleBuilder, broadcast: bool = True) -> str:
    if op[0] == "value":
        return b.var(node.inputs[op[1]])
    if op[0] == "scalar":
        return literal(op[1])
    if op[0] == "sym":
        return sym_text(node, op[1], b)
    out = node.outputs[0]
    return _tree(node, op[1], b, out.rank if broadcast else None, out.perm if broadcast else None)


# -- elementwise ------------------------------------------------------------------------------


@register_converter("tf_unary")
def convert_tf_unary(node: Node, b: ModuleBuilder) -> None:
    fn = node.attrs["fn"]
    x = b.var(node.inputs[0])
    b.emit(node.outputs[0], UNARY[fn].format(_paren(x) if fn == "neg" else x))


@register_converter("tf_binary")
def convert_tf_binary(node: Node, b: ModuleBuilder) -> None:
    ops = node.attrs["operands"]
    a, c = (operand(node, op, b) for op in ops)
    scalar = [op[0] in ("scalar", "sym") for op in ops]
    b.emit(node.outputs[0], binary_expr(node.attrs["fn"], a, c, scalar[0], scalar[1]))


@register_converter("tf_nary")
def convert_tf_nary(node: Node, b: ModuleBuilder) -> None:
    args = [operand(node, op, b) for op in node.attrs["operands"]]
    fn = node.attrs["fn"]
    if fn == "sum":
        b.emit(node.outputs[0], " + ".join(args))
    elif fn == "where":
        b.emit(node.outputs[0], f"torch.where({args[0]}, {args[1]}, {args[2]})")
    else:
        b.emit(node.outputs[0], f"torch.clamp({args[0]}, {args[1]}, {args[2]})")


@register_converter("tf_cast")
def convert_tf_cast(node: Node, b: ModuleBuilder) -> None:
    x, dtype = b.var(node.inputs[0]), node.attrs["dtype"]
    if node.inputs[0].spec.dtype.startswith("complex") and not dtype.startswith("complex"):
        x = f"torch.real({x})"  # TF's cast keeps the real part (torch's would warn, then do the same)
    b.emit(node.outputs[0], f"{x}.to({TORCH_DTYPES[dtype]})")


def _dims(axes: tuple[int, ...]) -> str:
    return str(axes[0]) if len(axes) == 1 else str(tuple(axes))


@register_converter("tf_reduce", "tf_reduce_keep")
def convert_tf_reduce(node: Node, b: ModuleBuilder) -> None:
    x = node.inputs[0]
    axes = tuple(sorted(x.torch_axis(a) for a in node.attrs["axes"]))
    keep = ", keepdim=True" if node.attrs["keepdims"] else ""
    fn = node.attrs["fn"]
    if not axes:
        b.alias(node.outputs[0], x)
        return
    if fn == "prod" and len(axes) > 1:
        expr = b.var(x)
        for axis in sorted(axes, reverse=True):
            expr = f"torch.prod({expr}, dim={axis}{keep})"
        b.emit(node.outputs[0], expr)
        return
    b.emit(node.outputs[0], f"torch.{fn}({b.var(x)}, dim={_dims(axes)}{keep})")


# -- linear algebra ------------------------------------------------------------------------------


@register_converter("tf_matmul")
def convert_tf_matmul(node: Node, b: ModuleBuilder) -> None:
    a, c = (operand(node, op, b, broadcast=False) for op in node.attrs["operands"])
    if node.attrs["transpose_a"]:
        a = f"{_paren(a)}.mT"
    if node.attrs["transpose_b"]:
        c = f"{_paren(c)}.mT"
    b.emit(node.outputs[0], f"torch.matmul({a}, {c})")


@register_converter("tf_einsum")
def convert_tf_einsum(node: Node, b: ModuleBuilder) -> None:
    operands = node.attrs["operands"]
    args = [operand(node, op, b, broadcast=False) for op in operands]
    inputs, output = node.attrs["equation"].split("->")
    terms = inputs.split(",")
    for i, op in enumerate(operands):
        perm = node.inputs[op[1]].perm if op[0] == "value" else None
        if perm is None:
            continue
        if "..." in terms[i]:  # an ellipsis hides which letter is which axis: back to the source layout
            args[i] = f"{args[i]}.permute({', '.join(str(perm.index(a)) for a in range(len(perm)))})"
        else:  # a channels-first operand: its subscripts in torch's order
            terms[i] = "".join(terms[i][axis] for axis in perm)
    equation = literal(",".join(terms) + "->" + output)
    b.emit(node.outputs[0], f"torch.einsum({equation}, {', '.join(args)})")


@register_converter("tf_argmax")
def convert_tf_argmax(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    cast = ".int()" if a["dtype"] == "int32" else ""
    b.emit(node.outputs[0], f"torch.{a['fn']}({b.var(node.inputs[0])}, dim={a['axis']}){cast}")


@register_converter("tf_topk")
def convert_tf_topk(node: Node, b: ModuleBuilder) -> None:
    b.emit(node.outputs, f"torch.topk({b.var(node.inputs[0])}, {sym_text(node, node.attrs['k'], b)})")


@register_converter("tf_cumsum")
def convert_tf_cumsum(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    x = b.var(node.inputs[0])
    axis = a["axis"]
    src = f"{x}.flip({axis})" if a["reverse"] else x
    expr = f"torch.{a['fn']}({src}, dim={axis})"
    if a["exclusive"]:
        expr = f"{expr} - {src}" if a["fn"] == "cumsum" else f"{expr} / {src}"
    if a["reverse"]:
        expr = f"({expr}).flip({axis})"
    b.emit(node.outputs[0], expr)


# -- shapes and indexing ------------------------------------------------------------------------------


@register_converter("tf_transpose")
def convert_tf_transpose(node: Node, b: ModuleBuilder) -> None:
    x = node.inputs[0]
    dims = [x.torch_axis(d) for d in node.attrs["dims"]]  # composed with the input's layout
    if dims == list(range(x.rank)):
        b.alias(node.outputs[0], x)
        return
    b.emit(node.outputs[0], f"{b.var(x)}.permute({', '.join(map(str, dims))})")


@register_converter("tf_unsqueeze")
def convert_tf_unsqueeze(node: Node, b: ModuleBuilder) -> None:
    b.emit(node.outputs[0], f"{b.var(node.inputs[0])}.unsqueeze({node.attrs['axis']})")


@register_converter("tf_squeeze")
def convert_tf_squeeze(node: Node, b: ModuleBuilder) -> None:
    x = node.inputs[0]
    b.emit(node.outputs[0], f"{b.var(x)}.squeeze({_dims(tuple(sorted(x.torch_axis(d) for d in node.attrs['dims'])))})")


@register_converter("tf_stack")
def convert_tf_stack(node: Node, b: ModuleBuilder) -> None:
    names = ", ".join(b.var(v) for v in node.inputs)
    b.emit(node.outputs[0], f"torch.stack([{names}], dim={node.attrs['axis']})")


@register_converter("tf_unstack")
def convert_tf_unstack(node: Node, b: ModuleBuilder) -> None:
    b.emit(node.outputs, f"torch.unbind({b.var(node.inputs[0])}, dim={node.attrs['axis']})")


@register_converter("tf_split")
def convert_tf_split(node: Node, b: ModuleBuilder) -> None:
    sizes = list(node.attrs["sizes"])
    b.emit(node.outputs, f"torch.split({b.var(node.inputs[0])}, {sizes}, dim={node.attrs['axis']})")


def _symmetric_pad(node: Node, b: ModuleBuilder) -> None:
    """MirrorPad SYMMETRIC (the edge is repeated; F.pad has no such mode): per axis, the flipped
    edge slices concatenated around the tensor."""
    x = b.var(node.inputs[0])
    padded = [(axis, pair) for axis, pair in enumerate(node.attrs["pads"]) if pair != (0, 0)]
    for i, (axis, (before, after)) in enumerate(padded):
        lead = ":, " * axis
        parts = ([f"{x}[{lead}:{before}].flip({axis})"] if before else []) + [x]
        parts += [f"{x}[{lead}-{after}:].flip({axis})"] if after else []
        expr = f"torch.cat([{', '.join(parts)}], dim={axis})"
        if i == len(padded) - 1:
            b.emit(node.outputs[0], expr)
        else:
            x = b.temp(f"{node.source.name}_axis{axis}", expr)
    if not padded:
        b.alias(node.outputs[0], node.inputs[0])


@register_converter("tf_pad")
def convert_tf_pad(node: Node, b: ModuleBuilder) -> None:
    if node.attrs["mode"] == "symmetric":
        _symmetric_pad(node, b)
        return
    F = b.use_functional()
    a = node.attrs
    pads = list(a["pads"])
    while len(pads) > 1 and pads[0] == (0, 0):
        pads = pads[1:]  # F.pad lists the trailing dims only
    extra = "" if a["mode"] == "constant" and a["value"] == 0.0 else (
        f", value={literal(a['value'])}" if a["mode"] == "constant" else f', mode="{a["mode"]}"')
    b.emit(node.outputs[0], f"{F}.pad({b.var(node.inputs[0])}, {torch_pad_list(pads)}{extra})")


@register_converter("tf_one_hot")
def convert_tf_one_hot(node: Node, b: ModuleBuilder) -> None:
    F = b.use_functional()
    a = node.attrs
    expr = f"{F}.one_hot({b.var(node.inputs[0])}.long(), {a['depth']}).to({TORCH_DTYPES[a['dtype']]})"
    if (a["on"], a["off"]) != (1, 0):
        expr = f"{expr} * {literal(a['on'] - a['off'])} + {literal(a['off'])}"
    b.emit(node.outputs[0], expr)


@register_converter("tf_nonzero")
def convert_tf_nonzero(node: Node, b: ModuleBuilder) -> None:
    b.emit(node.outputs[0], f"torch.nonzero({b.var(node.inputs[0])})")


@register_converter("tf_resize")
def convert_tf_resize(node: Node, b: ModuleBuilder) -> None:
    F = b.use_functional()
    a = node.attrs
    size = tuple(a["size"])
    mode = {"bilinear": '"bilinear", align_corners=False', "bilinear_align": '"bilinear", align_corners=True',
            "nearest_half": '"nearest-exact"', "nearest": '"nearest"'}[a["mode"]]
    b.emit(node.outputs[0], f"{F}.interpolate({b.var(node.inputs[0])}, size={size}, mode={mode})")


# -- sub-graphs: loops, branches, traced layers --------------------------------------------


def _annotation(value: Value) -> str:
    # A TensorList (frontends/tf/ops/lists.py) is the tensor it was made from, or a Python list.
    return "torch.Tensor | list[torch.Tensor]" if value.spec.dtype == "variant" else "torch.Tensor"


def _signature(method: str, args: list[str], returns: str | None, types: list[str] | None = None) -> str:
    """`def method(self, a: torch.Tensor, ...) -> returns:`, wrapped when longer than 120 characters."""
    types = types or ["torch.Tensor"] * len(args)
    params = ", ".join(["self"] + [f"{a}: {t}" for a, t in zip(args, types)])
    tail = f" -> {returns}:" if returns else ":"
    line = f"{INDENT}def {method}({params}){tail}"
    if len(line) <= 120:
        return line
    return f"{INDENT}def {method}(\n{INDENT * 2}{params}\n{INDENT}){tail}"


def _class_for(node: Node, b: ModuleBuilder, kind: str, methods: list[tuple[str, Graph]], forward: list[str] | None,
               forward_args: list[str], doc: str, cls_name: str | None = None, forward_returns: str | None = None) -> str:
    """Write a helper class whose methods are the converted sub-graphs; return its ctor call."""
    sub: ModuleBuilder | None = None
    bodies: list[str] = []
    for method, g in methods:
        builder = ModuleBuilder(g)  # names per method; submodules, helpers and imports shared
        if sub is None:
            sub = builder
            sub.__dict__["_tf_variable_shapes"] = {}
        else:
            for attr in ("_attrs", "_by_key", "submodules", "helpers", "imports", "_tf_variable_shapes"):
                setattr(builder, attr, getattr(sub, attr))
        for inner in g.nodes:
            CONVERTERS[inner.op](inner, builder)
        outs = [builder.var(v) for v in g.outputs]
        out_types = [_annotation(v) for v in g.outputs]
        returns = out_types[0] if len(outs) == 1 else f"tuple[{', '.join(out_types)}]"
        lines = [_signature(method, [builder.var(v) for v in g.inputs], returns, [_annotation(v) for v in g.inputs])]
        result = f"return {', '.join(outs)}"
        for i, st in enumerate(builder.statements):
            if st.comment:
                lines += [f"{INDENT * 2}# {c}" for c in st.comment.splitlines()]
            targets = blank_unread_targets(st.targets, builder.statements[i + 1:], result)
            lines.append(f"{INDENT * 2}{', '.join(targets)} = {st.expr}")
        if len(outs) == 1 and len(lines) > 1 and lines[-1].startswith(f"{INDENT * 2}{outs[0]} = "):
            lines[-1] = f"{INDENT * 2}return " + lines[-1][len(f"{INDENT * 2}{outs[0]} = "):]
        else:
            lines.append(f"{INDENT * 2}return {', '.join(outs)}")
        bodies.append("\n".join(lines))
    assert sub is not None
    b.imports |= sub.imports
    for name, source in sub.helpers.items():
        b.helper(name, source)
    if cls_name is None:
        cls_name = make_class_name(node.source.name.split("/")[-1] + ("_" + kind if kind else ""))
    lines = [f'{INDENT}"""{doc}"""', "", f"{INDENT}def __init__(self) -> None:", f"{INDENT * 2}super().__init__()"]
    state: dict[str, np.ndarray] = {}
    for s in sub.submodules:
        if s.comment:
            lines += [f"{INDENT * 2}# {c}" for c in s.comment.splitlines()]
        lines.append(f"{INDENT * 2}self.{s.attr} = {s.ctor}")
        if s.frozen == ("*",):
            lines.append(f"{INDENT * 2}self.{s.attr}.requires_grad_(False)")
        else:
            lines += [f"{INDENT * 2}self.{s.attr}.{p}.requires_grad_(False)" for p in s.frozen]
        state.update({f"{s.attr}.{k}": v for k, v in s.state.items()})
    source = "\n".join(lines) + "\n\n" + "\n\n".join(bodies)
    if forward is not None:
        carried = [_annotation(v) for v in methods[-1][1].inputs]
        types = ["torch.Tensor"] * (len(forward_args) - len(carried)) + carried  # (pred,) + carried values
        source += "\n\n" + _signature("forward", forward_args, forward_returns, types) + "\n"
        source += "\n".join(f"{INDENT * 2}{line}" for line in forward)
    base, n = cls_name, 1
    while cls_name in b.helpers and b.helpers[cls_name] != f"class {cls_name}(nn.Module):\n{source}\n":
        cls_name = f"{base}{n}"  # another sub-graph of the same name: a class of its own
        n += 1
    b.helper(cls_name, f"class {cls_name}(nn.Module):\n{source}\n")
    return b.submodule(node, f"{cls_name}()", state)


@register_converter("tf_while")
def convert_tf_while(node: Node, b: ModuleBuilder) -> None:
    cond, body = node.attrs["cond"], node.attrs["body"]
    names = [f"v{i}" for i in range(len(body.inputs))]
    joined = ", ".join(names)
    forward = [f"while self.cond({joined}):", f"{INDENT}{joined} = self.body({joined})", f"return {joined}"]
    mod = _class_for(node, b, "loop", [("cond", cond), ("body", body)], forward, names,
                     "A TensorFlow while loop: `body` runs while `cond` holds.")
    args = []
    for i, item in enumerate(node.attrs["init"]):
        if item[0] == "value":
            args.append(b.var(node.inputs[item[1]]))
        else:
            args.append(b.temp(f"{node.source.name}_init{i}", f"torch.tensor({literal(item[1])}, dtype={TORCH_DTYPES[item[2]]})"))
    b.emit(node.outputs, f"{mod}({', '.join(args)})")


@register_converter("tf_if")
def convert_tf_if(node: Node, b: ModuleBuilder) -> None:
    then, other = node.attrs["then_branch"], node.attrs["else_branch"]
    names = [f"v{i}" for i in range(len(then.inputs))]
    joined = ", ".join(names)
    forward = ["if pred:", f"{INDENT}return self.then_branch({joined})", f"return self.else_branch({joined})"]
    mod = _class_for(node, b, "branches", [("then_branch", then), ("else_branch", other)], forward,
                     ["pred"] + names, "A TensorFlow conditional: `then_branch` if `pred` holds, else `else_branch`.")
    b.emit(node.outputs, f"{mod}({', '.join(b.var(v) for v in node.inputs)})")


@register_converter("tf_subgraph")
def convert_tf_subgraph(node: Node, b: ModuleBuilder) -> None:
    graph, train_graph = node.attrs["graph"], node.attrs.get("train_graph")
    doc = (node.attrs.get("description") or "").removesuffix(".") or (
        f"The custom Keras layer {node.attrs['class_name']}, converted from its traced call()")
    if train_graph is None:
        mod = _class_for(node, b, "", [("forward", graph)], None, [], doc + ".", cls_name=node.attrs["class_name"])
    else:
        # Both methods share the layer's parameters: training updates what inference uses.
        args = ", ".join(graph.input_names)
        forward = ["if self.training:", f"{INDENT}return self.forward_train({args})", f"return self.forward_eval({args})"]
        outs = [_annotation(v) for v in graph.outputs]
        returns = outs[0] if len(outs) == 1 else f"tuple[{', '.join(outs)}]"
        mod = _class_for(node, b, "", [("forward_eval", graph), ("forward_train", train_graph)], forward,
                         list(graph.input_names), doc + f",\n{INDENT}for inference (`forward_eval`) and for training (`forward_train`).",
                         cls_name=node.attrs["class_name"], forward_returns=returns)
    b.emit(node.outputs, f"{mod}({', '.join(b.var(v) for v in node.inputs)})")


def is_value(x: object) -> bool:
    return isinstance(x, Value)


@register_converter("tf_cross")
def convert_tf_cross(node: Node, b: ModuleBuilder) -> None:
    a, c = (operand(node, op, b, broadcast=False) for op in node.attrs["operands"])
    b.emit(node.outputs[0], f"torch.linalg.cross({a}, {c}, dim=-1)")


@register_converter("tf_search")
def convert_tf_search(node: Node, b: ModuleBuilder) -> None:
    """Bucketize (values first) and LowerBound / UpperBound (sorted rows first)."""
    values, sorted_ = (operand(node, op, b, broadcast=False) for op in node.attrs["operands"])
    kwargs = ", right=True" if node.attrs["right"] else ""
    if node.attrs.get("int32", True):
        kwargs += ", out_int32=True"
    if node.attrs["values_first"]:
        b.emit(node.outputs[0], f"torch.bucketize({values}, {sorted_}{kwargs})")
    else:
        b.emit(node.outputs[0], f"torch.searchsorted({sorted_}, {values}{kwargs})")


@register_converter("tf_sdpa")
def convert_tf_sdpa(node: Node, b: ModuleBuilder) -> None:
    F = b.use_functional()
    a = node.attrs
    q, k, v = (b.var(value) for value in node.inputs[:3])
    if not a["heads_first"]:  # (batch, steps, heads, depth): SDPA wants the heads before the steps
        q, k, v = (f"{t}.transpose(1, 2)" for t in (q, k, v))
    args = [q, k, v]
    if a["masked"]:
        args.append(f"attn_mask={b.var(node.inputs[3])}")
    if a["scale"] is not None:
        args.append(f"scale={literal(a['scale'])}")
    expr = f"{F}.scaled_dot_product_attention({', '.join(args)})"
    b.emit(node.outputs[0], expr if a["heads_first"] else f"{expr}.transpose(1, 2)")


@register_converter("tf_in_top_k")
def convert_tf_in_top_k(node: Node, b: ModuleBuilder) -> None:
    predictions, targets = (operand(node, op, b, broadcast=False) for op in node.attrs["operands"])
    target = b.temp(f"{node.source.name}_target", f"{_paren(predictions)}.gather(1, {_paren(targets)}.long()[:, None])")
    beaten = f"({_paren(predictions)} > {target}).sum(1) < {node.attrs['k']}"
    b.emit(node.outputs[0], f"({beaten}) & torch.isfinite({target}[:, 0])")

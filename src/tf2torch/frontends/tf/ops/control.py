"""Control flow: While / StatelessWhile become a loop, If / StatelessIf a branch, each in a
small generated nn.Module whose methods are the converted bodies."""

from __future__ import annotations

import numpy as np

from tf2torch.frontends.tf.context import OpContext, spec_of, static_array
from tf2torch.frontends.tf.registry import register_tf_op
from tf2torch.frontends.tf.subgraph import building, finish_subgraph, new_subgraph
from tf2torch.frontends.tf.values import ShapeVec, TFVal, VarRef
from tf2torch.ir import Graph, Value


def _body(ctx: OpContext, fname: str, args: list[TFVal], carried: list[int], specs: list, method: str) -> Graph:
    graph = new_subgraph(method, [(f"v{i}", specs[i]) for i in carried])
    bound: list[TFVal] = list(args)
    for value, i in zip(graph.inputs, carried):
        bound[i] = value
    with building(ctx.importer, graph):
        results = ctx.importer.import_function(fname, bound)
    graph.outputs = []
    for r in results:
        if isinstance(r, Value):
            graph.outputs.append(r)
        elif isinstance(r, (VarRef,)) or r is None:
            continue
        else:
            raise ctx.unsupported(f"a {method} returning a constant")
    return graph


@register_tf_op("While", "StatelessWhile")
def import_while(ctx: OpContext) -> list[TFVal]:
    # A run-time size carried into the loop (a Keras RNN's step count) is a tensor there.
    args = [_loop_operand(ctx, i, a) for i, a in enumerate(ctx.inputs)]
    carried = [i for i, a in enumerate(args) if not isinstance(a, VarRef)]
    specs = [spec_of(t) for t in ctx.op.outputs]
    cond = _body(ctx, ctx.op.get_attr("cond").name, args, carried, specs, "cond")
    body = _body(ctx, ctx.op.get_attr("body").name, args, carried, specs, "body")
    if len(cond.outputs) != 1 or len(body.outputs) != len(carried):
        raise ctx.unsupported("a loop whose body returns run-time values in place of loop-invariant ones")
    finish_subgraph(cond)
    finish_subgraph(body)
    inputs, init = [], []
    for i in carried:
        a = args[i]
        if isinstance(a, Value):
            init.append(("value", len(inputs)))
            inputs.append(a)
        else:
            arr = np.asarray(a)
            init.append(("const", arr.item() if arr.ndim == 0 else arr.tolist(), arr.dtype.name))
    node = ctx.add("tf_while", inputs, [specs[i] for i in carried], {"cond": cond, "body": body, "init": init})
    results: list[TFVal] = [a if isinstance(a, VarRef) else None for a in args]
    for out, i in zip(node.outputs, carried):
        results[i] = out
    return results


def _loop_operand(ctx: OpContext, index: int, arg: TFVal) -> TFVal:
    if isinstance(arg, ShapeVec):
        return static_array(arg) if arg.static else ctx.value(index)
    return arg


@register_tf_op("If", "StatelessIf")
def import_if(ctx: OpContext) -> list[TFVal]:
    pred = ctx.inputs[0]
    args = list(ctx.inputs[1:])
    if isinstance(pred, np.ndarray):  # decided at conversion time
        branch = "then_branch" if bool(pred) else "else_branch"
        return ctx.importer.import_function(ctx.op.get_attr(branch).name, args)
    carried = [i for i, a in enumerate(args) if isinstance(a, Value)]
    specs = [a.spec if isinstance(a, Value) else None for a in args]
    then = _body(ctx, ctx.op.get_attr("then_branch").name, args, carried, specs, "then_branch")
    other = _body(ctx, ctx.op.get_attr("else_branch").name, args, carried, specs, "else_branch")
    if len(then.outputs) != len(ctx.op.outputs) or len(other.outputs) != len(ctx.op.outputs):
        raise ctx.unsupported("a branch returning constants or variables")
    finish_subgraph(then)
    finish_subgraph(other)
    inputs = [ctx.value(0)] + [args[i] for i in carried]
    node = ctx.add("tf_if", inputs, attrs={"then_branch": then, "else_branch": other})
    return list(node.outputs)

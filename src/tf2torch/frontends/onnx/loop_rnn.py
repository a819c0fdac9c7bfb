"""tf2onnx's `Loop` for a Keras recurrent layer it did not rewrite into an ONNX LSTM / GRU / RNN op
(SimpleRNN, Keras 3 GRU), folded back into the IR's `rnn` node, the node the Keras frontend makes.

tf2onnx writes the layer's `while` loop as it is: carried (time, state(s), weights...), the step
input read by `Gather(sequence, time)` and one scan output, the new `h` of every step. The body is
recognised by role (which carried value is the clock, which the state, which weights feed a
MatMul with the step input or with the state), the cell kind read off the weight shapes, and the
recognised cell is then checked against the body itself: the body's cell nodes are run by onnx's
reference evaluator on random inputs and must agree with the Keras cell computed from the
extracted weights. Whatever does not match (masking, other activations, a loop that is not a
recurrent layer) is refused naming the node; generic loops are not executed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tf2torch.errors import UnsupportedFeature
from tf2torch.frontends.onnx.importer import Filled, OnnxContext, OnnxVal, ShapeVec
from tf2torch.frontends.onnx.registry import register_onnx_op
from tf2torch.ir import TensorSpec, Value

# ops a weight may go through before its MatMul (tf2onnx's gate splits of the recurrent kernel)
WEIGHT_VIEWS = {"Slice", "Split", "Squeeze", "Identity"}
# a cell's activation op -> the IR activation name
UNARY_ACTIVATIONS = {"Tanh": "tanh", "Relu": "relu", "Softsign": "softsign", "Elu": "elu", "Selu": "selu",
                     "Softplus": "softplus"}
GATE_SIGMOIDS = {"simple_rnn": 0, "gru": 2, "lstm": 3}  # sigmoids of the gates (recurrent_activation)
GATES = {1: "simple_rnn", 3: "gru", 4: "lstm"}
CHECK_TOLERANCE = 1e-5


@dataclass
class LoopBody:
    """The body graph of one Loop node, indexed: producer of each tensor, consumers of each tensor."""

    graph: Any
    producers: dict[str, Any] = field(default_factory=dict)
    consumers: dict[str, list] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for node in self.graph.node:
            for name in node.output:
                self.producers[name] = node
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def through_identity(self, name: str) -> str:
        while name in self.producers and self.producers[name].op_type == "Identity":
            name = self.producers[name].input[0]
        return name

    def slice_to(self, outputs: list[str], stops: set[str]) -> list:
        """The body nodes that compute `outputs` from `stops` (and leaves), in graph order."""
        needed, todo = set(), list(outputs)
        while todo:
            name = todo.pop()
            node = self.producers.get(name)
            if name in stops or node is None or id(node) in needed:
                continue
            needed.add(id(node))
            todo.extend(node.input)
        return [n for n in self.graph.node if id(n) in needed]


def _increments(body: LoopBody, inp: str, out: str) -> bool:
    """body output `out` is `inp + 1` (a counter)."""
    node = body.producers.get(body.through_identity(out))
    return node is not None and node.op_type == "Add" and inp in node.input


@register_onnx_op("Loop")
def import_loop(ctx: OnnxContext) -> list[OnnxVal]:
    body = LoopBody(ctx.attr("body"))
    refuse = _refusal(ctx)
    n_carried = len(ctx.node.input) - 2
    body_in = [i.name for i in body.graph.input]
    body_out = [o.name for o in body.graph.output]
    if len(body_in) != n_carried + 2 or len(body_out) - 1 - n_carried != 1:
        raise refuse("it has no single scan output (a Keras recurrent loop collects one: the states of all steps)")
    carried = [(body_in[2 + k], body_out[1 + k], ctx.inputs[2 + k]) for k in range(n_carried)]
    gathers = [n for n in body.graph.node if n.op_type == "Gather"]
    if len(gathers) > 1:
        raise refuse("it reads more than one sequence per step (a masked layer reads its mask too)")
    if not gathers or int(next((a.i for a in gathers[0].attribute if a.name == "axis"), 0)) != 0:
        raise refuse("it does not read one step per iteration (one Gather of the time-major sequence)")
    gather = gathers[0]
    time_in = gather.input[1]
    sequence = ctx.importer.env.get(gather.input[0])
    if not isinstance(sequence, Value) or sequence.rank != 3 or not isinstance(sequence.spec.shape[0], int):
        raise refuse("its step input is not a time-major [steps, batch, features] tensor with a static step count")
    steps = sequence.spec.shape[0]
    weights: dict[str, np.ndarray] = {}
    states, counters = [], []
    for k, (inp, out, initial) in enumerate(carried):
        if inp == out:
            if isinstance(initial, ShapeVec) and all(isinstance(i, int) for i in initial.items):
                initial = ctx.const(2 + k)  # tf_keras carries the (static) step count
            if not isinstance(initial, np.ndarray):
                raise refuse(f"carried value {k} passes through unchanged but is not a constant")
            weights[inp] = initial
        elif _increments(body, inp, out):
            counters.append(k)
        else:
            states.append(k)
    time = next((k for k in counters if carried[k][0] == time_in), None)
    if time is None or not isinstance(carried[time][2], np.ndarray) or np.any(carried[time][2] != 0):
        raise refuse("the step index is not a carried counter that starts at 0")
    floats = {name for name, array in weights.items() if array.dtype.kind == "f"}
    _check_runs_all_steps(ctx, body, refuse, steps, weights, floats | {carried[k][0] for k in states})
    scan = body.through_identity(body_out[-1])
    new_states = [body.through_identity(carried[k][1]) for k in states]
    if scan not in new_states:
        raise refuse("its scan output is not one of its carried states")
    if len(states) == 2 and new_states.index(scan) == 1:  # Keras' order: h, then c
        states.reverse()
        new_states.reverse()
    state_in = [carried[k][0] for k in states]
    cell_nodes = body.slice_to(new_states, {gather.output[0], *state_in, *weights})
    leaves = _leaves(ctx, body, cell_nodes, weights, {gather.output[0], *state_in}, refuse)
    cell = _recognise(body, cell_nodes, leaves, gather.output[0], len(states), refuse)
    cell["activation"] = _check_against_body(ctx, cell, cell_nodes, leaves, gather.output[0], state_in, new_states,
                                             refuse)
    initial_states = _initial_states([carried[k][2] for k in states], refuse)
    node = _rnn_node(ctx, sequence, cell, initial_states)
    outputs: list[OnnxVal] = []
    for k, (inp, _, initial) in enumerate(carried):
        if k in states:
            outputs.append(node.outputs[1 + states.index(k)])
        elif k in counters:  # a counter ends `steps` past its start (unknown: absent, read by nothing in Keras')
            outputs.append(initial + steps if isinstance(initial, np.ndarray) else None)
        else:
            outputs.append(weights[inp])
    seq = node.outputs[0]
    batch, units = seq.spec.shape[0], seq.spec.shape[2]
    time_major = ctx.add("tf_transpose", [seq], {"dims": (1, 0, 2)}, specs=[TensorSpec((steps, batch, units))])
    return outputs + [time_major.outputs[0]]


def _refusal(ctx: OnnxContext):
    def refuse(why: str) -> UnsupportedFeature:
        return UnsupportedFeature(
            f"{ctx.importer.file}: ONNX node {ctx.node.name or ctx.node.output[0]!r} (Loop) is not a Keras "
            f"SimpleRNN / GRU / LSTM loop as tf2onnx writes it: {why}. Only those loops are folded into "
            "recurrent modules (masked layers are not); convert the Keras model itself (tf2torch convert model.keras).")
    return refuse


def _check_runs_all_steps(ctx: OnnxContext, body: LoopBody, refuse, steps: int, weights: dict,
                          data: set[str]) -> None:
    """The loop's condition compares counters with constants no smaller than the step count, and
    its trip count (when given and constant) is no smaller: the loop visits every step."""
    trip = ctx.inputs[0]
    if isinstance(trip, np.ndarray) and int(trip) < steps:
        raise refuse(f"its trip count {int(trip)} is shorter than the {steps} steps")
    for node in body.slice_to([body.graph.output[0].name], set()):
        if node.op_type not in ("And", "Less", "Cast", "Add", "Identity", "Constant"):
            raise refuse(f"its condition uses {node.op_type}")
        if any(name in data for name in node.input):
            raise refuse("its condition reads the data it computes")
        if node.op_type == "Less":
            bound = _constant(ctx, body, weights, node.input[1])
            if bound is None or np.any(bound < steps):
                raise refuse("its condition may stop it before the last step")


def _constant(ctx: OnnxContext, body: LoopBody, weights: dict, name: str) -> np.ndarray | None:
    """The constant value of a body tensor (through Casts): a body constant, a carried constant or
    an initializer of the outer graph."""
    while name in body.producers and body.producers[name].op_type in ("Cast", "Identity"):
        name = body.producers[name].input[0]
    for value in (weights.get(name), _body_constant(body, name), ctx.importer.env.get(name)):
        if isinstance(value, np.ndarray):
            return value
    return None


def _body_constant(body: LoopBody, name: str) -> np.ndarray | None:
    from onnx import numpy_helper

    for tensor in body.graph.initializer:
        if tensor.name == name:
            return numpy_helper.to_array(tensor)
    node = body.producers.get(name)
    if node is not None and node.op_type == "Constant":
        return numpy_helper.to_array(node.attribute[0].t)
    return None


def _leaves(ctx: OnnxContext, body: LoopBody, nodes: list, weights: dict, inputs: set[str], refuse) -> dict:
    """Every tensor the cell nodes read that they do not compute: the weights and constants."""
    made = {name for node in nodes for name in node.output}
    leaves = {}
    for node in nodes:
        for name in node.input:
            if name in made or name in inputs or name == "" or name in leaves:
                continue
            value = weights.get(name)
            if value is None:
                value = _body_constant(body, name)
            if value is None:
                value = ctx.importer.env.get(name)
            if not isinstance(value, np.ndarray):
                raise refuse(f"its cell reads {name!r}, which is not a constant")
            leaves[name] = value
    return leaves


def _weight_matmuls(body: LoopBody, name: str) -> list:
    """MatMul nodes whose second operand is `name` or a slice / split of it."""
    found, todo = [], [name]
    while todo:
        tensor = todo.pop()
        for node in body.consumers.get(tensor, []):
            if node.op_type == "MatMul" and node.input[1] == tensor:
                found.append(node)
            elif node.op_type in WEIGHT_VIEWS and node.input[0] == tensor:
                todo.extend(node.output)
    return found


def _recognise(body: LoopBody, nodes: list, leaves: dict, x_t: str, n_states: int, refuse) -> dict:
    """Kernel, recurrent kernel and bias by role; the cell kind from their shapes."""
    kernel = recurrent = bias = None
    n_recurrent_matmuls = 0
    for name, array in leaves.items():
        if array.dtype.kind != "f" or array.size <= 1:
            continue  # scalars: the 1 in 1 - z, step increments
        matmuls = _weight_matmuls(body, name)
        if not matmuls:
            if bias is not None:
                raise refuse("it adds more than one bias")
            bias = array
        elif all(m.input[0] == x_t for m in matmuls):
            if kernel is not None:
                raise refuse("more than one weight multiplies the step input")
            kernel = array
        else:
            if recurrent is not None:
                raise refuse("more than one weight multiplies the state")
            recurrent, n_recurrent_matmuls = array, len(matmuls)
    if kernel is None or recurrent is None or kernel.ndim != 2 or recurrent.ndim != 2:
        raise refuse("no input kernel and recurrent kernel found")
    units = recurrent.shape[0]
    gates, rest = divmod(recurrent.shape[1], units)
    kind = GATES.get(gates) if not rest else None
    if kind is None or kernel.shape[1] != recurrent.shape[1] or n_states != (2 if kind == "lstm" else 1):
        raise refuse(f"kernel {kernel.shape} and recurrent kernel {recurrent.shape} with {n_states} states "
                     "are no Keras cell")
    reset_after = kind == "gru" and n_recurrent_matmuls == 1
    if bias is not None:
        expected = (2, gates * units) if reset_after else (gates * units,)
        if bias.shape != expected:
            raise refuse(f"bias {bias.shape} where the {kind} cell has {expected}")
    return {"kind": kind, "units": int(units), "kernel": kernel, "recurrent_kernel": recurrent, "bias": bias,
            "reset_after": reset_after, "activations": _activation_candidates(kind, nodes)}


def _activation_candidates(kind: str, nodes: list) -> list[str]:
    """The cell activations its ops allow, likeliest first (the check against the body decides):
    the one activation op beside the gates' sigmoids; with none, sigmoid or silu (x * sigmoid(x))
    when there are more sigmoids than gates, else linear."""
    found = {UNARY_ACTIVATIONS[n.op_type] for n in nodes if n.op_type in UNARY_ACTIVATIONS}
    if len(found) == 1:
        return list(found)
    if found:
        return []
    if sum(n.op_type == "Sigmoid" for n in nodes) > GATE_SIGMOIDS[kind]:
        return ["sigmoid", "silu"]
    return ["linear"]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


KERAS_ACTIVATIONS = {
    "tanh": np.tanh, "relu": lambda x: np.maximum(x, 0), "sigmoid": _sigmoid, "linear": lambda x: x,
    "softsign": lambda x: x / (1 + np.abs(x)), "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "selu": lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(np.minimum(x, 0))),
    "softplus": lambda x: np.logaddexp(0, x), "silu": lambda x: x * _sigmoid(x),
}


def keras_cell_step(cell: dict, x: np.ndarray, states: list[np.ndarray]) -> list[np.ndarray]:
    """One step of the Keras cell `cell` describes (float64): the new states."""
    kernel, recurrent, bias, units = cell["kernel"], cell["recurrent_kernel"], cell["bias"], cell["units"]
    h, act = states[0], KERAS_ACTIVATIONS[cell["activation"]]
    projected = x @ kernel
    if cell["kind"] == "simple_rnn":
        return [act(projected + (0 if bias is None else bias) + h @ recurrent)]
    if cell["kind"] == "lstm":
        i, f, c, o = np.split(projected + h @ recurrent + (0 if bias is None else bias), 4, axis=-1)
        c_new = _sigmoid(f) * states[1] + _sigmoid(i) * act(c)
        return [_sigmoid(o) * act(c_new), c_new]
    if cell["reset_after"]:
        x_part = projected + (0 if bias is None else bias[0])
        h_part = h @ recurrent + (0 if bias is None else bias[1])
        (x_z, x_r, x_h), (h_z, h_r, h_h) = np.split(x_part, 3, axis=-1), np.split(h_part, 3, axis=-1)
        z, r = _sigmoid(x_z + h_z), _sigmoid(x_r + h_r)
        candidate = act(x_h + r * h_h)
    else:
        x_z, x_r, x_h = np.split(projected + (0 if bias is None else bias), 3, axis=-1)
        z = _sigmoid(x_z + h @ recurrent[:, :units])
        r = _sigmoid(x_r + h @ recurrent[:, units:2 * units])
        candidate = act(x_h + (r * h) @ recurrent[:, 2 * units:])
    return [z * h + (1 - z) * candidate]


def _check_against_body(ctx: OnnxContext, cell: dict, nodes: list, leaves: dict, x_t: str, state_in: list[str],
                        new_states: list[str], refuse) -> str:
    """The body's own cell nodes (onnx's reference evaluator) agree with the recognised Keras cell
    for one of its candidate activations: that activation."""
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(0)
    feeds = {x_t: rng.uniform(-1, 1, (3, cell["kernel"].shape[0])).astype(np.float32)}
    for name in state_in:
        feeds[name] = rng.uniform(-1, 1, (3, cell["units"])).astype(np.float32)
    feeds.update(leaves)
    graph = helper.make_graph(
        nodes, "cell", [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                        for n, v in feeds.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in new_states])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ctx.importer.opset)])
    try:
        actual = ReferenceEvaluator(model).run(None, feeds)
    except Exception as exc:  # noqa: BLE001  (any failure of the body on its own: not a recognisable cell)
        raise refuse(f"its cell does not run on its own ({type(exc).__name__})") from None
    as64 = {n: np.asarray(v, np.float64) for n, v in feeds.items()}
    for activation in cell["activations"]:
        expected = keras_cell_step(dict(cell, activation=activation), as64[x_t], [as64[n] for n in state_in])
        if all(np.shape(got) == want.shape and np.allclose(got, want, rtol=CHECK_TOLERANCE, atol=CHECK_TOLERANCE)
               for got, want in zip(actual, expected)):
            return activation
    raise refuse(f"its cell does not compute a Keras {cell['kind']} cell with a sigmoid recurrent activation "
                 f"(activations tried: {', '.join(cell['activations']) or 'none'})")


def _initial_states(initial: list[OnnxVal], refuse) -> list[Value]:
    zero = [v is None or (isinstance(v, Filled) and v.value == 0) or (isinstance(v, np.ndarray) and not np.any(v))
            for v in initial]
    if all(zero):
        return []
    if not all(isinstance(v, Value) and v.rank == 2 for v in initial):
        raise refuse("its initial states are constants, or only some of them given")
    return list(initial)


def _rnn_node(ctx: OnnxContext, sequence: Value, cell: dict, initial_states: list[Value]):
    """The Keras frontend's `rnn` node, one direction, all steps and the final states out."""
    from tf2torch.frontends.onnx.recurrent import to_batch_first

    x = to_batch_first(ctx, sequence)
    batch, steps, input_size = x.spec.shape
    units, kind = cell["units"], cell["kind"]
    direction = {"kind": kind, "units": units, "activation": cell["activation"], "recurrent_activation": "sigmoid",
                 "use_bias": cell["bias"] is not None, "reset_after": cell["reset_after"], "dropout": 0.0,
                 "recurrent_dropout": 0.0, "go_backwards": False}
    params = {"forward/kernel": ctx.param(cell["kernel"], "IO"),
              "forward/recurrent_kernel": ctx.param(cell["recurrent_kernel"], "IO")}
    if cell["bias"] is not None:
        params["forward/bias"] = ctx.param(cell["bias"], "O")
    attrs = {"directions": [direction], "return_sequences": True, "return_state": True, "go_backwards": False,
             "stateful": False, "zero_output_for_mask": False, "merge_mode": None, "bidirectional": False,
             "has_mask": False, "n_initial_states": len(initial_states), "input_size": int(input_size),
             "n_outputs": 1}
    n_states = 2 if kind == "lstm" else 1
    specs = [TensorSpec((batch, steps, units))] + [TensorSpec((batch, units))] * n_states
    return ctx.add("rnn", [x] + initial_states, attrs, params, specs=specs)

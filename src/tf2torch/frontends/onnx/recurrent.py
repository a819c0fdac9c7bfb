"""LSTM / GRU / RNN onto the IR's `rnn` node (nn.LSTM / nn.GRU / nn.RNN), the node the Keras
frontend makes for its recurrent layers.

ONNX keeps gate blocks in its own order (LSTM i, o, f, c; GRU z, r, h), time-major tensors
(`layout=0`) and a direction axis in every output; the weights are handed over in Keras' layout
and gate order (LSTM i, f, c, o) and the outputs rebuilt around the batch-first module. Both
biases of an ONNX LSTM / RNN stay trainable (the Keras path has one and freezes torch's second).
"""

from __future__ import annotations

import numpy as np

from tf2torch.frontends.onnx.importer import Filled, OnnxContext, OnnxVal
from tf2torch.frontends.onnx.registry import register_onnx_op
from tf2torch.ir import TensorSpec, Value

KINDS = {"LSTM": "lstm", "GRU": "gru", "RNN": "simple_rnn"}
# Keras gate block i is ONNX block KERAS_FROM_ONNX[kind][i].
KERAS_FROM_ONNX = {"lstm": (0, 2, 3, 1), "gru": (0, 1, 2), "simple_rnn": (0,)}
DEFAULT_ACTIVATIONS = {"lstm": ("sigmoid", "tanh", "tanh"), "gru": ("sigmoid", "tanh"), "simple_rnn": ("tanh",)}
INITIAL_STATE_INPUTS = {"lstm": (5, 6), "gru": (5,), "simple_rnn": (5,)}


def _keras_gates(array: np.ndarray, kind: str) -> np.ndarray:
    """Gate blocks (first axis) from ONNX order to Keras order."""
    blocks = np.split(array, len(KERAS_FROM_ONNX[kind]), axis=0)
    return np.concatenate([blocks[i] for i in KERAS_FROM_ONNX[kind]], axis=0)


def _activation(ctx: OnnxContext, kind: str, n_dirs: int) -> str:
    """The cell activation; only the ones nn.LSTM / nn.GRU / nn.RNN compute (RNN: tanh or relu)."""
    names = [a.decode() if isinstance(a, bytes) else a for a in ctx.attr("activations") or []]
    names = [n.lower() for n in names]
    default = DEFAULT_ACTIVATIONS[kind]
    per_dir = [tuple(names[i * len(default):(i + 1) * len(default)]) or default for i in range(n_dirs)]
    if kind == "simple_rnn" and all(p == ("relu",) for p in per_dir):
        return "relu"
    if any(p != default for p in per_dir):
        raise ctx.unsupported(f"{ctx.type} activations {names} (only the defaults {list(default)}"
                              f"{' or Relu' if kind == 'simple_rnn' else ''})")
    return "tanh"


def _check_supported(ctx: OnnxContext, kind: str, steps: int | None) -> None:
    if ctx.attr("clip") is not None:
        raise ctx.unsupported(f"{ctx.type} with a cell clip")
    if kind == "lstm":
        if int(ctx.attr("input_forget", 0)):
            raise ctx.unsupported("LSTM with input_forget=1 (coupled input and forget gates)")
        peepholes = ctx.const(7)
        if peepholes is not None and np.any(peepholes):
            raise ctx.unsupported("LSTM peepholes (input P)")
    lengths = ctx.inputs[4] if len(ctx.inputs) > 4 else None
    if isinstance(lengths, np.ndarray):
        if steps is None or np.any(lengths != steps):
            raise ctx.unsupported("sequence_lens shorter than the sequence (padded batches)")
    elif lengths is not None:
        raise ctx.unsupported("a run-time sequence_lens input (padded batches)")


def _initial_states(ctx: OnnxContext, kind: str, n_dirs: int, batch_first: bool) -> list[Value]:
    """Per direction the (h[, c]) inputs of the rnn node, [batch, hidden] each; [] for zeros."""
    given = []
    for index in INITIAL_STATE_INPUTS[kind]:
        state = ctx.inputs[index] if index < len(ctx.inputs) else None
        zero = state is None or (isinstance(state, Filled) and state.value == 0) or (
            isinstance(state, np.ndarray) and not np.any(state))
        given.append(None if zero else state)
    if all(s is None for s in given):
        return []
    if not all(isinstance(s, Value) for s in given):
        raise ctx.unsupported(f"{ctx.type} initial states that are constants, or only some of them given")
    states = []
    for d in range(n_dirs):
        for state in given:
            batch = state.spec.shape[0 if batch_first else 1]
            index = (":", str(d)) if batch_first else (str(d),)
            spec = TensorSpec((batch, state.spec.shape[-1]), state.spec.dtype)
            states.append(ctx.add("tf_slice", [state], {"source": ("value", 0), "index": index}, specs=[spec]).outputs[0])
    return states


def to_batch_first(ctx: OnnxContext, x: Value) -> Value:
    """x as [batch, steps, features]: tf2onnx's own time-major Transpose is undone, not doubled."""
    producer = x.producer
    if producer is not None and producer.op == "tf_transpose" and tuple(producer.attrs["dims"]) == (1, 0, 2):
        return producer.inputs[0]
    spec = TensorSpec((x.spec.shape[1], x.spec.shape[0], x.spec.shape[2]), x.spec.dtype)
    return ctx.add("tf_transpose", [x], {"dims": (1, 0, 2)}, specs=[spec]).outputs[0]


def _params(ctx: OnnxContext, kind: str, direction: str, d: int, reset_after: bool) -> dict:
    w, r, b = ctx.const(1), ctx.const(2), ctx.const(3)
    params = {f"{direction}/kernel": ctx.param(_keras_gates(w[d], kind).T, "IO"),
              f"{direction}/recurrent_kernel": ctx.param(_keras_gates(r[d], kind).T, "IO")}
    if b is None:
        return params
    input_bias, recurrent_bias = (_keras_gates(part, kind) for part in np.split(b[d], 2))
    if kind != "gru":
        params[f"{direction}/bias"] = ctx.param(input_bias, "O")
        params[f"{direction}/recurrent_bias"] = ctx.param(recurrent_bias, "O")
    elif reset_after:  # Keras' GRU(reset_after=True) bias: (input, recurrent) rows
        params[f"{direction}/bias"] = ctx.param(np.stack([input_bias, recurrent_bias]), "O")
    else:  # linear_before_reset=0 adds both biases outside the reset gate: one sum
        params[f"{direction}/bias"] = ctx.param(input_bias + recurrent_bias, "O")
    return params


@register_onnx_op(*KINDS)
def import_recurrent(ctx: OnnxContext) -> list[OnnxVal]:
    kind = KINDS[ctx.type]
    batch_first = int(ctx.attr("layout", 0)) == 1
    x = ctx.value(0)
    if x.rank != 3:
        raise ctx.unsupported(f"a rank-{x.rank} input")
    x = x if batch_first else to_batch_first(ctx, x)
    batch, steps, input_size = x.spec.shape
    direction = ctx.attr("direction", "forward")
    n_dirs = 2 if direction == "bidirectional" else 1
    _check_supported(ctx, kind, steps)
    units = int(ctx.const(2).shape[-1])
    reset_after = kind == "gru" and bool(int(ctx.attr("linear_before_reset", 0)))
    cell = {"kind": kind, "units": units, "activation": _activation(ctx, kind, n_dirs),
            "recurrent_activation": "sigmoid", "use_bias": ctx.const(3) is not None, "reset_after": reset_after,
            "dropout": 0.0, "recurrent_dropout": 0.0, "go_backwards": direction == "reverse"}
    cells = [cell, dict(cell, go_backwards=True)] if n_dirs == 2 else [cell]
    names = ("forward", "backward") if n_dirs == 2 else ("forward",)
    params = {}
    for d, name in enumerate(names):
        params.update(_params(ctx, kind, name, d, reset_after))
    states = _initial_states(ctx, kind, n_dirs, batch_first)
    n_states = 2 if kind == "lstm" else 1
    # Both directions' steps come concatenated on the last axis (nn.LSTM's own output), then split per direction.
    attrs = {"directions": cells, "return_sequences": True, "return_state": True, "go_backwards": False,
             "stateful": False, "zero_output_for_mask": False, "merge_mode": "concat" if n_dirs == 2 else None,
             "bidirectional": n_dirs == 2, "has_mask": False, "n_initial_states": len(states),
             "input_size": int(input_size), "n_outputs": 1}
    seq_spec, state_spec = TensorSpec((batch, steps, units * n_dirs)), TensorSpec((batch, units))
    node = ctx.add("rnn", [x] + states, attrs, params, specs=[seq_spec] + [state_spec] * (n_states * n_dirs))
    sequence = node.outputs[0]
    if direction == "reverse":  # the module reads the steps reversed and returns them so: back to step order
        sequence = ctx.add("tf_flip", [sequence], {"dims": (1,)}, specs=[seq_spec]).outputs[0]
    final = node.outputs[1:]
    outputs = [_sequences_out(ctx, sequence, n_dirs, batch_first)]
    for i in range(n_states):  # Y_h, Y_c: [dirs, batch, units] (layout 0) or [batch, dirs, units]
        outputs.append(_stack(ctx, list(final[i::n_states]), 1 if batch_first else 0, ctx.out_spec(1 + i)))
    return outputs


def _stack(ctx: OnnxContext, values: list[Value], axis: int, spec: TensorSpec) -> Value:
    if len(values) == 1:
        return ctx.add("tf_unsqueeze", values, {"axis": axis}, specs=[spec]).outputs[0]
    return ctx.add("tf_stack", values, {"axis": axis}, specs=[spec]).outputs[0]


def _sequences_out(ctx: OnnxContext, sequence: Value, n_dirs: int, batch_first: bool) -> Value:
    """Y: [steps, dirs, batch, units] (layout 0) or [batch, steps, dirs, units] from the batch-first
    [batch, steps, dirs * units] output. One direction is transposed before its axis is added, so
    that tf2onnx's Squeeze + Transpose back to batch-first cancel against it."""
    spec = ctx.out_spec(0)
    batch, steps, width = sequence.spec.shape
    if n_dirs == 1 and not batch_first:
        time_major = ctx.add("tf_transpose", [sequence], {"dims": (1, 0, 2)},
                             specs=[TensorSpec((steps, batch, width))]).outputs[0]
        return _stack(ctx, [time_major], 1, spec)
    if n_dirs == 1:
        return _stack(ctx, [sequence], 2, spec)
    shape = [("dim", 0, 0), ("dim", 0, 1), 2, width // 2]
    split = ctx.add("tf_reshape", [sequence], {"shape": shape},
                    specs=[spec if batch_first else TensorSpec((batch, steps, 2, width // 2))]).outputs[0]
    if batch_first:
        return split
    return ctx.add("tf_transpose", [split], {"dims": (1, 2, 0, 3)}, specs=[spec]).outputs[0]

"""rnn (SimpleRNN / LSTM / GRU, Bidirectional), conv_lstm (ConvLSTM1D/2D/3D) and the mask ops.

An `rnn` direction becomes `nn.LSTM` / `nn.GRU` / `nn.RNN` where that is exact: the default
activations, GRU with reset_after=True, not stateful; with dropout (training only) when it has
one direction and no mask: in training the module then runs its cell loop (recurrent_dropout.py).
Keras has one bias where torch has two: the second (`bias_hh_l0`) is zero and frozen (for
GRU reset_after=True Keras has both, and both train). Every other case uses a readable
explicit loop over the time steps (`KerasLSTM` / `KerasGRU` / `KerasSimpleRNN`, written
into model.py), which keeps Keras' weight layout and gate order and carries the state over
masked steps exactly as Keras does.
"""

from __future__ import annotations

import numpy as np

from tf2torch.codegen.literals import RawCode, call, literal
from tf2torch.codegen.program import ModuleBuilder, Statement
from tf2torch.converters.params import state_array
from tf2torch.converters.recurrent_dropout import DROPOUT_CELLS, RECURRENT_DROPOUT
from tf2torch.converters.registry import register_converter
from tf2torch.ir import Node, Value

LOOP_BASE = '''
class KerasRecurrentLoop(nn.Module):
    """The time loop of keras.layers.RNN, for the cases nn.LSTM/GRU/RNN cannot express.

    At a masked step the states are carried over and the output repeats the previous one
    (zeros with `zero_output_for_mask`). `go_backwards` reads the sequence reversed and
    returns the outputs in that reversed order. Dropout masks are drawn once per call, as
    Keras does; with recurrent_dropout Keras uses one mask per gate for the inputs and the
    states (its `implementation=1`). `stateful` keeps the final states (detached) for the
    next call.
    """

    n_states = 1

    def __init__(
        self, input_size: int, units: int, gates: int, *, bias: bool, bias_shape: tuple[int, ...],
        return_sequences: bool = False, go_backwards: bool = False, zero_output_for_mask: bool = False,
        dropout: float = 0.0, recurrent_dropout: float = 0.0, stateful: bool = False,
    ) -> None:
        super().__init__()
        self.units = units
        self.gates = gates
        self.kernel = nn.Parameter(torch.zeros(input_size, gates * units))
        self.recurrent_kernel = nn.Parameter(torch.zeros(units, gates * units))
        self.bias = nn.Parameter(torch.zeros(bias_shape)) if bias else None
        self.return_sequences = return_sequences
        self.go_backwards = go_backwards
        self.zero_output_for_mask = zero_output_for_mask
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.stateful = stateful
        self.states: list[torch.Tensor] | None = None

    def reset_states(self) -> None:
        self.states = None

    def step(self, x_t: torch.Tensor, states: list[torch.Tensor], recurrent_mask: torch.Tensor | None):
        raise NotImplementedError

    @staticmethod
    def gate_matmul(x, weight: torch.Tensor) -> torch.Tensor:
        """x @ weight; with one (dropped-out) input per gate, each gate's block on its own input."""
        if isinstance(x, torch.Tensor):
            return x @ weight
        return torch.cat([x_g @ w_g for x_g, w_g in zip(x, weight.chunk(len(x), dim=1))], dim=-1)

    @staticmethod
    def dropped(h: torch.Tensor, mask: torch.Tensor | None):
        if mask is None:
            return h
        return [h * m for m in mask] if mask.dim() == 3 else h * mask

    def input_projection(self, x) -> torch.Tensor:
        projected = self.gate_matmul(x, self.kernel)
        return projected + self.bias if self.bias is not None and self.bias.dim() == 1 else projected

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, initial_state: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, ...]:
        batch, steps = x.shape[0], x.shape[1]
        if initial_state is not None:
            states = list(initial_state)
        elif self.stateful and self.states is not None:
            states = self.states
        else:
            states = [x.new_zeros(batch, self.units) for _ in range(self.n_states)]
        if self.go_backwards:
            x = x.flip(1)
            mask = None if mask is None else mask.flip(1)
        per_gate = (self.gates,) if self.recurrent_dropout > 0 and self.gates > 1 else ()
        if self.training and self.dropout > 0:
            input_mask = nn.functional.dropout(x.new_ones(per_gate + (batch, 1, x.shape[2])), self.dropout)
            x = [x * m for m in input_mask] if per_gate else x * input_mask
        recurrent_mask = None
        if self.training and self.recurrent_dropout > 0:
            ones = (x[0] if isinstance(x, list) else x).new_ones(per_gate + (batch, self.units))
            recurrent_mask = nn.functional.dropout(ones, self.recurrent_dropout)
        projected = self.input_projection(x)  # every step's input term at once
        output = projected.new_zeros(batch, self.units)
        outputs = []
        for t in range(steps):
            new_output, new_states = self.step(projected[:, t], states, recurrent_mask)
            if mask is None:
                output, states = new_output, new_states
            else:
                keep = mask[:, t, None]
                states = [torch.where(keep, new, old) for new, old in zip(new_states, states)]
                output = torch.where(keep, new_output, 0.0 if self.zero_output_for_mask else output)
            if self.return_sequences:
                outputs.append(output)
        if self.stateful:
            self.states = [s.detach() for s in states]
        result = torch.stack(outputs, dim=1) if self.return_sequences else output
        return (result, *states)
'''

LSTM_LOOP = '''
class KerasLSTM(KerasRecurrentLoop):
    """keras.layers.LSTM step: Keras weight layout (kernel (in, 4u)), gates i, f, c, o."""

    n_states = 2

    def __init__(self, input_size: int, units: int, *, activation=torch.tanh, recurrent_activation=torch.sigmoid,
                 bias: bool = True, **options) -> None:
        super().__init__(input_size, units, 4, bias=bias, bias_shape=(4 * units,), **options)
        self.activation = activation
        self.recurrent_activation = recurrent_activation

    def step(self, x_t, states, recurrent_mask):
        h, c = states
        z = x_t + self.gate_matmul(self.dropped(h, recurrent_mask), self.recurrent_kernel)
        i, f, g, o = z.chunk(4, dim=1)
        i, f, o = self.recurrent_activation(i), self.recurrent_activation(f), self.recurrent_activation(o)
        c = f * c + i * self.activation(g)
        h = o * self.activation(c)
        return h, [h, c]
'''

GRU_LOOP = '''
class KerasGRU(KerasRecurrentLoop):
    """keras.layers.GRU step: Keras weight layout (kernel (in, 3u)), gates z, r, h.
    reset_after=True: bias (2, 3u), r multiplies (h @ U_h + b_rh); False: bias (3u,), r * h."""

    def __init__(self, input_size: int, units: int, *, activation=torch.tanh, recurrent_activation=torch.sigmoid,
                 bias: bool = True, reset_after: bool = True, **options) -> None:
        bias_shape = (2, 3 * units) if reset_after else (3 * units,)
        super().__init__(input_size, units, 3, bias=bias, bias_shape=bias_shape, **options)
        self.activation = activation
        self.recurrent_activation = recurrent_activation
        self.reset_after = reset_after

    def input_projection(self, x) -> torch.Tensor:
        projected = self.gate_matmul(x, self.kernel)
        if self.bias is None:
            return projected
        return projected + (self.bias[0] if self.reset_after else self.bias)

    def step(self, x_t, states, recurrent_mask):
        (h,) = states
        h_in = self.dropped(h, recurrent_mask)
        x_z, x_r, x_h = x_t.chunk(3, dim=1)
        if self.reset_after:
            recurrent = self.gate_matmul(h_in, self.recurrent_kernel)
            if self.bias is not None:
                recurrent = recurrent + self.bias[1]
            r_z, r_r, r_h = recurrent.chunk(3, dim=1)
            z = self.recurrent_activation(x_z + r_z)
            r = self.recurrent_activation(x_r + r_r)
            candidate = self.activation(x_h + r * r_h)
        else:
            u_z, u_r, u_h = self.recurrent_kernel.chunk(3, dim=1)
            h_z, h_r, h_h = h_in if isinstance(h_in, list) else (h_in, h_in, h_in)
            z = self.recurrent_activation(x_z + h_z @ u_z)
            r = self.recurrent_activation(x_r + h_r @ u_r)
            candidate = self.activation(x_h + (r * h_h) @ u_h)
        h = z * h + (1 - z) * candidate
        return h, [h]
'''

SIMPLE_LOOP = '''
class KerasSimpleRNN(KerasRecurrentLoop):
    """keras.layers.SimpleRNN step: h = activation(x @ W + b + h @ U)."""

    def __init__(self, input_size: int, units: int, *, activation=torch.tanh, bias: bool = True, **options) -> None:
        super().__init__(input_size, units, 1, bias=bias, bias_shape=(units,), **options)
        self.activation = activation

    def step(self, x_t, states, recurrent_mask):
        (h,) = states
        h = self.activation(x_t + self.dropped(h, recurrent_mask) @ self.recurrent_kernel)
        return h, [h]
'''

MASKED_TORCH_RNN = '''
class MaskedRecurrent:
    """Keras masks on nn.LSTM / nn.GRU / nn.RNN. A right-padded mask runs torch's own kernel
    (plain, or packed sequences for two directions or when an LSTM's final c is needed); any
    other mask (left-padded, holey) runs the same cell step by step, carrying the state over
    masked steps as Keras does.
    Masked outputs repeat the previous output, or are zeros with `zero_output_for_mask` (what
    Bidirectional uses). `reverse` is Bidirectional's backward direction: it reads from the
    last real step to the first and returns its outputs in step order. Under torch.export /
    torch.compile the step loop always runs: it is exact for every mask and has no branch on
    the mask's values (which a traced graph cannot hold)."""

    def __init__(self, *args, zero_output_for_mask: bool = False, cell_state: bool = True, reverse: bool = False,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.zero_output_for_mask = zero_output_for_mask or reverse
        self.cell_state = cell_state  # False: the caller never reads an LSTM's final c
        self.reverse = reverse

    def forward(self, x: torch.Tensor, mask: torch.Tensor, hx=None):
        if torch.compiler.is_compiling():
            return self.masked_loop(x, mask, hx)
        steps = x.shape[1]
        lengths = mask.sum(dim=1)
        positions = torch.arange(steps, device=x.device)
        right_padded = bool((lengths > 0).all()) and bool((mask == (positions < lengths[:, None])).all())
        if not right_padded:
            return self.masked_loop(x, mask, hx)
        if not self.reverse:
            return self.right_padded(x, mask, lengths, hx)
        # Reverse every sequence within its length (the padding stays at the end), run
        # forwards, and put the outputs back in step order.
        order = torch.where(positions < lengths[:, None], lengths[:, None] - 1 - positions, positions)
        output, hx = self.right_padded(x.gather(1, order[..., None].expand_as(x)), mask, lengths, hx)
        return output.gather(1, order[..., None].expand_as(output)), hx

    def right_padded(self, x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor, hx=None):
        steps = x.shape[1]
        if not self.bidirectional and not (isinstance(self, nn.LSTM) and self.cell_state):
            # One direction, right padding: the steps after the last real one cannot change
            # the real outputs, so run the plain (fastest) kernel and read the final state
            # off the last real step.
            output, _ = super().forward(x, hx)
            last = output[torch.arange(x.shape[0], device=x.device), lengths - 1]
            fill = torch.zeros_like(last) if self.zero_output_for_mask else last
            output = torch.where(mask[..., None], output, fill[:, None])
            h_n = last.unsqueeze(0)
            return output, ((h_n, None) if isinstance(self, nn.LSTM) else h_n)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, hx = super().forward(packed, hx)
        output, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True, total_length=steps)
        if not self.zero_output_for_mask:  # padded steps repeat the last real output
            last = output[torch.arange(x.shape[0], device=x.device), lengths - 1]
            output = torch.where(mask[..., None], output, last[:, None])
        return output, hx

    def cell(self, x_t: torch.Tensor, state: list[torch.Tensor], suffix: str) -> list[torch.Tensor]:
        raise NotImplementedError

    def masked_loop(self, x: torch.Tensor, mask: torch.Tensor, hx=None):
        batch, steps = x.shape[0], x.shape[1]
        directions = 2 if self.bidirectional else 1
        n_states = 2 if isinstance(self, nn.LSTM) else 1
        if hx is None:
            zeros = x.new_zeros(directions, batch, self.hidden_size)
            hx = (zeros, zeros) if n_states == 2 else zeros
        initial = hx if n_states == 2 else (hx,)
        outputs, finals = [], []
        for direction, suffix in enumerate(["", "_reverse"][:directions]):
            state = [s[direction] for s in initial]
            output = x.new_zeros(batch, self.hidden_size)
            step_outputs = [output] * steps
            for t in range(steps - 1, -1, -1) if suffix or self.reverse else range(steps):
                new_state = self.cell(x[:, t], state, suffix)
                keep = mask[:, t, None]
                state = [torch.where(keep, new, old) for new, old in zip(new_state, state)]
                output = torch.where(keep, new_state[0], 0.0 if self.zero_output_for_mask else output)
                step_outputs[t] = output
            outputs.append(torch.stack(step_outputs, dim=1))
            finals.append(state)
        output = torch.cat(outputs, dim=-1)
        stacked = [torch.stack([f[i] for f in finals]) for i in range(n_states)]
        return output, (tuple(stacked) if n_states == 2 else stacked[0])

    def weights(self, suffix: str):
        w_ih, w_hh = getattr(self, "weight_ih_l0" + suffix), getattr(self, "weight_hh_l0" + suffix)
        if not self.bias:
            return w_ih, w_hh, None, None
        return w_ih, w_hh, getattr(self, "bias_ih_l0" + suffix), getattr(self, "bias_hh_l0" + suffix)
'''

MASKED_CELLS = {
    "lstm": ("MaskedLSTM", '''
class MaskedLSTM(MaskedRecurrent, nn.LSTM):
    def cell(self, x_t: torch.Tensor, state: list[torch.Tensor], suffix: str) -> list[torch.Tensor]:
        h, c = state
        w_ih, w_hh, b_ih, b_hh = self.weights(suffix)
        gates = nn.functional.linear(x_t, w_ih, b_ih) + nn.functional.linear(h, w_hh, b_hh)
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return [torch.sigmoid(o) * torch.tanh(c), c]
'''),
    "gru": ("MaskedGRU", '''
class MaskedGRU(MaskedRecurrent, nn.GRU):
    def cell(self, x_t: torch.Tensor, state: list[torch.Tensor], suffix: str) -> list[torch.Tensor]:
        (h,) = state
        w_ih, w_hh, b_ih, b_hh = self.weights(suffix)
        x_r, x_z, x_n = nn.functional.linear(x_t, w_ih, b_ih).chunk(3, dim=1)
        h_r, h_z, h_n = nn.functional.linear(h, w_hh, b_hh).chunk(3, dim=1)
        r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        return [(1 - z) * n + z * h]
'''),
    "simple_rnn": ("MaskedRNN", '''
class MaskedRNN(MaskedRecurrent, nn.RNN):
    def cell(self, x_t: torch.Tensor, state: list[torch.Tensor], suffix: str) -> list[torch.Tensor]:
        (h,) = state
        w_ih, w_hh, b_ih, b_hh = self.weights(suffix)
        act = torch.tanh if self.nonlinearity == "tanh" else torch.relu
        return [act(nn.functional.linear(x_t, w_ih, b_ih) + nn.functional.linear(h, w_hh, b_hh))]
'''),
}

KERAS2_HARD_SIGMOID = '''
def keras2_hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Keras 2's hard_sigmoid: clip(0.2 * x + 0.5, 0, 1) (torch's hardsigmoid is Keras 3's)."""
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)
'''

IDENTITY_FN = '''
def linear(x: torch.Tensor) -> torch.Tensor:
    """Keras' "linear" activation."""
    return x
'''

# IR activation name -> the callable written into the generated code (F: torch.nn.functional).
ACTIVATION_CALLABLES = {
    "tanh": "torch.tanh", "sigmoid": "torch.sigmoid", "relu": "torch.relu", "hard_sigmoid": "F.hardsigmoid",
    "elu": "F.elu", "selu": "torch.selu", "softplus": "F.softplus", "softsign": "F.softsign", "silu": "F.silu",
    "relu6": "F.relu6", "exp": "torch.exp", "gelu": "F.gelu", "mish": "F.mish", "hard_silu": "F.hardswish",
}
LOOP_CLASSES = {"lstm": ("KerasLSTM", LSTM_LOOP), "gru": ("KerasGRU", GRU_LOOP), "simple_rnn": ("KerasSimpleRNN", SIMPLE_LOOP)}
TORCH_CLASSES = {"lstm": "nn.LSTM", "gru": "nn.GRU", "simple_rnn": "nn.RNN"}


def _activation_callable(name: str, b: ModuleBuilder) -> str:
    if name == "hard_sigmoid_k2":
        return b.helper("keras2_hard_sigmoid", KERAS2_HARD_SIGMOID)
    if name == "linear":
        return b.helper("linear", IDENTITY_FN)
    code = ACTIVATION_CALLABLES[name]
    if code.startswith("F."):
        b.use_functional()
    return code


def _torch_exact(node: Node) -> bool:
    """True if nn.LSTM / nn.GRU / nn.RNN computes exactly what Keras does for this node."""
    a = node.attrs
    if a["stateful"]:
        return False
    for d in a["directions"]:
        if (d["dropout"] or d["recurrent_dropout"]) and (a["has_mask"] or len(a["directions"]) == 2):
            return False  # dropout runs in training only, through RecurrentDropout's one-direction loop
        if d["kind"] == "simple_rnn":
            if d["activation"] not in ("tanh", "relu"):
                return False
        elif d["activation"] != "tanh" or d["recurrent_activation"] != "sigmoid":
            return False
        if d["kind"] == "gru" and not d["reset_after"]:
            return False
    if len(a["directions"]) == 2:
        f, w = a["directions"]
        same = {k: v for k, v in f.items() if k != "go_backwards"} == {k: v for k, v in w.items() if k != "go_backwards"}
        if not same or f["go_backwards"]:
            return False
    return True


def _gru_reorder(array: np.ndarray, units: int) -> np.ndarray:
    """Keras GRU gate blocks z, r, h -> torch r, z, n (last axis)."""
    z, r, h = np.split(array, 3, axis=-1)
    return np.concatenate([r, z, h], axis=-1)


def _torch_rnn_state(node: Node, direction: str, suffix: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """State dict entries of one nn.LSTM/GRU/RNN direction; names of frozen params."""
    d = node.attrs["directions"][0]
    kind, units = d["kind"], d["units"]
    kernel = node.params[f"{direction}/kernel"].array
    recurrent = node.params[f"{direction}/recurrent_kernel"].array
    bias = node.params[f"{direction}/bias"].array if d["use_bias"] else None
    if kind == "gru":
        kernel, recurrent = _gru_reorder(kernel, units), _gru_reorder(recurrent, units)
        if bias is not None:
            bias = _gru_reorder(bias, units)
    state = {f"weight_ih_l0{suffix}": state_array(kernel.T), f"weight_hh_l0{suffix}": state_array(recurrent.T)}
    frozen = []
    if bias is not None:
        if kind == "gru":  # reset_after=True: Keras has an input and a recurrent bias too
            state[f"bias_ih_l0{suffix}"] = state_array(bias[0])
            state[f"bias_hh_l0{suffix}"] = state_array(bias[1])
        elif f"{direction}/recurrent_bias" in node.params:  # ONNX LSTM / RNN have both biases: both train
            state[f"bias_ih_l0{suffix}"] = state_array(bias)
            state[f"bias_hh_l0{suffix}"] = state_array(node.params[f"{direction}/recurrent_bias"].array)
        else:
            state[f"bias_ih_l0{suffix}"] = state_array(bias)
            state[f"bias_hh_l0{suffix}"] = np.zeros_like(state_array(bias))
            frozen.append(f"bias_hh_l0{suffix}")
    if not node.params[f"{direction}/kernel"].trainable:
        frozen = [k for k in state]
    return state, frozen


def _used(b: ModuleBuilder, value: Value) -> bool:
    """A recurrent layer's outputs (final states) are written out only where they are read."""
    return any(v is value for v in b.graph.outputs) or bool(b.graph.consumers(value))


def _merge(b: ModuleBuilder, node: Node, fwd: str, bwd: str) -> None:
    mode = node.attrs["merge_mode"]
    out = node.outputs[0]
    if mode == "concat":
        b.emit(out, f"torch.cat([{fwd}, {bwd}], dim=-1)")
    elif mode == "sum":
        b.emit(out, f"{fwd} + {bwd}")
    elif mode == "mul":
        b.emit(out, f"{fwd} * {bwd}")
    elif mode == "ave":
        b.emit(out, f"({fwd} + {bwd}) / 2")
    else:
        b.emit(node.outputs[1], bwd)
        b.emit(out, fwd)


def _inputs(node: Node, b: ModuleBuilder) -> tuple[str, str | None, list[str]]:
    a = node.attrs
    x = b.var(node.inputs[0])
    rest = node.inputs[1:]
    mask = None
    if a["has_mask"]:
        mask, rest = b.var(rest[0]), rest[1:]
    return x, mask, [b.var(v) for v in rest]


@register_converter("rnn")
def convert_rnn(node: Node, b: ModuleBuilder) -> None:
    if _torch_exact(node):
        _convert_torch_rnn(node, b)
    else:
        _convert_loop_rnn(node, b)


def _convert_masked_bidirectional(node: Node, b: ModuleBuilder) -> None:
    """Bidirectional LSTM / SimpleRNN with a mask: one masked module per direction, so that
    each can run torch's plain kernel on right-padded input (the backward one reads each
    sequence from its last real step)."""
    a = node.attrs
    d = a["directions"][0]
    kind = d["kind"]
    x, mask, states = _inputs(node, b)
    b.helper("MaskedRecurrent", MASKED_TORCH_RNN)
    cls = b.helper(*MASKED_CELLS[kind])
    base = node.source.name
    per_dir = len(states) // 2
    results = []
    for i, direction in enumerate(("forward", "backward")):
        kwargs: dict = {"batch_first": True}
        if not d["use_bias"]:
            kwargs["bias"] = False
        if kind == "simple_rnn" and d["activation"] == "relu":
            kwargs["nonlinearity"] = "relu"
        if a["zero_output_for_mask"]:
            kwargs["zero_output_for_mask"] = True
        if kind == "lstm" and not a["return_state"]:
            kwargs["cell_state"] = False
        if direction == "backward":
            kwargs["reverse"] = True
        state, frozen = _torch_rnn_state(node, direction, "")
        comment = "Gate blocks reordered from Keras' z, r, h to torch's r, z, n." if kind == "gru" and i == 0 else None
        frozen_t = ("*",) if frozen and len(frozen) == len(state) else tuple(frozen)
        mod = b.submodule(node, call(cls, a["input_size"], d["units"], **kwargs), state, suffix=direction,
                          frozen=frozen_t, comment=comment)
        args = f"{x}, {mask}"
        mine = states[i * per_dir:(i + 1) * per_dir]
        if mine:
            hx = ", ".join(f"{v}.unsqueeze(0)" for v in mine)
            args += f", ({hx})" if kind == "lstm" else f", {hx}"
        out = b.fresh(f"{base}_{direction}") if a["return_sequences"] else "_"
        need_h = a["return_state"] or not a["return_sequences"]
        h_n = b.fresh(f"{base}_{direction}_h") if need_h else "_"
        c_n = b.fresh(f"{base}_{direction}_c") if kind == "lstm" and a["return_state"] else "_"
        target = f"({h_n}, {c_n})" if kind == "lstm" and need_h else h_n
        b.statements.append(Statement([out, target], f"{mod}({args})"))
        results.append((out, h_n, c_n))
    (fwd, fwd_h, fwd_c), (bwd, bwd_h, bwd_c) = results
    if a["return_sequences"]:
        _merge(b, node, fwd, bwd)
    else:
        _merge(b, node, f"{fwd_h}[0]", f"{bwd_h}[0]")
    if a["return_state"]:
        sources = [fwd_h, fwd_c, bwd_h, bwd_c] if kind == "lstm" else [fwd_h, bwd_h]
        for value, source in zip(node.outputs[a["n_outputs"]:], sources):
            if _used(b, value):
                b.emit(value, f"{source}[0]")


def _convert_torch_rnn(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    d = a["directions"][0]
    kind, units = d["kind"], d["units"]
    # A masked bidirectional GRU is one module on packed sequences: torch's GRU has no
    # oneDNN kernel, and packing skips the padded steps (0.65x the time of one module per
    # direction at lengths 32..128 of 128). Unpacked LSTMs run oneDNN's kernel
    # (aten::mkldnn_rnn_layer), which beats their packed path (1.06x-1.34x), so they keep a
    # plain module per direction; SimpleRNN (not measured) does too.
    if a["bidirectional"] and a["has_mask"] and kind != "gru":
        _convert_masked_bidirectional(node, b)
        return
    bidirectional = a["bidirectional"]
    kwargs = {"batch_first": True}
    if not d["use_bias"]:
        kwargs["bias"] = False
    if kind == "simple_rnn" and d["activation"] == "relu":
        kwargs["nonlinearity"] = "relu"
    if bidirectional:
        kwargs["bidirectional"] = True
    state, frozen = _torch_rnn_state(node, "forward", "")
    if bidirectional:
        back_state, back_frozen = _torch_rnn_state(node, "backward", "_reverse")
        state.update(back_state)
        frozen += back_frozen
    comment = None
    if any(name.startswith("bias_hh") for name in frozen) and len(frozen) < len(state):
        comment = "Keras has one bias: bias_hh is zero and frozen."
    if kind == "gru":
        comment = "Gate blocks reordered from Keras' z, r, h to torch's r, z, n."
    x, mask, states = _inputs(node, b)
    cls = TORCH_CLASSES[kind]
    if mask is not None:
        b.helper("MaskedRecurrent", MASKED_TORCH_RNN)
        cls = b.helper(*MASKED_CELLS[kind])
    if d["dropout"]:
        kwargs["input_dropout"] = d["dropout"]
    if d["recurrent_dropout"]:
        kwargs["recurrent_dropout"] = d["recurrent_dropout"]
    if d["dropout"] or d["recurrent_dropout"]:
        b.use_functional()
        b.helper("RecurrentDropout", RECURRENT_DROPOUT)
        cls = b.helper(*DROPOUT_CELLS[kind])
    if mask is not None and a["zero_output_for_mask"]:
        kwargs["zero_output_for_mask"] = True
    if mask is not None and kind == "lstm" and not a["return_state"]:
        kwargs["cell_state"] = False
    ctor = call(cls, a["input_size"], units, **kwargs)
    frozen_t = ("*",) if frozen and len(frozen) == len(state) else tuple(frozen)
    mod = b.submodule(node, ctor, state, frozen=frozen_t, comment=comment)
    if d["go_backwards"]:
        x = b.temp(f"{b.var(node.inputs[0])}_reversed", f"{x}.flip(1)", comment="go_backwards: read the steps in reverse.")
        if mask is not None:
            mask = b.temp(f"{mask}_reversed", f"{mask}.flip(1)")
    args = x if mask is None else f"{x}, {mask}"
    if states:
        if kind == "lstm":
            if bidirectional:
                h0 = f"torch.stack([{states[0]}, {states[2]}])"
                c0 = f"torch.stack([{states[1]}, {states[3]}])"
            else:
                h0, c0 = f"{states[0]}.unsqueeze(0)", f"{states[1]}.unsqueeze(0)"
            args += f", ({h0}, {c0})"
        else:
            args += f", torch.stack([{states[0]}, {states[1]}])" if bidirectional else f", {states[0]}.unsqueeze(0)"
    base = node.source.name
    direct = a["return_sequences"] and (not bidirectional or a["merge_mode"] == "concat")
    seq = (b.var(node.outputs[0]) if direct else b.fresh(f"{base}_sequence")) if a["return_sequences"] else "_"
    need_h = a["return_state"] or not a["return_sequences"]
    h_n = b.fresh(f"{base}_h") if need_h else "_"
    c_n = b.fresh(f"{base}_c") if kind == "lstm" and a["return_state"] else "_"
    if kind != "lstm":
        state_target = h_n
    else:
        state_target = f"({h_n}, {c_n})" if need_h else "_"
    b.statements.append(Statement([seq, state_target], f"{mod}({args})", None, (node.outputs[0],) if direct else ()))
    # Keras' last output is the final hidden state; states come per direction.
    if bidirectional:
        if a["return_sequences"]:
            fwd, bwd = b.fresh(f"{base}_forward"), b.fresh(f"{base}_backward")
            if not direct:
                b.statements.append(Statement([fwd, bwd], f"{seq}.chunk(2, dim=-1)"))
                _merge(b, node, fwd, bwd)
        else:
            _merge(b, node, f"{h_n}[0]", f"{h_n}[1]")
    else:
        if not direct and _used(b, node.outputs[0]):
            b.emit(node.outputs[0], f"{h_n}[0]")
    if a["return_state"]:
        state_values = node.outputs[a["n_outputs"]:]
        per_dir = 2 if kind == "lstm" else 1
        for i, value in enumerate(state_values):
            direction, which = divmod(i, per_dir)
            source = h_n if which == 0 else c_n
            if _used(b, value):
                b.emit(value, f"{source}[{direction}]")


def _loop_ctor(node: Node, d: dict, b: ModuleBuilder) -> str:
    a = node.attrs
    b.helper("KerasRecurrentLoop", LOOP_BASE)
    cls, source = LOOP_CLASSES[d["kind"]]
    b.helper(cls, source)
    kwargs: dict = {}
    if d["activation"] != "tanh":
        kwargs["activation"] = RawCode(_activation_callable(d["activation"], b))
    if d["kind"] != "simple_rnn" and d["recurrent_activation"] != "sigmoid":
        kwargs["recurrent_activation"] = RawCode(_activation_callable(d["recurrent_activation"], b))
    if not d["use_bias"]:
        kwargs["bias"] = False
    if d["kind"] == "gru" and not d["reset_after"]:
        kwargs["reset_after"] = False
    options = {
        "return_sequences": a["return_sequences"], "go_backwards": d["go_backwards"],
        "zero_output_for_mask": a["zero_output_for_mask"] and a["has_mask"], "dropout": d["dropout"],
        "recurrent_dropout": d["recurrent_dropout"], "stateful": a["stateful"],
    }
    kwargs.update({k: v for k, v in options.items() if v})
    return call(cls, a["input_size"], d["units"], **kwargs)


RESET_STATES_METHOD = '''
def reset_states(self) -> None:
    """Forget the states the stateful recurrent layers carry between calls (Keras reset_states)."""
    for module in self.modules():
        if module is not self and hasattr(module, "reset_states"):
            module.reset_states()
'''


def _convert_loop_rnn(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    if any(name.endswith("/recurrent_bias") for name in node.params):
        raise ValueError(f"{node.source.name}: the explicit loop has one bias; a second (recurrent) bias would be lost")
    if a["stateful"]:
        b.methods.setdefault("reset_states", RESET_STATES_METHOD)
    x, mask, states = _inputs(node, b)
    per_dir = len(states) // len(a["directions"]) if states else 0
    base = node.source.name
    results = []
    for i, (direction, d) in enumerate(zip(("forward", "backward"), a["directions"])):
        state = {"kernel": state_array(node.params[f"{direction}/kernel"].array),
                 "recurrent_kernel": state_array(node.params[f"{direction}/recurrent_kernel"].array)}
        if d["use_bias"]:
            state["bias"] = state_array(node.params[f"{direction}/bias"].array)
        frozen = ("*",) if not node.params[f"{direction}/kernel"].trainable else ()
        suffix = direction if a["bidirectional"] else ""
        mod = b.submodule(node, _loop_ctor(node, d, b), state, suffix=suffix, frozen=frozen)
        args = [x]
        if mask is not None:
            args.append(f"mask={mask}")
        if states:
            args.append(f"initial_state=[{', '.join(states[i * per_dir:(i + 1) * per_dir])}]")
        n_states = 2 if d["kind"] == "lstm" else 1
        if not a["bidirectional"]:
            # One direction: assign the node's own outputs directly.
            out = node.outputs[0]
            states_out = node.outputs[1:] if a["return_state"] else []
            targets = [b.var(out)] + ([b.var(v) for v in states_out] or ["_"] * n_states)
            b.statements.append(Statement(targets, f"{mod}({', '.join(args)})", None, (out, *states_out)))
            return
        name = f"{base}_{direction}"
        states_names = [b.fresh(f"{name}_{s}") if a["return_state"] else "_" for s in ["h", "c"][:n_states]]
        targets = [b.fresh(f"{name}_output")] + states_names
        b.statements.append(Statement(targets, f"{mod}({', '.join(args)})"))
        results.append(targets)
    if a["bidirectional"]:
        fwd, bwd = results[0][0], results[1][0]
        if a["return_sequences"]:
            bwd = b.temp(f"{base}_backward_steps", f"{bwd}.flip(1)", comment="The backward direction's outputs, back in step order.")
        _merge(b, node, fwd, bwd)
    else:
        b.emit(node.outputs[0], results[0][0])
    if a["return_state"]:
        flat = [t for targets in results for t in targets[1:]]
        for value, source in zip(node.outputs[a["n_outputs"]:], flat):
            if _used(b, value):
                b.emit(value, source)


# -- masks ------------------------------------------------------------------------------


@register_converter("tokens_mask")
def convert_tokens_mask(node: Node, b: ModuleBuilder) -> None:
    b.emit(node.outputs[0], f"{b.var(node.inputs[0])} != 0", comment="Keras mask of Embedding(mask_zero=True).")


@register_converter("masking")
def convert_masking(node: Node, b: ModuleBuilder) -> None:
    x = b.var(node.inputs[0])
    out, mask = node.outputs
    value = literal(float(node.attrs["mask_value"]))
    b.emit(mask, f"({x} != {value}).any(dim=-1)", comment="Keras Masking: a step is kept if any feature differs from mask_value.")
    b.emit(out, f"{x} * {b.var(mask)}.unsqueeze(-1)")


@register_converter("mask_combine")
def convert_mask_combine(node: Node, b: ModuleBuilder) -> None:
    op = " & " if node.attrs["mode"] == "and" else " | "
    b.emit(node.outputs[0], op.join(b.var(v) for v in node.inputs))


@register_converter("masked_global_avg_pool")
def convert_masked_global_avg_pool(node: Node, b: ModuleBuilder) -> None:
    x, mask = (b.var(v) for v in node.inputs)
    weights = b.temp(f"{mask}_weights", f"{mask}.unsqueeze(-1).to({x}.dtype)")
    keep = ", keepdim=True" if node.attrs["keepdims"] else ""
    b.emit(node.outputs[0], f"({x} * {weights}).sum(dim=1{keep}) / {weights}.sum(dim=1{keep})",
           comment="Mean over the unmasked steps only (Keras mask).")


@register_converter("masked_softmax")
def convert_masked_softmax(node: Node, b: ModuleBuilder) -> None:
    x_value, mask_value = node.inputs
    x, mask = b.var(x_value), b.var(mask_value)
    dim = node.attrs["axis"] % x_value.rank
    style = node.attrs["style"]
    if style == "add":
        adder = f"(1.0 - {mask}.to({x}.dtype)) * -1e9"
        b.emit(node.outputs[0], f"torch.softmax({x} + {adder}, dim={dim})", comment="Keras 2: masked logits get -1e9 added.")
        return
    keep = mask if mask_value.spec.dtype == "bool" else b.temp(f"{mask}_keep", f"{mask} > 0.5")
    logits = b.temp(f"{x}_masked", f"{x}.masked_fill(~{keep}, -1e9)", comment="Keras: masked logits are set to -1e9.")
    if style == "where":
        b.emit(node.outputs[0], f"torch.softmax({logits}, dim={dim})")
        return
    probs = b.temp(f"{x}_probs", f"torch.softmax({logits}, dim={dim})")
    b.emit(node.outputs[0], f"{probs}.masked_fill(~{keep}, 0.0)", comment="Keras 3 zeroes the masked positions' outputs.")


@register_converter("bool_op")
def convert_bool_op(node: Node, b: ModuleBuilder) -> None:
    a = node.attrs
    fn = a["fn"]
    args = [b.var(v) for v in node.inputs]
    x = args[0]
    if fn == "not_equal":
        expr = f"{x} != {literal(a['value'])}" if "value" in a else f"{x} != {args[1]}"
    elif fn in ("any", "all"):
        axes = a["axes"]
        if axes is None:
            expr = f"{x}.{fn}()"
        else:
            dim = axes[0] if len(axes) == 1 else axes
            expr = f"{x}.{fn}(dim={literal(dim)}{', keepdim=True' if a['keepdims'] else ''})"
    elif fn == "logical_or":
        expr = f"{x} | {args[1]}"
    elif fn == "logical_and":
        expr = f"{x} & {args[1]}"
    elif fn == "logical_not":
        expr = f"~{x}"
    elif fn == "expand_dims":
        expr = f"{x}.unsqueeze({a['axis']})"
    elif fn in ("zeros_like", "ones_like"):
        expr = f"torch.{fn}({x}, dtype=torch.bool)"
    elif fn == "concatenate":
        expr = f"torch.cat([{', '.join(args)}], dim={a['axis']})"
    elif fn == "flip":
        expr = f"{x}.flip({a['axis']})"
    else:  # squeeze
        expr = f"{x}.squeeze({literal(a['axes'][0] if len(a['axes']) == 1 else a['axes'])})"
    b.emit(node.outputs[0], expr)


@register_converter("time_distributed_fold")
def convert_time_distributed_fold(node: Node, b: ModuleBuilder) -> None:
    b.emit(node.outputs[0], f"{b.var(node.inputs[0])}.flatten(0, 1)", comment="TimeDistributed: every step as one batch.")


@register_converter("time_distributed_unfold")
def convert_time_distributed_unfold(node: Node, b: ModuleBuilder) -> None:
    y, x = (b.var(v) for v in node.inputs)
    b.emit(node.outputs[0], f"{y}.unflatten(0, ({x}.shape[0], {x}.shape[1]))")


CONV_LSTM_HELPER = '''
class KerasConvLSTM{rank}D(nn.Module):
    """keras.layers.ConvLSTM{rank}D on channels-first tensors (batch, channels, steps, *spatial).

    Gates i, f, c, o as in Keras; the input convolution runs on every step at once, the
    recurrent one is 'same'-padded with stride 1 and no bias. `input_padding`: the explicit
    zero padding (F.pad order) of Keras' padding='same' with strides > 1, which TensorFlow
    makes asymmetric. A mask, (batch, steps) or per position (batch, steps, *spatial) as
    Masking gives, carries the states over masked steps; masked outputs repeat the previous
    output (zeros with `zero_output_for_mask`). In training, dropout / recurrent_dropout draw
    one mask per gate for the inputs / states, once per call and shared by every step (Keras'
    DropoutRNNCell). `stateful` keeps the final states (detached) for the next call.
    """

    def __init__(
        self, in_channels: int, filters: int, kernel_size, *, stride=1, padding=0, input_padding=None, dilation=1,
        bias: bool = True, activation=torch.tanh, recurrent_activation=torch.sigmoid, return_sequences: bool = False,
        go_backwards: bool = False, zero_output_for_mask: bool = False, dropout: float = 0.0,
        recurrent_dropout: float = 0.0, stateful: bool = False,
    ) -> None:
        super().__init__()
        self.filters = filters
        self.input_padding = input_padding
        self.input_conv = nn.Conv{rank}d(in_channels, 4 * filters, kernel_size, stride=stride, padding=padding,
                                    dilation=dilation, bias=bias)
        self.recurrent_conv = nn.Conv{rank}d(filters, 4 * filters, kernel_size, padding="same", bias=False)
        self.activation = activation
        self.recurrent_activation = recurrent_activation
        self.return_sequences = return_sequences
        self.go_backwards = go_backwards
        self.zero_output_for_mask = zero_output_for_mask
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.stateful = stateful
        self.states: list[torch.Tensor] | None = None

    def reset_states(self) -> None:
        self.states = None

    def gate_masks(self, like: torch.Tensor, rate: float) -> torch.Tensor:
        """Four dropout masks (gates i, f, c, o), each the shape of `like`."""
        return nn.functional.dropout(like.new_ones((4,) + like.shape), rate)

    @staticmethod
    def gate_conv(conv: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """`conv` with each gate's block of filters on its own input (the four inputs side by
        side on the channel axis): a convolution with groups=4."""
        return nn.functional.conv{rank}d(inputs, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, groups=4)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, initial_state: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, steps = x.shape[0], x.shape[2]
        if self.go_backwards:
            x = x.flip(2)
            mask = None if mask is None else mask.flip(1)
        frames = x.transpose(1, 2)  # (batch, steps, channels, *spatial)
        input_dropout = self.training and self.dropout > 0
        if input_dropout:
            masks = self.gate_masks(frames[:, 0], self.dropout)
            frames = torch.cat([frames * m.unsqueeze(1) for m in masks], dim=2)
        frames = frames.flatten(0, 1)
        if self.input_padding is not None:
            frames = nn.functional.pad(frames, self.input_padding)
        projected = self.gate_conv(self.input_conv, frames) if input_dropout else self.input_conv(frames)
        projected = projected.unflatten(0, (batch, steps))
        if initial_state is not None:
            h, c = initial_state
        elif self.stateful and self.states is not None:
            h, c = self.states
        else:
            h = projected.new_zeros((batch, self.filters) + projected.shape[3:])
            c = torch.zeros_like(h)
        recurrent_masks = self.gate_masks(h, self.recurrent_dropout) if self.training and self.recurrent_dropout > 0 else None
        if mask is not None:  # broadcast over (batch, filters, *spatial) at each step
            mask = mask.reshape(mask.shape[:2] + (1,) * (h.dim() - 1)) if mask.dim() == 2 else mask.unsqueeze(2)
        output = torch.zeros_like(h)
        outputs = []
        for t in range(steps):
            if recurrent_masks is None:
                recurrent = self.recurrent_conv(h)
            else:
                recurrent = self.gate_conv(self.recurrent_conv, torch.cat([h * m for m in recurrent_masks], dim=1))
            i, f, g, o = (projected[:, t] + recurrent).chunk(4, dim=1)
            new_c = self.recurrent_activation(f) * c + self.recurrent_activation(i) * self.activation(g)
            new_h = self.recurrent_activation(o) * self.activation(new_c)
            if mask is None:
                h, c, output = new_h, new_c, new_h
            else:
                keep = mask[:, t]
                h, c = torch.where(keep, new_h, h), torch.where(keep, new_c, c)
                output = torch.where(keep, new_h, 0.0 if self.zero_output_for_mask else output)
            if self.return_sequences:
                outputs.append(output)
        if self.stateful:
            self.states = [h.detach(), c.detach()]
        output = torch.stack(outputs, dim=2) if self.return_sequences else output
        return output, h, c
'''


@register_converter("conv_lstm")
def convert_conv_lstm(node: Node, b: ModuleBuilder) -> None:
    from tf2torch.codegen.literals import compact

    a = node.attrs
    rank = a["rank"]
    cls = b.helper(f"KerasConvLSTM{rank}D", CONV_LSTM_HELPER.replace("{rank}", str(rank)))
    kwargs: dict = {}
    ones = (1,) * rank
    if a["strides"] != ones:
        kwargs["stride"] = compact(a["strides"])
    comment = None
    pads = a["input_padding"]
    if a["padding"] == "same" and pads is None:
        kwargs["padding"] = "same"
    elif pads is not None and all(before == after for before, after in pads):
        kwargs["padding"] = compact(tuple(before for before, _ in pads))
    elif pads is not None:
        kwargs["input_padding"] = tuple(p for pair in reversed(pads) for p in pair)
        comment = "Keras padding='same' with strides: TensorFlow pads the odd cell at the end (input_padding)."
    if a["dilation"] != ones:
        kwargs["dilation"] = compact(a["dilation"])
    if not a["use_bias"]:
        kwargs["bias"] = False
    if a["activation"] != "tanh":
        kwargs["activation"] = RawCode(_activation_callable(a["activation"], b))
    if a["recurrent_activation"] != "sigmoid":
        kwargs["recurrent_activation"] = RawCode(_activation_callable(a["recurrent_activation"], b))
    for flag in ("return_sequences", "go_backwards", "stateful"):
        if a[flag]:
            kwargs[flag] = True
    if a["zero_output_for_mask"] and a["has_mask"]:
        kwargs["zero_output_for_mask"] = True
    for rate in ("dropout", "recurrent_dropout"):
        if a[rate]:
            kwargs[rate] = a[rate]
    if a["stateful"]:
        b.methods.setdefault("reset_states", RESET_STATES_METHOD)
    to_torch = (rank + 1, rank) + tuple(range(rank))  # (*kernel, in, out) -> (out, in, *kernel)
    state = {
        "input_conv.weight": state_array(node.params["kernel"].array.transpose(to_torch)),
        "recurrent_conv.weight": state_array(node.params["recurrent_kernel"].array.transpose(to_torch)),
    }
    if a["use_bias"]:
        state["input_conv.bias"] = state_array(node.params["bias"].array)
    frozen = ("*",) if not node.params["kernel"].trainable else ()
    ctor = call(cls, a["in_channels"], a["filters"], compact(a["kernel_size"]), **kwargs)
    mod = b.submodule(node, ctor, state, frozen=frozen, comment=comment)
    x, mask, states = _inputs(node, b)
    args = [x]
    if mask is not None:
        args.append(f"mask={mask}")
    if states:
        args.append(f"initial_state=[{', '.join(states)}]")
    outs = node.outputs
    targets = [b.var(outs[0])] + ([b.var(v) for v in outs[1:]] if a["return_state"] else ["_", "_"])
    b.statements.append(Statement(targets, f"{mod}({', '.join(args)})", None, tuple(outs)))


@register_converter("channel_masking")
def convert_channel_masking(node: Node, b: ModuleBuilder) -> None:
    x = b.var(node.inputs[0])
    out, mask = node.outputs
    value = literal(float(node.attrs["mask_value"]))
    b.emit(mask, f"({x} != {value}).any(dim=1)",
           comment="Keras Masking: a position is kept if any channel differs from mask_value.")
    b.emit(out, f"{x} * {b.var(mask)}.unsqueeze(1)")


@register_converter("channel_mask")
def convert_channel_mask(node: Node, b: ModuleBuilder) -> None:
    x = b.var(node.inputs[0])
    value = literal(float(node.attrs["mask_value"]))
    b.emit(node.outputs[0], f"({x} != {value}).any(dim=1)",
           comment="Keras Masking: a position is kept if any channel differs from mask_value.")

"""Generated helper classes: nn.LSTM / nn.GRU / nn.RNN with Keras' dropout and recurrent_dropout.

Dropout changes training only, so in eval mode torch's own kernel runs (exact, fast). In
training the same weights run step by step on dropped-out inputs and states, with the masks
the cell loop (KerasRecurrentLoop in recurrent.py) draws: once per call, and one per gate
when recurrent_dropout is set, inputs and states alike."""

from __future__ import annotations

RECURRENT_DROPOUT = '''
class RecurrentDropout:
    """Keras' dropout / recurrent_dropout on a one-layer, one-direction torch RNN. In eval mode
    both are off and torch's kernel runs; in training the cell runs step by step with dropout
    masks drawn once per call (one per gate with recurrent_dropout, as Keras does)."""

    gates = 1

    def __init__(self, *args, input_dropout: float = 0.0, recurrent_dropout: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.input_dropout = input_dropout  # nn.RNNBase's own `dropout` is between stacked layers
        self.recurrent_dropout = recurrent_dropout

    def forward(self, x: torch.Tensor, hx=None):
        if not self.training:
            return super().forward(x, hx)
        batch, steps = x.shape[0], x.shape[1]
        n_masks = self.gates if self.recurrent_dropout > 0 else 1
        input_masks = F.dropout(x.new_ones(n_masks, batch, 1, x.shape[2]), self.input_dropout)
        state_masks = F.dropout(x.new_ones(n_masks, batch, self.hidden_size), self.recurrent_dropout)
        projected = self.per_gate(x, input_masks, self.weight_ih_l0, self.bias_ih_l0 if self.bias else None)
        if hx is None:
            zeros = x.new_zeros(batch, self.hidden_size)
            state = [zeros, zeros] if isinstance(self, nn.LSTM) else [zeros]
        else:
            state = [s[0] for s in hx] if isinstance(self, nn.LSTM) else [hx[0]]
        outputs = []
        for t in range(steps):
            recurrent = self.per_gate(state[0], state_masks, self.weight_hh_l0, self.bias_hh_l0 if self.bias else None)
            state = self.cell(projected[:, t], recurrent, state)
            outputs.append(state[0])
        finals = [s.unsqueeze(0) for s in state]
        return torch.stack(outputs, dim=1), (tuple(finals) if isinstance(self, nn.LSTM) else finals[0])

    def per_gate(self, x: torch.Tensor, masks: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
        """x @ weight.T + bias, each gate's block of rows applied to x times that gate's mask."""
        if len(masks) == 1:
            return F.linear(x * masks[0], weight, bias)
        biases = [None] * len(masks) if bias is None else bias.chunk(len(masks))
        blocks = zip(masks, weight.chunk(len(masks)), biases)
        return torch.cat([F.linear(x * mask, w, b) for mask, w, b in blocks], dim=-1)

    def cell(self, x_t: torch.Tensor, h_t: torch.Tensor, state: list[torch.Tensor]) -> list[torch.Tensor]:
        raise NotImplementedError
'''

DROPOUT_CELLS = {
    "lstm": ("DropoutLSTM", '''
class DropoutLSTM(RecurrentDropout, nn.LSTM):
    gates = 4

    def cell(self, x_t: torch.Tensor, h_t: torch.Tensor, state: list[torch.Tensor]) -> list[torch.Tensor]:
        i, f, g, o = (x_t + h_t).chunk(4, dim=1)
        c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
        return [torch.sigmoid(o) * torch.tanh(c), c]
'''),
    "gru": ("DropoutGRU", '''
class DropoutGRU(RecurrentDropout, nn.GRU):
    gates = 3

    def cell(self, x_t: torch.Tensor, h_t: torch.Tensor, state: list[torch.Tensor]) -> list[torch.Tensor]:
        x_r, x_z, x_n = x_t.chunk(3, dim=1)
        h_r, h_z, h_n = h_t.chunk(3, dim=1)
        r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        return [(1 - z) * n + z * state[0]]
'''),
    "simple_rnn": ("DropoutRNN", '''
class DropoutRNN(RecurrentDropout, nn.RNN):
    def cell(self, x_t: torch.Tensor, h_t: torch.Tensor, state: list[torch.Tensor]) -> list[torch.Tensor]:
        return [torch.tanh(x_t + h_t) if self.nonlinearity == "tanh" else torch.relu(x_t + h_t)]
'''),
}

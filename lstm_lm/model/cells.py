"""Recurrent layers behind one interface, `rnn(inputs, state) -> (outputs, state)`, and the LSTM written out from
its equations with two variants.

`inputs` are (T, B, I), or a PackedSequence of rows of different lengths; `outputs` are the top layer's (T, B, H),
packed the same way. The state is a tuple of (num_layers, B, H) tensors, `(h, c)` for the LSTM cells and `(h,)`
for the GRU and the plain RNNs, so that every caller detaches, saves and slices it alike (lstm_lm/model/stack.py keeps
that promise with one (1, B, H_layer) part per layer and state). `None` means zeros.

The LSTM as nn.LSTM computes it (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000), with
its parameter names and gate order, so that weights move between the two:

    i_t = σ(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)        input gate
    f_t = σ(W_if x_t + b_if + W_hf h_{t-1} + b_hf)        forget gate
    g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)     candidate
    o_t = σ(W_io x_t + b_io + W_ho h_{t-1} + b_ho)        output gate
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t                       cell
    h_t = o_t ⊙ tanh(c_t)                                 hidden

The variants:

    peephole (Gers & Schmidhuber 2000): i_t and f_t also add p_i ⊙ c_{t-1} and p_f ⊙ c_{t-1}; o_t adds p_o ⊙ c_t
    coupled (CIFG; Greff et al. 2017):  no input gate, i_t = 1 − f_t; the weights hold three gates, not four

The products with x_t are one matrix product over all time steps before the loop; only the products with h_{t-1}
wait for the step before. Gradients come from autograd through the loop. On one CPU thread at the PTB small shape
(scripts/bench_cells.py) the loop makes the recurrent layers about 1.5 times as costly as the fused kernels and a
whole training step about 1.1 times. Tried once at that shape and left out: torch.jit.script of the layer loop
saved about a tenth of the recurrent layers' time, but torch 2.13 deprecates it and warns; torch.compile of the
step compiled for 20 s (and needs a C++ compiler on the machine) and then ran slower than plain code, its per-call
overhead larger than the few small kernels it fuses.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from .regularization import plain_dropout

State = tuple[torch.Tensor, ...]  # (h, c) or (h,), each (num_layers, B, H)

LSTM_GATES = ("input", "forget", "candidate", "output")  # the blocks of nn.LSTM's weight rows, in order
COUPLED_GATES = ("forget", "candidate", "output")


# ---- one time step of each cell ------------------------------------------------------------------------------------
# `gates` (B, G·H) are the pre-activations W_ih x_t + b_ih + W_hh h_{t-1} + b_hh; `c` (B, H) is c_{t-1}.
# Each returns (h_t, c_t).

def lstm_step(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    i, f, g, o = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def peephole_step(gates: torch.Tensor, c: torch.Tensor,
                  peephole: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`peephole` (3, H): the diagonal weights p_i, p_f, p_o from the cell to the input, forget and output gates."""
    i, f, g, o = gates.chunk(4, dim=1)
    p_i, p_f, p_o = peephole.unbind(0)  # (unbind: TorchScript, which lstm_lm/export/ uses, unpacks no tensor)
    c_next = torch.sigmoid(f + p_f * c) * c + torch.sigmoid(i + p_i * c) * torch.tanh(g)
    return torch.sigmoid(o + p_o * c_next) * torch.tanh(c_next), c_next  # the output gate sees the new cell


def coupled_step(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`gates` (B, 3H) in the order f, g, o: what the cell forgets, it takes in from the candidate."""
    f, g, o = gates.chunk(3, dim=1)
    f = torch.sigmoid(f)
    c = f * c + (1 - f) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


# ---- the written-out LSTM layers -----------------------------------------------------------------------------------

class ExplicitLSTM(nn.Module):
    """Stacked LSTM layers from the equations above, with nn.LSTM's parameter names, initialization, and dropout
    between layers. Subclasses change the gates and the step."""

    gates = LSTM_GATES

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.0):
        super().__init__()
        self.hidden_size, self.num_layers, self.dropout = hidden_size, num_layers, dropout
        for layer in range(num_layers):
            self.add_layer_parameters(layer, input_size if layer == 0 else hidden_size)
        bound = 1 / math.sqrt(hidden_size)  # nn.LSTM's default initialization
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def add_layer_parameters(self, layer: int, input_size: int) -> None:
        rows = len(self.gates) * self.hidden_size
        self.register_parameter(f"weight_ih_l{layer}", nn.Parameter(torch.empty(rows, input_size)))
        self.register_parameter(f"weight_hh_l{layer}", nn.Parameter(torch.empty(rows, self.hidden_size)))
        self.register_parameter(f"bias_ih_l{layer}", nn.Parameter(torch.empty(rows)))
        self.register_parameter(f"bias_hh_l{layer}", nn.Parameter(torch.empty(rows)))

    def step(self, layer: int, gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return lstm_step(gates, c)

    def forward(self, inputs: torch.Tensor | PackedSequence,
                state: State | None = None) -> tuple[torch.Tensor | PackedSequence, State]:
        packed = inputs if isinstance(inputs, PackedSequence) else None
        running = None
        if packed is not None:
            inputs, lengths = pad_packed_sequence(packed)  # (T, B, I), rows in the caller's order
            # (T, B, 1): whether step t lies within row b; past its end a row keeps its state, so the final state
            # is the one after its own last token, as nn.LSTM returns for packed rows.
            running = (torch.arange(len(inputs))[:, None] < lengths).unsqueeze(-1).to(inputs.device)
        if state is None:
            zeros = inputs.new_zeros(self.num_layers, inputs.size(1), self.hidden_size)
            state = (zeros, zeros)
        h0, c0 = state
        outputs, final_h, final_c = inputs, [], []
        for layer in range(self.num_layers):
            if layer > 0:
                outputs = plain_dropout(outputs, self.dropout, self.training)
            outputs, h, c = self.run_layer(layer, outputs, h0[layer], c0[layer], running)
            final_h.append(h)
            final_c.append(c)
        if packed is not None:
            outputs = packed_like(outputs, packed)
        return outputs, (torch.stack(final_h), torch.stack(final_c))

    def run_layer(self, layer: int, inputs: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
                  running: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """inputs (T, B, I), h and c (B, H) -> outputs (T, B, H), the last h and c."""
        weight_hh = getattr(self, f"weight_hh_l{layer}")
        bias = getattr(self, f"bias_ih_l{layer}") + getattr(self, f"bias_hh_l{layer}")
        input_gates = F.linear(inputs, getattr(self, f"weight_ih_l{layer}"), bias)  # (T, B, G·H), one product
        outputs = []
        for t, from_input in enumerate(input_gates):
            h_next, c_next = self.step(layer, torch.addmm(from_input, h, weight_hh.t()), c)
            if running is None:
                h, c = h_next, c_next
            else:
                h, c = torch.where(running[t], h_next, h), torch.where(running[t], c_next, c)
            outputs.append(h)
        return torch.stack(outputs), h, c


class PeepholeLSTM(ExplicitLSTM):
    def add_layer_parameters(self, layer: int, input_size: int) -> None:
        super().add_layer_parameters(layer, input_size)
        # Rows p_i, p_f, p_o: one weight per unit, each gate seeing only its own unit's cell.
        self.register_parameter(f"peephole_l{layer}", nn.Parameter(torch.empty(3, self.hidden_size)))

    def step(self, layer: int, gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return peephole_step(gates, c, getattr(self, f"peephole_l{layer}"))


class CoupledLSTM(ExplicitLSTM):
    gates = COUPLED_GATES

    def step(self, layer: int, gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return coupled_step(gates, c)


def packed_like(padded: torch.Tensor, like: PackedSequence) -> PackedSequence:
    """(T, B, H) outputs, rows in the caller's order -> packed exactly as `like` is, so that callers that packed
    their targets with the same lengths find them in the same order."""
    order = like.sorted_indices if like.sorted_indices is not None else torch.arange(padded.size(1))
    order = order.to(padded.device)
    data = torch.cat([padded[t, order[:rows]] for t, rows in enumerate(like.batch_sizes.tolist())])
    return like._replace(data=data)


# ---- the fused modules ---------------------------------------------------------------------------------------------

def as_fp32(state: torch.Tensor | tuple[torch.Tensor, ...] | None) -> torch.Tensor | tuple[torch.Tensor, ...] | None:
    if state is None:
        return None
    if isinstance(state, torch.Tensor):  # nn.GRU's and nn.RNN's h
        return state.float()
    return tuple(part.float() for part in state)  # nn.LSTM's (h, c)


class CudnnOutsideBf16Autocast:
    """For nn.LSTM, nn.GRU and nn.RNN on CUDA under bf16 autocast: run them in fp32 (TF32 on Ampere and newer).

    PyTorch's autocast wrapper for cuDNN's RNNs (_cudnn_rnn) casts inputs, weights and state to fp16 whatever
    dtype autocast was asked for: under bf16 the recurrent layers would run in fp16's narrow range with no loss
    scaling, and hand back an fp16 state."""

    def forward(self, inputs, state=None):
        device = inputs.data.device if isinstance(inputs, PackedSequence) else inputs.device
        if not (device.type == "cuda" and torch.is_autocast_enabled("cuda")
                and torch.get_autocast_dtype("cuda") == torch.bfloat16):
            return super().forward(inputs, state)
        with torch.autocast("cuda", enabled=False):
            return super().forward(inputs.float(), as_fp32(state))


class OneStateAsTuple:
    """For nn.GRU and nn.RNN, whose state is one tensor: it comes and goes as the one-tuple (h,)."""

    def forward(self, inputs: torch.Tensor | PackedSequence,
                state: State | None = None) -> tuple[torch.Tensor | PackedSequence, State]:
        outputs, h = super().forward(inputs, None if state is None else state[0])
        return outputs, (h,)


class FusedGRU(OneStateAsTuple, CudnnOutsideBf16Autocast, nn.GRU):
    pass


class FusedRNN(OneStateAsTuple, CudnnOutsideBf16Autocast, nn.RNN):
    pass


@torch.no_grad()
def set_forget_bias(rnn: nn.LSTM | ExplicitLSTM, value: float) -> None:
    """Set every layer's forget-gate bias: b_ih = value and b_hh = 0 on the forget rows, so the gate starts from
    σ(value + weights · inputs)."""
    gates = rnn.gates if isinstance(rnn, ExplicitLSTM) else LSTM_GATES
    first = gates.index("forget") * rnn.hidden_size
    for layer in range(rnn.num_layers):
        getattr(rnn, f"bias_ih_l{layer}")[first: first + rnn.hidden_size] = value
        getattr(rnn, f"bias_hh_l{layer}")[first: first + rnn.hidden_size] = 0.0

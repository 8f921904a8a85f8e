"""The trained model as one step function for other runtimes:

    forward(tokens (T, B) int64, *state) -> (log_probs (T, B, V) float32, *new_state)

in evaluation mode (no dropout), with log-probabilities over the whole vocabulary (the adaptive softmax's exact
ones too). The state is a few named tensors, the batch in dimension 1 of each (StateLayout):

    h, c            (num_layers, B, hidden)   LSTM cells whose layers all have one size (fused or run one by one)
    h               (num_layers, B, hidden)   gru, rnn_tanh, rnn_relu
    h_0, c_0, h_1 …  (1, B, size of layer l)   layers of different sizes (model.hidden_sizes): one tensor a layer

The fused cells (nn.LSTM, nn.GRU, nn.RNN) trace into one operation each, whatever T is. The written cells of
lstm_lm/model/cells.py loop over the time steps in Python, which tracing would unroll for the example's T (and the
torch.export-based ONNX exporter does that silently): here their loop runs as a TorchScript function instead, which
tracing keeps as a loop, an ONNX Loop in the exported graph.
"""

from __future__ import annotations

import copy
import functools
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..model.cells import CoupledLSTM, ExplicitLSTM, PeepholeLSTM, coupled_step, lstm_step, peephole_step
from ..model.language_model import LSTM_CELLS, LanguageModel, layer_sizes
from ..model.stack import LayerStack

# ---- the written cells' time loop, for torch.jit.script ------------------------------------------------------------
# input_gates (T, B, G·H) = W_ih x_t + b_ih + b_hh for every step; h and c (B, H) -> outputs (T, B, H), the last h, c.

def lstm_loop(input_gates: torch.Tensor, h: torch.Tensor, c: torch.Tensor, weight_hh: torch.Tensor,
              peephole: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    outputs = []
    for t in range(input_gates.size(0)):
        h, c = lstm_step(torch.addmm(input_gates[t], h, weight_hh.t()), c)
        outputs.append(h)
    return torch.stack(outputs), h, c


def peephole_loop(input_gates: torch.Tensor, h: torch.Tensor, c: torch.Tensor, weight_hh: torch.Tensor,
                  peephole: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    outputs = []
    for t in range(input_gates.size(0)):
        h, c = peephole_step(torch.addmm(input_gates[t], h, weight_hh.t()), c, peephole)
        outputs.append(h)
    return torch.stack(outputs), h, c


def coupled_loop(input_gates: torch.Tensor, h: torch.Tensor, c: torch.Tensor, weight_hh: torch.Tensor,
                 peephole: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    outputs = []
    for t in range(input_gates.size(0)):
        h, c = coupled_step(torch.addmm(input_gates[t], h, weight_hh.t()), c)
        outputs.append(h)
    return torch.stack(outputs), h, c


LOOPS = {ExplicitLSTM: lstm_loop, PeepholeLSTM: peephole_loop, CoupledLSTM: coupled_loop}


@functools.cache
def scripted(loop):
    with warnings.catch_warnings():  # torch 2.13 deprecates torch.jit.script; it is still what keeps a loop a loop
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(loop)


class WrittenLoop(nn.Module):
    """A written LSTM (lstm_lm/model/cells.py) computing what its forward computes on unpacked inputs in evaluation
    mode, with the time loop scripted. It holds the cell itself, so the parameters are the cell's."""

    def __init__(self, cell: ExplicitLSTM):
        super().__init__()
        if type(cell) not in LOOPS:
            raise UserError(f"cannot export the {type(cell).__name__} cell: lstm_lm/export/step_module.py has no "
                            f"scripted time loop for its step")
        self.cell = cell
        self.loop = scripted(LOOPS[type(cell)])

    def forward(self, inputs: torch.Tensor, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, tuple]:
        h0, c0 = state
        outputs, last_h, last_c = inputs, [], []
        for layer in range(self.cell.num_layers):  # no dropout between layers: evaluation
            weights = {name: getattr(self.cell, f"{name}_l{layer}")
                       for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
            bias = weights["bias_ih"] + weights["bias_hh"]
            input_gates = F.linear(outputs, weights["weight_ih"], bias)  # (T, B, G·H), one product for all steps
            peephole = (getattr(self.cell, f"peephole_l{layer}") if isinstance(self.cell, PeepholeLSTM)
                        else h0.new_zeros(0))  # the other loops ignore it
            outputs, h, c = self.loop(input_gates, h0[layer], c0[layer], weights["weight_hh"], peephole)
            last_h.append(h)
            last_c.append(c)
        return outputs, (torch.stack(last_h), torch.stack(last_c))


def exportable(rnn: nn.Module) -> nn.Module:
    """The recurrent layers with every written cell's loop scripted (changing `rnn`, a copy, in place)."""
    if isinstance(rnn, ExplicitLSTM):
        return WrittenLoop(rnn)
    if isinstance(rnn, LayerStack):
        rnn.layers = nn.ModuleList(exportable(layer) for layer in rnn.layers)
    return rnn


# ---- the state ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StateTensor:
    name: str  # the input's name; the output's is f"{name}_out"
    shape: tuple[int | None, ...]  # None: the batch, which each call chooses


@dataclass(frozen=True)
class StateLayout:
    """How the exported state maps to the model's own (lstm_lm/model/language_model.py `Hidden`): the same tensors
    for fused layers; for layers run one by one (lstm_lm/model/stack.py), their (1, B, H) parts stacked into one
    (num_layers, B, H) tensor each when the layers share a size, else passed through one by one."""

    tensors: tuple[StateTensor, ...]
    stacked: bool  # the model's state is one (1, B, H) part per layer and kind, stacked here into one per kind

    @classmethod
    def of(cls, model: LanguageModel) -> StateLayout:
        kinds = ("h", "c") if model.config.cell in LSTM_CELLS else ("h",)
        sizes = layer_sizes(model.config)
        by_layer = isinstance(model.rnn, LayerStack)
        if by_layer and len(set(sizes)) > 1:
            return cls(tuple(StateTensor(f"{kind}_{layer}", (1, None, size))
                             for layer, size in enumerate(sizes) for kind in kinds), stacked=False)
        return cls(tuple(StateTensor(kind, (len(sizes), None, sizes[0])) for kind in kinds), stacked=by_layer)

    def to_model(self, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        if not self.stacked:
            return tuple(state)
        layers = self.tensors[0].shape[0]
        return tuple(part[layer: layer + 1] for layer in range(layers) for part in state)

    def from_model(self, hidden: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        if not self.stacked:
            return tuple(hidden)
        kinds = len(self.tensors)
        return tuple(torch.cat(hidden[kind::kinds]) for kind in range(kinds))

    def zeros(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        return tuple(torch.zeros([batch_size if size is None else size for size in tensor.shape])
                     for tensor in self.tensors)


class StepModule(nn.Module):
    """forward(tokens (T, B) int64, *state) -> (log_probs (T, B, V) float32, *new_state); see the module's doc.
    It works on a copy of `model`, so the caller's model is left as it was."""

    def __init__(self, model: LanguageModel):
        super().__init__()
        self.layout = StateLayout.of(model)
        self.model = copy.deepcopy(model).float().cpu().eval()
        self.model.rnn = exportable(self.model.rnn)

    def inputs(self) -> list[dict[str, Any]]:
        """The step function's inputs in call order: name, shape ("time" and "batch" where each call chooses the
        size), dtype."""
        return [{"name": "tokens", "shape": ["time", "batch"], "dtype": "int64"},
                *({"name": tensor.name, "shape": self.state_shape(tensor), "dtype": "float32"}
                  for tensor in self.layout.tensors)]

    def outputs(self) -> list[dict[str, Any]]:
        """Its outputs, likewise: the log-probabilities, then the new state, each state tensor's name + "_out"."""
        return [{"name": "log_probs", "shape": ["time", "batch", self.model.vocab_size], "dtype": "float32"},
                *({"name": f"{tensor.name}_out", "shape": self.state_shape(tensor), "dtype": "float32"}
                  for tensor in self.layout.tensors)]

    @staticmethod
    def state_shape(tensor: StateTensor) -> list[int | str]:
        return [size if size is not None else "batch" for size in tensor.shape]

    def forward(self, tokens: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        output, hidden = self.model.rnn(self.model.embed(tokens), self.layout.to_model(state))  # (T, B, H)
        features = self.model.output_features(output)  # (T, B, D)
        log_probs = self.model.next_token_log_probs(features.flatten(0, 1))  # (T·B, V)
        vocab_size = self.model.vocab_size
        return (log_probs.view(tokens.size(0), tokens.size(1), vocab_size), *self.layout.from_model(hidden))

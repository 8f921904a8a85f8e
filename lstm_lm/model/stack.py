"""Recurrent layers run one at a time, for what a fused multi-layer module cannot do: a size per layer (the last
one sized to the embedding for tying), locked dropout between layers, and weight drop on each layer's
hidden-to-hidden matrix (AWD-LSTM). Each layer is itself a one-layer fused module (or a cell of lstm_lm/model/cells.py),
so the fast kernels still run the time loop.

The state is a flat tuple, layer after layer, of each layer's parts: (h_0, c_0, h_1, c_1, ...) for the LSTM cells,
(h_0, h_1, ...) for the others, each (1, B, H_layer). Like the fused modules' (num_layers, B, H) states, every
part has the batch in dimension 1, which is all that detaching, saving and slicing the state rely on.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils.rnn import PackedSequence

from .cells import State
from .regularization import weight_dropped


class LayerStack(nn.Module):
    def __init__(self, one_layer: Callable[[int, int], nn.Module], input_size: int, sizes: list[int],
                 state_parts: int, between: nn.Module, weight_drop: float):
        """`one_layer(input_size, size)` builds a layer; `between` is the dropout applied between layers."""
        super().__init__()
        inputs = [input_size, *sizes[:-1]]
        self.layers = nn.ModuleList(one_layer(size_in, size_out) for size_in, size_out in zip(inputs, sizes))
        self.sizes, self.state_parts, self.weight_drop = sizes, state_parts, weight_drop
        self.between = between

    def forward(self, inputs: torch.Tensor | PackedSequence,
                state: State | None = None) -> tuple[torch.Tensor | PackedSequence, State]:
        """(T, B, I) or packed -> the top layer's (T, B, H_last), packed alike, and the new state."""
        x, new_state = inputs, []
        for index, layer in enumerate(self.layers):
            parts = self.state_parts
            layer_state = None if state is None else tuple(state[index * parts: (index + 1) * parts])
            if self.training and self.weight_drop > 0:
                weights = weight_dropped(layer, self.weight_drop, contiguous=x.is_cuda)
                x, layer_state = functional_call(layer, weights, (x, layer_state))
            else:
                x, layer_state = layer(x, layer_state)
            new_state.extend(layer_state)
            # Packed inputs come only from evaluation (agreement scoring), where dropout leaves them alone.
            if index < len(self.layers) - 1 and not isinstance(x, PackedSequence):
                x = self.between(x)
        return x, tuple(new_state)

    def top_output(self, state: State) -> torch.Tensor:
        """(B, H_last): the top layer's h, its output at the last step."""
        return state[(len(self.layers) - 1) * self.state_parts][-1]

    def init_state(self, batch_size: int, like: torch.Tensor) -> State:
        return tuple(like.new_zeros(1, batch_size, size) for size in self.sizes for _ in range(self.state_parts))

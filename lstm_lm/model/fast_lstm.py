"""nn.LSTM that trains through the written loop of lstm_lm/kernels/cpu_lstm.py where that measured faster: CPU,
bf16 autocast, gradients wanted, unpacked inputs, layers of at least MIN_HIDDEN units at batches up to MAX_BATCH.
Smaller layers and larger batches, evaluation, fp32, packed sequences and CUDA run nn.LSTM's own kernel. The
timings behind the two limits are in docs/performance.md ("The written LSTM loop")."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from ..kernels.cpu_lstm import LSTMLayerFunction
from .cells import CudnnOutsideBf16Autocast
from .regularization import plain_dropout

# The written loop runs for layers of at least MIN_HIDDEN units at batches up to MAX_BATCH (see above).
MIN_HIDDEN = 600



MAX_BATCH = 24



class FastLSTM(CudnnOutsideBf16Autocast, nn.LSTM):
    """nn.LSTM (time-major, with biases, one direction) whose CPU bf16 training runs LSTMLayerFunction layer by
    layer, with nn.LSTM's dropout between layers (plain_dropout: one mask per element); on CUDA under bf16, cuDNN
    in fp32 (lstm_lm/model/cells.py)."""

    def forward(self, inputs: torch.Tensor | PackedSequence, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        if not self.uses_written_loop(inputs):
            return super().forward(inputs, state)
        dtype = torch.get_autocast_dtype("cpu")
        if state is None:
            zeros = inputs.new_zeros(self.num_layers, inputs.size(1), self.hidden_size, dtype=torch.float32)
            state = (zeros, zeros)
        x, last_h, last_c = inputs.to(dtype), [], []
        with torch.autocast("cpu", enabled=False):  # the function casts what it needs itself
            for layer in range(self.num_layers):
                if layer > 0:
                    x = plain_dropout(x, self.dropout, self.training)
                weights = [getattr(self, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih",
                                                                           "bias_hh")]
                x, h, c = LSTMLayerFunction.apply(x, state[0][layer].to(dtype), state[1][layer].float(), *weights)
                last_h.append(h)
                last_c.append(c)
        return x, (torch.stack(last_h), torch.stack(last_c))

    def uses_written_loop(self, inputs: torch.Tensor | PackedSequence) -> bool:
        return (not isinstance(inputs, PackedSequence) and inputs.device.type == "cpu" and torch.is_grad_enabled()
                and inputs.size(1) <= MAX_BATCH and self.hidden_size >= MIN_HIDDEN
                and torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
                and not self.batch_first and not self.bidirectional and self.bias and self.proj_size == 0)

"""The language model: embedding -> stacked LSTM -> dropout -> (projection) -> decoder, tied or not."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .data import IGNORE

Hidden = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (num_layers, B, hidden_size)


class LanguageModel(nn.Module):
    def __init__(self, config: ModelConfig, vocab_size: int):
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, config.embedding_size)
        self.dropout = nn.Dropout(config.dropout)
        # The fused module (cuDNN on GPU) applies the same dropout between its layers.
        self.rnn = nn.LSTM(config.embedding_size, config.hidden_size, config.num_layers,
                           dropout=config.dropout if config.num_layers > 1 else 0.0)
        needs_projection = config.tie_weights and config.hidden_size != config.embedding_size
        self.projection = nn.Linear(config.hidden_size, config.embedding_size) if needs_projection else None
        decoder_input = config.embedding_size if needs_projection else config.hidden_size
        self.decoder = nn.Linear(decoder_input, vocab_size)
        if config.init == "uniform":
            for parameter in self.parameters():
                nn.init.uniform_(parameter, -config.init_range, config.init_range)
        if config.tie_weights:
            self.decoder.weight = self.embedding.weight  # (V, E) serves both lookups and output scores

    def init_hidden(self, batch_size: int) -> Hidden:
        weight = self.decoder.weight
        shape = (self.config.num_layers, batch_size, self.config.hidden_size)
        return weight.new_zeros(shape), weight.new_zeros(shape)

    def forward(self, tokens: torch.Tensor, hidden: Hidden,
                targets: torch.Tensor | None = None) -> tuple[torch.Tensor, Hidden]:
        """tokens (T, B) -> logits (T, B, V), or, given targets (T, B), each target's negative log-likelihood
        (T, B), zero where the target is IGNORE. The new hidden state comes back either way."""
        embedded = self.dropout(self.embedding(tokens))  # (T, B, E)
        output, hidden = self.rnn(embedded, hidden)  # (T, B, H)
        output = self.dropout(output)
        if self.projection is not None:
            output = self.projection(output)  # (T, B, E)
        logits = self.decoder(output)  # (T, B, V)
        if targets is None:
            return logits, hidden
        losses = F.cross_entropy(logits.view(-1, self.vocab_size).float(), targets.reshape(-1),
                                 ignore_index=IGNORE, reduction="none")
        return losses.view_as(targets), hidden

    def parameter_count(self) -> int:
        return sum(parameter.numel() for parameter in self.parameters())  # a tied matrix is counted once


def detach_hidden(hidden: Hidden) -> Hidden:
    """Cut the graph between BPTT windows: the state carries over, its gradient history does not."""
    return tuple(state.detach() for state in hidden)

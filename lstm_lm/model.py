"""The language model: embedding -> stacked LSTM -> dropout -> (projection) -> decoder, tied or not.

The decoder is a full linear layer over the vocabulary or an adaptive softmax (`model.softmax`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .data import IGNORE
from .errors import ConfigError
from .softmax import AdaptiveSoftmax

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
        self.adaptive: AdaptiveSoftmax | None = None
        if config.softmax == "adaptive":
            try:
                self.adaptive = AdaptiveSoftmax(decoder_input, vocab_size, config.adaptive_cutoffs,
                                                config.adaptive_div_value,
                                                self.embedding if config.tie_weights else None)
            except ValueError as error:
                raise ConfigError(f"model.adaptive_cutoffs: {error}") from None
        else:
            self.decoder = nn.Linear(decoder_input, vocab_size)
        if config.init == "uniform":
            for parameter in self.parameters():
                nn.init.uniform_(parameter, -config.init_range, config.init_range)
        if config.tie_weights and self.adaptive is None:
            self.decoder.weight = self.embedding.weight  # (V, E) serves both lookups and output scores

    def init_hidden(self, batch_size: int) -> Hidden:
        weight = self.embedding.weight
        shape = (self.config.num_layers, batch_size, self.config.hidden_size)
        return weight.new_zeros(shape), weight.new_zeros(shape)

    def forward(self, tokens: torch.Tensor, hidden: Hidden,
                targets: torch.Tensor | None = None) -> tuple[torch.Tensor, Hidden]:
        """tokens (T, B) -> logits (T, B, V), or, given targets (T, B), each target's negative log-likelihood
        (T, B), zero where the target is IGNORE. The new hidden state comes back either way. With the adaptive
        softmax the "logits" are exact log-probabilities, which softmax and log_softmax leave unchanged."""
        embedded = self.dropout(self.embedding(tokens))  # (T, B, E)
        output, hidden = self.rnn(embedded, hidden)  # (T, B, H)
        output = self.dropout(output)
        if self.projection is not None:
            output = self.projection(output)  # (T, B, E)
        if self.adaptive is not None:
            return self.adaptive_output(output, targets), hidden
        logits = self.decoder(output)  # (T, B, V)
        if targets is None:
            return logits, hidden
        losses = F.cross_entropy(logits.view(-1, self.vocab_size).float(), targets.reshape(-1),
                                 ignore_index=IGNORE, reduction="none")
        return losses.view_as(targets), hidden

    def adaptive_output(self, output: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
        flat = output.reshape(-1, output.size(-1))  # (T * B, D)
        if targets is None:
            return self.adaptive.log_probs(flat).view(*output.shape[:2], -1)  # (T, B, V)
        wanted = targets.reshape(-1)
        ignored = wanted == IGNORE
        log_probs = self.adaptive.target_log_probs(flat, wanted.masked_fill(ignored, 0))
        return (-log_probs).masked_fill(ignored, 0.0).view_as(targets)

    def parameter_count(self) -> int:
        return sum(parameter.numel() for parameter in self.parameters())  # a tied matrix is counted once


def detach_hidden(hidden: Hidden) -> Hidden:
    """Cut the graph between BPTT windows: the state carries over, its gradient history does not."""
    return tuple(state.detach() for state in hidden)

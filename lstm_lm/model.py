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
        features = self.output_features(output)  # (T, B, D)
        if targets is None:
            if self.adaptive is not None:
                return self.next_token_log_probs(features.flatten(0, 1)).view(*tokens.shape, -1), hidden
            return self.decoder(features), hidden  # (T, B, V)
        wanted = targets.reshape(-1)
        ignored = wanted == IGNORE
        log_probs = self.target_log_probs(features.flatten(0, 1), wanted.masked_fill(ignored, 0))  # (T * B,)
        return (-log_probs).masked_fill(ignored, 0.0).view_as(targets), hidden

    # The output layer, in pieces that also serve callers holding LSTM outputs without a forward pass (packed
    # agreement scoring).

    def output_features(self, output: torch.Tensor) -> torch.Tensor:
        """Top-layer LSTM outputs (..., H) -> the decoder's input (..., D): dropout, then the tying projection."""
        output = self.dropout(output)
        return self.projection(output) if self.projection is not None else output

    def next_token_log_probs(self, features: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N, V) log-probabilities of every next token, in fp32."""
        if self.adaptive is not None:
            return self.adaptive.log_probs(features)
        return torch.log_softmax(self.decoder(features).float(), dim=-1)

    def target_log_probs(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(N, D), (N,) -> (N,) log p(target), without the full distribution where the adaptive softmax can."""
        if self.adaptive is not None:
            return self.adaptive.target_log_probs(features, targets)
        return -F.cross_entropy(self.decoder(features).float(), targets, reduction="none")

    def parameter_count(self) -> int:
        return sum(parameter.numel() for parameter in self.parameters())  # a tied matrix is counted once


def detach_hidden(hidden: Hidden) -> Hidden:
    """Cut the graph between BPTT windows: the state carries over, its gradient history does not."""
    return tuple(state.detach() for state in hidden)

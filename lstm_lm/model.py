"""The language model: embedding -> stacked recurrent layers -> dropout -> (projection) -> decoder, tied or not.

The recurrent cell is `model.cell` (lstm_lm/cells.py); the decoder is a full linear layer over the vocabulary or an
adaptive softmax (`model.softmax`)."""

from __future__ import annotations

import torch
from torch import nn

from .cells import CoupledLSTM, ExplicitLSTM, FusedGRU, FusedRNN, PeepholeLSTM, State, set_forget_bias
from .config import ModelConfig
from .data import IGNORE
from .errors import ConfigError
from .losses import token_nll
from .softmax import AdaptiveSoftmax

Hidden = State  # (h, c) for the LSTM cells, (h,) for the others; each (num_layers, B, hidden_size)
LSTM_CELLS = ("lstm", "lstm_explicit", "lstm_peephole", "lstm_coupled")
WRITTEN_CELLS = {"lstm_explicit": ExplicitLSTM, "lstm_peephole": PeepholeLSTM, "lstm_coupled": CoupledLSTM}


def recurrent_layers(config: ModelConfig) -> nn.Module:
    """The stacked layers of the cell `model.cell` names, (T, B, E) inputs -> (T, B, H) outputs."""
    sizes = (config.embedding_size, config.hidden_size, config.num_layers)
    dropout = config.dropout if config.num_layers > 1 else 0.0  # applied between layers only
    if config.cell == "lstm":
        return nn.LSTM(*sizes, dropout=dropout)  # fused; cuDNN on GPU
    if config.cell == "gru":
        return FusedGRU(*sizes, dropout=dropout)
    if config.cell in ("rnn_tanh", "rnn_relu"):
        return FusedRNN(*sizes, nonlinearity=config.cell.removeprefix("rnn_"), dropout=dropout)
    return WRITTEN_CELLS[config.cell](*sizes, dropout=dropout)


class LanguageModel(nn.Module):
    def __init__(self, config: ModelConfig, vocab_size: int):
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, config.embedding_size)
        self.dropout = nn.Dropout(config.dropout)
        self.rnn = recurrent_layers(config)  # applies the same dropout between its layers
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
        if config.forget_bias is not None:
            if config.cell not in LSTM_CELLS:
                raise ConfigError(f"model.forget_bias: the {config.cell} cell has no forget gate; leave it null")
            set_forget_bias(self.rnn, config.forget_bias)
        if config.tie_weights and self.adaptive is None:
            self.decoder.weight = self.embedding.weight  # (V, E) serves both lookups and output scores

    def init_hidden(self, batch_size: int) -> Hidden:
        weight = self.embedding.weight
        shape = (self.config.num_layers, batch_size, self.config.hidden_size)
        return tuple(weight.new_zeros(shape) for _ in range(2 if self.config.cell in LSTM_CELLS else 1))

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

    # The output layer, in pieces that also serve callers holding recurrent outputs without a forward pass (packed
    # agreement scoring).

    def output_features(self, output: torch.Tensor) -> torch.Tensor:
        """Top-layer recurrent outputs (..., H) -> the decoder's input (..., D): dropout, then the tying projection."""
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
        return -token_nll(self.decoder(features), targets)  # the (N, V) logits stay in autocast's dtype

    def parameter_count(self) -> int:
        return sum(parameter.numel() for parameter in self.parameters())  # a tied matrix is counted once


def detach_hidden(hidden: Hidden) -> Hidden:
    """Cut the graph between BPTT windows: the state carries over, its gradient history does not."""
    return tuple(state.detach() for state in hidden)

"""The language model: embedding -> stacked recurrent layers -> dropout -> (projection) -> decoder, tied or not.

The recurrent cell is `model.cell` (lstm_lm/model/cells.py); the decoder is a full linear layer over the vocabulary or an
adaptive softmax (`model.softmax`). Dropout is plain (`model.dropout`, a new mask at every step) or, where
`model.dropout_input/hidden/output` are set, locked, with embedding dropout and weight drop beside it
(lstm_lm/model/regularization.py); locked dropout between layers, weight drop and per-layer sizes run the layers one by
one (lstm_lm/model/stack.py)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from ..errors import ConfigError
from ..kernels.losses import decoder_nll
from ..targets import IGNORE
from .cells import CoupledLSTM, ExplicitLSTM, FusedGRU, FusedRNN, PeepholeLSTM, State, set_forget_bias
from .fast_lstm import FastLSTM
from .regularization import LockedDropout, PlainDropout, embedding_dropout
from .softmax import AdaptiveSoftmax
from .stack import LayerStack

# (h, c) for the LSTM cells, (h,) for the others; each (num_layers, B, hidden_size), or, run layer by layer,
# each layer's parts in turn, each (1, B, its size) (lstm_lm/model/stack.py)
Hidden = State
LSTM_CELLS = ("lstm", "lstm_explicit", "lstm_peephole", "lstm_coupled")
WRITTEN_CELLS = {"lstm_explicit": ExplicitLSTM, "lstm_peephole": PeepholeLSTM, "lstm_coupled": CoupledLSTM}


def layer_sizes(config: ModelConfig) -> list[int]:
    if not config.hidden_sizes:
        return [config.hidden_size] * config.num_layers
    if len(config.hidden_sizes) != config.num_layers:
        raise ConfigError(f"model.hidden_sizes: {len(config.hidden_sizes)} sizes for model.num_layers = "
                          f"{config.num_layers} layers; give one size per layer")
    return config.hidden_sizes


def runs_layer_by_layer(config: ModelConfig) -> bool:
    """Per-layer sizes, locked dropout between layers and weight drop need the layers run one at a time
    (a locked dropout of 0 between layers is no dropout, which the fused module does)."""
    return bool(config.hidden_sizes) or bool(config.dropout_hidden) or config.weight_drop > 0


def fused_layers(cell: str, input_size: int, hidden_size: int, num_layers: int, dropout: float) -> nn.Module:
    """The stacked layers of `cell` as one module, (T, B, I) inputs -> (T, B, H) outputs."""
    sizes = (input_size, hidden_size, num_layers)
    dropout = dropout if num_layers > 1 else 0.0  # applied between layers only
    if cell == "lstm":
        return FastLSTM(*sizes, dropout=dropout)  # nn.LSTM: cuDNN on GPU, its own loop for CPU bf16 training
    if cell == "gru":
        return FusedGRU(*sizes, dropout=dropout)
    if cell in ("rnn_tanh", "rnn_relu"):
        return FusedRNN(*sizes, nonlinearity=cell.removeprefix("rnn_"), dropout=dropout)
    return WRITTEN_CELLS[cell](*sizes, dropout=dropout)


def recurrent_layers(config: ModelConfig) -> nn.Module:
    """The stacked layers of the cell `model.cell` names, (T, B, E) inputs -> (T, B, H_last) outputs."""
    sizes = layer_sizes(config)
    if not runs_layer_by_layer(config):
        between = config.dropout if config.dropout_hidden is None else config.dropout_hidden
        return fused_layers(config.cell, config.embedding_size, sizes[0], config.num_layers, between)
    return LayerStack(lambda size_in, size_out: fused_layers(config.cell, size_in, size_out, 1, 0.0),
                      config.embedding_size, sizes, state_parts=2 if config.cell in LSTM_CELLS else 1,
                      between=dropout_module(config.dropout_hidden, config.dropout), weight_drop=config.weight_drop)


def dropout_module(locked_p: float | None, plain_p: float) -> nn.Module:
    """Locked dropout where its option is set, else plain dropout with `model.dropout`."""
    return LockedDropout(locked_p) if locked_p is not None else PlainDropout(plain_p)


class LanguageModel(nn.Module):
    def __init__(self, config: ModelConfig, vocab_size: int):
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, config.embedding_size)
        self.input_dropout = dropout_module(config.dropout_input, config.dropout)
        self.rnn = recurrent_layers(config)  # applies its own dropout between layers
        self.output_dropout = dropout_module(config.dropout_output, config.dropout)
        top_size = layer_sizes(config)[-1]
        needs_projection = config.tie_weights and top_size != config.embedding_size
        self.projection = nn.Linear(top_size, config.embedding_size) if needs_projection else None
        decoder_input = config.embedding_size if needs_projection else top_size
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
            for layers in self.rnn.layers if isinstance(self.rnn, LayerStack) else [self.rnn]:
                set_forget_bias(layers, config.forget_bias)
        if config.tie_weights and self.adaptive is None:
            self.decoder.weight = self.embedding.weight  # (V, E) serves both lookups and output scores

    def init_hidden(self, batch_size: int) -> Hidden:
        weight = self.embedding.weight
        if isinstance(self.rnn, LayerStack):
            return self.rnn.init_state(batch_size, weight)
        shape = (self.config.num_layers, batch_size, self.config.hidden_size)
        return tuple(weight.new_zeros(shape) for _ in range(2 if self.config.cell in LSTM_CELLS else 1))

    def top_output(self, hidden: Hidden) -> torch.Tensor:
        """(B, H): the top layer's output at the last step, read from the state the recurrent layers returned."""
        return self.rnn.top_output(hidden) if isinstance(self.rnn, LayerStack) else hidden[0][-1]

    def forward(self, tokens: torch.Tensor, hidden: Hidden, targets: torch.Tensor | None = None,
                activations: bool = False) -> tuple[torch.Tensor, ...]:
        """tokens (T, B) -> logits (T, B, V), or, given targets (T, B), each target's negative log-likelihood
        (T, B), zero where the target is IGNORE. The new hidden state comes back either way. With the adaptive
        softmax the "logits" are exact log-probabilities, which softmax and log_softmax leave unchanged.
        With `activations` (and targets) a third item follows for AR/TAR: the top layer's outputs (T, B, H)
        before and after their dropout."""
        output, hidden = self.rnn(self.embed(tokens), hidden)  # (T, B, H)
        dropped = self.output_dropout(output)
        features = self.project(dropped)  # (T, B, D)
        if targets is None:
            if self.adaptive is not None:
                return self.next_token_log_probs(features.flatten(0, 1)).view(*tokens.shape, -1), hidden
            return self.decoder(features), hidden  # (T, B, V)
        wanted = targets.reshape(-1)
        ignored = wanted == IGNORE
        log_probs = self.target_log_probs(features.flatten(0, 1), wanted.masked_fill(ignored, 0))  # (T * B,)
        losses = (-log_probs).masked_fill(ignored, 0.0).view_as(targets)
        return (losses, hidden, (output, dropped)) if activations else (losses, hidden)

    # The input and output layers, in pieces that also serve callers that run the recurrent layers themselves
    # (packed agreement scoring).

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (...) -> the recurrent layers' input (..., E): embedding dropout, then input dropout."""
        embedded = embedding_dropout(self.embedding(tokens), tokens, self.vocab_size, self.config.dropout_embedding,
                                     self.training)
        return self.input_dropout(embedded)

    def output_features(self, output: torch.Tensor) -> torch.Tensor:
        """Top-layer recurrent outputs (..., H) -> the decoder's input (..., D): dropout, then the tying projection."""
        return self.project(self.output_dropout(output))

    def project(self, output: torch.Tensor) -> torch.Tensor:
        """(..., H) -> (..., D): the projection to the embedding size that tying needs, where there is one."""
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
        return -decoder_nll(features, self.decoder.weight, self.decoder.bias, targets)

    def parameter_count(self) -> int:
        return sum(parameter.numel() for parameter in self.parameters())  # a tied matrix is counted once


def detach_hidden(hidden: Hidden, dtype: torch.dtype) -> Hidden:
    """Cut the graph between BPTT windows: the state carries over, its gradient history does not. It carries over
    in `dtype`, the weights' (fp32): under autocast a written cell's state comes out in bf16 or fp16, which would
    round again at every window, and a checkpoint of such a run, resumed at another precision or on another
    device, would fail its first step (oneDNN's fp32 LSTM refuses an fp16 state)."""
    return tuple(state.detach().to(dtype) for state in hidden)

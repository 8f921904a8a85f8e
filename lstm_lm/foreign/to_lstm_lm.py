"""An imported RNNModel as lstm-lm's LanguageModel: the `model` section of its config and its state dict.

The two compute the same function. lstm-lm's model is embedding -> dropout -> stacked fused recurrent layers (with
dropout between them) -> dropout -> linear decoder with a bias, tied or not, which is the example's RNNModel layer
for layer; its `lstm` cell is nn.LSTM, `gru` nn.GRU, `rnn_tanh` and `rnn_relu` nn.RNN, so the recurrent weights keep
their names and gate order. Tied with hidden_size == embedding_size (the example's own condition for tying),
lstm-lm adds no projection. Only the top-level names differ: encoder -> embedding.
"""

from __future__ import annotations

from typing import Any

import torch

from .pytorch_example import ExampleModel

RENAMED = {"encoder.weight": "embedding.weight"}


def model_section(model: ExampleModel) -> dict[str, Any]:
    """The `model.*` config values of the same network; every key not here keeps its default (full softmax,
    plain dropout only, fused layers, no per-layer sizes). `init` is moot: the weights are loaded over it."""
    return {"cell": model.cell, "embedding_size": model.embedding_size, "hidden_size": model.hidden_size,
            "num_layers": model.num_layers, "tie_weights": model.tied, "dropout": model.dropout,
            "softmax": "full"}


def state_dict(model: ExampleModel) -> dict[str, torch.Tensor]:
    """The weights under lstm-lm's names, for `LanguageModel(config, vocab_size).load_state_dict(..., strict=True)`.
    Tied, embedding.weight and decoder.weight are the one tensor, as the model's own state dict has them."""
    return {RENAMED.get(name, name): tensor for name, tensor in model.weights.items()}

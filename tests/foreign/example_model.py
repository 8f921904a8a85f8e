"""A model with the structure and attribute names of word_language_model's RNNModel (pytorch/examples, and
colorlessgreenRNNs' copy), written for these tests: what a checkpoint of the example pickles, without its code."""

from __future__ import annotations

import torch
from torch import nn

# the example's --model names -> (the torch module, its nonlinearity)
RNN_TYPES = {"LSTM": (nn.LSTM, None), "GRU": (nn.GRU, None), "RNN_TANH": (nn.RNN, "tanh"),
             "RNN_RELU": (nn.RNN, "relu")}


class RNNModel(nn.Module):
    def __init__(self, rnn_type: str, ntoken: int, ninp: int, nhid: int, nlayers: int, dropout: float = 0.2,
                 tie_weights: bool = False):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        module, nonlinearity = RNN_TYPES[rnn_type]
        extra = {} if nonlinearity is None else {"nonlinearity": nonlinearity}
        self.rnn = module(ninp, nhid, nlayers, dropout=dropout, **extra)
        self.decoder = nn.Linear(nhid, ntoken)
        nn.init.normal_(self.decoder.bias)  # the example starts it at zero; trained, it is not
        if tie_weights:
            self.decoder.weight = self.encoder.weight  # one Parameter, pickled once, referred to twice
        self.rnn_type, self.nhid, self.nlayers, self.ntoken = rnn_type, nhid, nlayers, ntoken

    def init_hidden(self, batch: int):
        zeros = torch.zeros(self.nlayers, batch, self.nhid)
        return (zeros, zeros.clone()) if self.rnn_type == "LSTM" else zeros

    def forward(self, tokens: torch.Tensor, hidden):
        """(T, B) -> log-probabilities (T·B, V), as the example returns them, and the new hidden state."""
        output, hidden = self.rnn(self.drop(self.encoder(tokens)), hidden)
        logits = self.decoder(self.drop(output))
        return torch.log_softmax(logits.view(-1, self.ntoken), dim=1), hidden

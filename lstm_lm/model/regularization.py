"""The regularizers of AWD-LSTM (Merity, Keskar & Socher 2018), each a small function of tensors.

- locked (variational) dropout (Gal & Ghahramani 2016): one mask per sequence, the same at every time step;
- embedding dropout: a word dropped from the embedding matrix is dropped at all of its occurrences in the batch;
- weight drop (DropConnect, Wan et al. 2013) on the hidden-to-hidden matrices, a new mask each forward pass;
- activation regularization (AR) and temporal activation regularization (TAR) on the last layer's outputs.

Every dropout rescales what it keeps by 1 / (1 - p), so evaluation uses the weights and activations as they are.
"""

from __future__ import annotations

import math
import sys

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence


def keep_mask(shape: tuple[int, ...] | torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """A bool mask, True with probability 1 - p (to within 1/65,536). Drawn as 16-bit integers, three from each
    64-bit number of the generator (whose top bit is always 0): on the CPU 0.5 ms for 455k elements, against 1.7 ms
    for `rand >= p` and 4.9 for the bernoulli_ that F.dropout draws with."""
    count = math.prod(shape)
    draws = torch.empty(-(-count // 3), dtype=torch.int64, device=device).random_()
    random_bits = slice(0, 3) if sys.byteorder == "little" else slice(1, 4)  # the 16-bit parts below the top one
    chunks = draws.view(torch.int16).view(-1, 4)[:, random_bits]
    return (chunks >= -32768 + round(p * 65536)).view(-1)[:count].view(shape)


def masked(x: torch.Tensor, keep: torch.Tensor, p: float) -> torch.Tensor:
    """x with the elements `keep` drops zeroed and the rest scaled by 1/(1-p), in x's dtype (bf16 rounds once)."""
    return x * keep * (1.0 / (1.0 - p))


def plain_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout with a new mask for every element, as F.dropout draws it. On the CPU the mask comes from keep_mask
    (F.dropout's bernoulli_ took 9% of a PTB-medium bf16 step at batch 20); CUDA keeps F.dropout's fused kernel."""
    if not training or p == 0:
        return x
    if x.is_cuda:
        return F.dropout(x, p, training=True)
    if p == 1:
        return torch.zeros_like(x)  # as F.dropout gives; the scale would divide by zero
    return masked(x, keep_mask(x.shape, p, x.device), p)


class PlainDropout(nn.Dropout):
    """nn.Dropout whose masks come from plain_dropout."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return plain_dropout(x, self.p, self.training)


class LockedDropout(nn.Module):
    """(T, B, F) -> (T, B, F) with one (1, B, F) mask for every time step. Standing between recurrent layers it
    drops the same units all along a sequence, as the variational RNN does, instead of new ones at each step."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor | PackedSequence) -> torch.Tensor | PackedSequence:
        if not self.training or self.p == 0:
            return x  # packed sequences only come here in evaluation (agreement scoring)
        return masked(x, keep_mask((1, x.size(1), x.size(2)), self.p, x.device), self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def embedding_dropout(embedded: torch.Tensor, tokens: torch.Tensor, vocab_size: int, p: float,
                      training: bool) -> torch.Tensor:
    """Drop whole words: `embedded` (T, B, E) looked up from `tokens` (T, B). A word's row of the embedding matrix
    is zeroed with probability p, so all of its occurrences in the batch lose it; kept rows are scaled by 1/(1-p).
    Masking the looked-up vectors by their word's draw equals masking the (V, E) matrix, at (T·B) cost, not V·E."""
    if not training or p == 0:
        return embedded
    row_mask = keep_mask((vocab_size,), p, embedded.device)  # (V,)
    return masked(embedded, row_mask[tokens].unsqueeze(-1), p)


def is_recurrent_matrix(name: str) -> bool:
    """The hidden-to-hidden weights, in nn.LSTM/GRU/RNN's names and in lstm_lm/model/cells.py's."""
    return name.startswith("weight_hh")


def weight_dropped(layer: nn.Module, p: float, contiguous: bool) -> dict[str, torch.Tensor]:
    """The layer's parameters with DropConnect on the hidden-to-hidden matrices: a dict for
    torch.func.functional_call that leaves the layer's own parameters (what the optimizer updates) untouched.

    With `contiguous`, every weight is a view into one fresh buffer in the layer's parameter order, the layout
    cuDNN's fused kernel reads without copying or warning; the classic implementation replaced the parameter
    itself and broke that layout. On the CPU the separate tensors cost nothing, so the copy is left out there."""
    weights = {name: masked(weight, keep_mask(weight.shape, p, weight.device), p)
               if is_recurrent_matrix(name) else weight
               for name, weight in layer.named_parameters()}
    if not contiguous:
        return weights
    flat = torch.cat([weight.reshape(-1) for weight in weights.values()])
    views, start = {}, 0
    for name, weight in weights.items():
        views[name] = flat[start: start + weight.numel()].view_as(weight)
        start += weight.numel()
    return views


def activation_penalty(raw: torch.Tensor, dropped: torch.Tensor, ar_alpha: float, tar_beta: float) -> torch.Tensor:
    """AR + TAR on the last layer's outputs (T, B, H): alpha · mean(dropped²) keeps the activations small, and
    beta · mean((raw_t − raw_{t−1})²) keeps them from jumping between steps. AR reads the outputs after their
    dropout, TAR before it, as AWD-LSTM does."""
    penalty = raw.new_zeros((), dtype=torch.float32)
    if ar_alpha:
        penalty = penalty + ar_alpha * dropped.float().pow(2).mean()
    if tar_beta and raw.size(0) > 1:
        penalty = penalty + tar_beta * (raw[1:] - raw[:-1]).float().pow(2).mean()
    return penalty

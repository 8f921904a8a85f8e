"""Adaptive softmax (Grave et al. 2017) with weight tying: exact log-probabilities at a fraction of the cost.

The vocabulary, sorted by frequency (as the word tokenizer sorts it), is cut at `cutoffs` into a shortlist and
tail clusters. The head scores the shortlist plus one logit per cluster; a token in cluster i gets
log p(cluster i) + log p(token | cluster i), the latter from a projection to hidden / div_value**(i+1) units.
Training touches a tail only for the targets that fall in it, so most tokens cost one small head softmax.

Tying: the shortlist rows of the head are the embedding's rows; a tail's output rows are tied too when its
projection keeps the embedding size (div_value 1). Elsewhere the sizes differ and the weights are the tail's own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..kernels.losses import decoder_nll

# The number of targets falling in a tail changes every step. Padding the rows sent to a tail up to a multiple of
# this keeps the set of matrix shapes small: on CPU, oneDNN compiles a kernel per new shape (tens of milliseconds
# under bf16) and caches it, so with exact counts a run keeps compiling.
TAIL_ROW_BUCKET = 64


def tail_width(in_features: int, div_value: float, cluster: int) -> int:
    """Units of tail cluster `cluster`'s projection (0 is the first tail): in_features / div_value**(cluster + 1)."""
    return max(1, int(in_features // div_value ** (cluster + 1)))


class AdaptiveSoftmax(nn.Module):
    def __init__(self, in_features: int, vocab_size: int, cutoffs: list[int], div_value: float,
                 tied_embedding: nn.Embedding | None = None):
        super().__init__()
        if not cutoffs or sorted(set(cutoffs)) != list(cutoffs) or cutoffs[0] <= 0 or cutoffs[-1] >= vocab_size:
            raise ValueError(f"cutoffs {cutoffs} must increase strictly between 0 and the vocabulary size "
                             f"{vocab_size}")
        self.bounds = [0, *cutoffs, vocab_size]
        self.shortlist = cutoffs[0]
        self.clusters = len(cutoffs)
        self.tied = tied_embedding
        if tied_embedding is None:
            self.head_weight = nn.Parameter(torch.empty(self.shortlist, in_features).uniform_(-0.1, 0.1))
        self.head_bias = nn.Parameter(torch.zeros(self.shortlist))
        self.cluster_logits = nn.Linear(in_features, self.clusters)
        self.projections = nn.ModuleList()
        self.tail_weights = nn.ParameterList()
        self.tail_biases = nn.ParameterList()
        self.tail_tied: list[bool] = []
        for i in range(self.clusters):
            size = self.bounds[i + 2] - self.bounds[i + 1]
            dim = tail_width(in_features, div_value, i)
            self.projections.append(nn.Linear(in_features, dim, bias=False))
            tied = tied_embedding is not None and dim == in_features
            self.tail_tied.append(tied)
            # An untied tail owns its rows; a tied one reads the embedding's (an empty placeholder keeps indices).
            self.tail_weights.append(nn.Parameter(torch.empty(0 if tied else size, dim).uniform_(-0.1, 0.1)))
            self.tail_biases.append(nn.Parameter(torch.zeros(size)))

    def head_rows(self) -> torch.Tensor:
        return self.tied.weight[: self.shortlist] if self.tied is not None else self.head_weight

    def tail_rows(self, i: int) -> torch.Tensor:
        if self.tail_tied[i]:
            return self.tied.weight[self.bounds[i + 1]: self.bounds[i + 2]]
        return self.tail_weights[i]

    def head_log_probs(self, hidden: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N, shortlist + clusters) log-probabilities of the shortlist tokens and of each cluster."""
        shortlist = F.linear(hidden, self.head_rows(), self.head_bias)
        return torch.log_softmax(torch.cat([shortlist, self.cluster_logits(hidden)], dim=-1).float(), dim=-1)

    def tail_log_probs(self, hidden: torch.Tensor, i: int) -> torch.Tensor:
        """(N, D) -> (N, size of cluster i): log p(token | cluster i)."""
        logits = F.linear(self.projections[i](hidden), self.tail_rows(i), self.tail_biases[i])
        return torch.log_softmax(logits.float(), dim=-1)

    def log_probs(self, hidden: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N, V): the full, exact log-distribution (for sampling and scoring)."""
        head = self.head_log_probs(hidden)
        parts = [head[:, : self.shortlist]]
        for i in range(self.clusters):
            parts.append(head[:, self.shortlist + i: self.shortlist + i + 1] + self.tail_log_probs(hidden, i))
        return torch.cat(parts, dim=-1)

    def target_log_probs(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(N, D), (N,) -> (N,): log p(target), computing each tail only for the rows whose target is in it.
        Head and tails each run as one decoder_nll step (lstm_lm/kernels/losses.py): the head's target is the token
        itself or its cluster's row."""
        head_targets = targets.clone()
        for i in range(self.clusters):
            head_targets[targets >= self.bounds[i + 1]] = self.shortlist + i
        head_weight = torch.cat([self.head_rows(), self.cluster_logits.weight])  # (shortlist + clusters, D)
        head_bias = torch.cat([self.head_bias, self.cluster_logits.bias])
        result = -decoder_nll(hidden, head_weight, head_bias, head_targets)
        for i in range(self.clusters):
            low, high = self.bounds[i + 1], self.bounds[i + 2]
            rows = ((targets >= low) & (targets < high)).nonzero().squeeze(1)
            if rows.numel() == 0:
                continue
            count = rows.numel()
            padded = torch.cat([rows, rows[:1].expand(-count % TAIL_ROW_BUCKET)])  # repeats of the first row
            within = -decoder_nll(self.projections[i](hidden[padded]), self.tail_rows(i), self.tail_biases[i],
                                  targets[padded] - low)[:count]  # the repeats dropped: no gradient from them
            result = result.index_put((rows,), result[rows] + within)
        return result

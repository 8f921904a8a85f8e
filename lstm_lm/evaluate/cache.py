"""The neural cache (Grave, Joulin & Usunier 2017, "Improving Neural Language Models with a Continuous Cache").

The text is read as one stream. At each position t the model's top layer gives h_t, which predicts the next
token w_{t+1}. The cache holds the last `window` pairs (h_i, w_{i+1}) before t, and puts on each next token the
mass its positions get from a softmax of θ·h_t·h_i:

    p_cache(w) = Σ_{i in window, w_{i+1} = w} exp(θ h_t·h_i) / Σ_{i in window} exp(θ h_t·h_i)
    p(w)       = (1 − λ) p_model(w) + λ p_cache(w)

Only the target's probability is ever needed, so neither distribution is built over the vocabulary. Where the
cache is still empty (the first position) p is p_model.

A pass of the model over the text (`Stream`: each target's log p_model and the h that predicted it) is kept, so
every (θ, λ) of a search costs products against the window, not another pass of the model.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from ..hardware.precision import autocast
from ..model.language_model import LanguageModel

# Positions scored against the window at a time: a (rows, rows + window) block of scores per θ.
ROWS_PER_BLOCK = 512


@dataclass
class Stream:
    """One pass of a model over a text read as one stream, position by position."""

    log_probs: torch.Tensor  # (N,) fp32: log p_model(target) at each position
    hidden: torch.Tensor  # (N, H) fp32: the top layer's output that predicted that target
    targets: torch.Tensor  # (N,) int64: the token that followed
    seconds: float  # the pass's wall time

    @property
    def loss(self) -> float:
        return -float(self.log_probs.sum(dtype=torch.float64)) / self.log_probs.numel()


@torch.inference_mode()
def read_stream(model: LanguageModel, inputs: torch.Tensor, targets: torch.Tensor, bptt: int,
                device: torch.device, dtype: torch.dtype | None = None) -> Stream:
    """Score one stream, inputs and targets (L, 1) as evaluation_layout lays them out with batch 1, window by
    window with the state carried, keeping each position's log p_model(target) and top-layer output."""
    started = time.perf_counter()
    was_training = model.training
    model.eval()
    hidden = model.init_hidden(1)
    inputs, targets = inputs.to(device), targets.to(device)
    log_probs, outputs = [], []
    for row in range(0, inputs.size(0), bptt):
        with autocast(device, dtype):
            losses, hidden, (output, _) = model(inputs[row: row + bptt], hidden, targets[row: row + bptt],
                                                activations=True)  # (T, 1), (T, 1, H)
        log_probs.append(-losses[:, 0].float())
        outputs.append(output[:, 0].float())
    model.train(was_training)
    return Stream(torch.cat(log_probs).cpu(), torch.cat(outputs).cpu(), targets[:, 0].cpu(),
                  time.perf_counter() - started)


def cache_log_probs(hidden: torch.Tensor, targets: torch.Tensor, window: int,
                    thetas: list[float]) -> torch.Tensor:
    """(len(thetas), N) log p_cache(target) at each position for each θ; -inf where the target is not in the
    window, and where the window is empty (position 0). fp32 products and softmax, fp64 logs."""
    count = targets.numel()
    result = torch.full((len(thetas), count), -math.inf, dtype=torch.float64)
    for start in range(1, count, ROWS_PER_BLOCK):
        stop = min(count, start + ROWS_PER_BLOCK)
        first = max(0, start - window)  # the oldest position any row of the block looks back to
        scores = hidden[start:stop] @ hidden[first:stop - 1].t()  # (rows, keys): h_t · h_i
        rows = torch.arange(start, stop).unsqueeze(1)
        keys = torch.arange(first, stop - 1).unsqueeze(0)
        outside = (keys >= rows) | (keys < rows - window)  # i must lie in [t − window, t − 1]
        same = targets[first:stop - 1].unsqueeze(0) == targets[start:stop].unsqueeze(1)  # w_{i+1} = w_{t+1}
        for k, theta in enumerate(thetas):
            logits = (theta * scores).masked_fill(outside, -math.inf)
            weights = torch.exp(logits - logits.max(dim=1, keepdim=True).values)  # every row has a key: t ≥ 1
            mass = (weights * same).sum(dim=1) / weights.sum(dim=1)
            result[k, start:stop] = mass.double().log()
    return result


def mixed_log_probs(log_probs: torch.Tensor, cache: torch.Tensor, lam: float) -> torch.Tensor:
    """log((1 − λ) p_model + λ p_cache) in fp64, position by position; at position 0 (no cache yet) log p_model.
    λ = 0 gives log p_model exactly, λ = 1 the cache alone."""
    model_part = log_probs.double() + (math.log1p(-lam) if lam < 1 else -math.inf)
    cache_part = cache + (math.log(lam) if lam > 0 else -math.inf)
    mixed = torch.logaddexp(model_part, cache_part)
    mixed[0] = log_probs[0].double()
    return mixed


def cache_losses(stream: Stream, window: int, thetas: list[float],
                 lambdas: list[float]) -> dict[tuple[float, float], float]:
    """Mean loss (nats per token) of the cache mixture for every (θ, λ), from one pass of the model."""
    cache = cache_log_probs(stream.hidden, stream.targets, window, thetas)
    return {(theta, lam): -float(mixed_log_probs(stream.log_probs, cache[k], lam).sum()) / stream.targets.numel()
            for k, theta in enumerate(thetas) for lam in lambdas}

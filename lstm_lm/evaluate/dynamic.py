"""Dynamic evaluation (Krause, Kahembwe, Murray & Renals 2018, "Dynamic Evaluation of Neural Sequence Models"),
their RMS variant: the weights adapt to the text as it is read.

The text is read as one stream, cut into segments of `segment` tokens. Each segment is first scored with the
weights as they are (that score is what counts), then its mean loss L_s gives one step

    θ ← θ − η ∇L_s / (RMS + ε) + λ · r ⊙ (θ_trained − θ),     r = min(RMS / mean(RMS), 1 / λ)

RMS is the root mean square of each weight's gradient on training text, measured beforehand
(`gradient_rms`: minibatches of TRAIN_COLUMNS columns × `segment` tokens, dropout off, as Krause et al. do);
the step is RMSprop-like with these fixed statistics, and the decay pulls each weight back toward its trained
value at a rate proportional to its RMS (mean(RMS) is over every weight; r is capped so that no weight is pulled
past its trained value). The state carries from segment to segment, detached.

The model's weights change during a pass and are put back afterwards: a caller's model (and the run directory,
never written) is the same after as before.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..data.batches import batchify, bptt_windows
from ..hardware.precision import autocast
from ..model.language_model import LanguageModel, detach_hidden
from .cache import Stream

TRAIN_COLUMNS = 100  # the minibatch of the gradient statistics: Krause et al.'s 100 sequences
EPSILON = 2e-5  # their ε


@dataclass(frozen=True)
class DynamicSettings:
    lr: float  # η
    decay: float  # λ
    segment: int  # tokens per update

    def as_dict(self) -> dict[str, float]:
        return {"dynamic_lr": self.lr, "dynamic_decay": self.decay, "dynamic_segment": self.segment}


def gradient_rms(model: LanguageModel, train_ids: torch.Tensor, segment: int, max_tokens: int,
                 device: torch.device, dtype: torch.dtype | None = None) -> tuple[list[torch.Tensor], int]:
    """sqrt(mean over minibatches of (∇ mean loss)²) for each parameter, from about `max_tokens` tokens of
    training text laid out as TRAIN_COLUMNS columns (fewer for a short text) read `segment` tokens at a time;
    and the number of tokens read."""
    was_training = model.training
    model.eval()
    columns = max(1, min(TRAIN_COLUMNS, (train_ids.numel() - 1) // (segment + 1)))
    source = batchify(train_ids, columns).to(device)
    parameters = list(model.parameters())
    squares = [torch.zeros_like(p) for p in parameters]
    hidden, batches, tokens = model.init_hidden(columns), 0, 0
    for _, inputs, targets in bptt_windows(source, segment):
        if tokens >= max_tokens:
            break
        model.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            losses, hidden = model(inputs, hidden, targets)
        losses.mean().backward()
        hidden = detach_hidden(hidden, torch.float32)
        for square, parameter in zip(squares, parameters):
            if parameter.grad is not None:
                square.addcmul_(parameter.grad, parameter.grad)
        batches, tokens = batches + 1, tokens + targets.numel()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return [(square / max(batches, 1)).sqrt_() for square in squares], tokens


class DynamicEvaluator:
    """The update rule's fixed parts for one model: its trained weights and each weight's step and decay scale."""

    def __init__(self, model: LanguageModel, rms: list[torch.Tensor]):
        self.model = model
        self.parameters = list(model.parameters())
        self.trained = [p.detach().clone() for p in self.parameters]
        self.rms = rms
        total = sum(r.numel() for r in rms)
        self.mean_rms = float(sum(r.sum(dtype=torch.float64) for r in rms)) / max(total, 1)

    @torch.no_grad()
    def restore(self) -> None:
        for parameter, trained in zip(self.parameters, self.trained):
            parameter.copy_(trained)

    def read(self, inputs: torch.Tensor, targets: torch.Tensor, settings: DynamicSettings, device: torch.device,
             dtype: torch.dtype | None = None, limit: int | None = None, keep_hidden: bool = True) -> Stream:
        """Score one stream, (L, 1) inputs and targets, adapting as it goes; the first `limit` positions only
        where given; the top layer's outputs kept for a cache where `keep_hidden` (else an empty (0, H) tensor).
        The weights are back to the trained ones afterwards."""
        started = time.perf_counter()
        was_training = self.model.training
        self.model.eval()
        steps = [settings.lr / (r + EPSILON) for r in self.rms]
        rates = [(r * (settings.decay / self.mean_rms)).clamp_(max=1.0) if self.mean_rms > 0 else torch.zeros_like(r)
                 for r in self.rms]  # λ·r, capped at 1
        length = inputs.size(0) if limit is None else min(limit, inputs.size(0))
        inputs, targets = inputs[:length].to(device), targets[:length].to(device)
        hidden = self.model.init_hidden(1)
        log_probs, outputs = [], []
        try:
            for row in range(0, length, settings.segment):
                self.model.zero_grad(set_to_none=True)
                with autocast(device, dtype):
                    losses, hidden, (output, _) = self.model(inputs[row: row + settings.segment], hidden,
                                                             targets[row: row + settings.segment], activations=True)
                losses.mean().backward()
                hidden = detach_hidden(hidden, torch.float32)
                log_probs.append(-losses.detach()[:, 0].float())
                if keep_hidden:
                    outputs.append(output.detach()[:, 0].float())
                self.step(steps, rates)
        finally:
            self.model.zero_grad(set_to_none=True)
            self.restore()
            self.model.train(was_training)
        hidden_states = torch.cat(outputs).cpu() if outputs else torch.zeros(0, output.size(-1))
        return Stream(torch.cat(log_probs).cpu(), hidden_states, targets[:, 0].cpu(), time.perf_counter() - started)

    @torch.no_grad()
    def step(self, steps: list[torch.Tensor], rates: list[torch.Tensor]) -> None:
        """θ ← θ + λr ⊙ (θ_trained − θ) − η ∇L / (RMS + ε): the decay from the weights before the step."""
        for parameter, trained, step, rate in zip(self.parameters, self.trained, steps, rates):
            parameter.lerp_(trained, rate)
            if parameter.grad is not None:
                parameter.addcmul_(parameter.grad, step, value=-1.0)

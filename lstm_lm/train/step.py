"""One optimization step on one (T, B) window: forward, loss and regularizers, backward, clip, update.

It holds the optimizer and the fp16 loss scaler and nothing of the run around it (no run directory, no reporter,
no schedule), so that a benchmark or a test builds it from a model and a config alone:

    step = standalone_step(config, vocab_size, device)  # or OptimizationStep(model, config.train, device)
    hidden = step.model.init_hidden(config.train.batch_size)
    hidden, numbers = step(inputs, targets, hidden, lr=config.train.lr)
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..config import Config, TrainConfig
from ..hardware.precision import autocast, resolve_precision
from ..model.language_model import Hidden, LanguageModel, detach_hidden
from ..model.memory import allocate_model
from ..model.regularization import activation_penalty
from .averaging import WeightAverage


def build_optimizer(parameters: list[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adamw":
        # fused: one pass over the weights; on the CPU 4.5x faster than foreach, which goes tensor by tensor there
        return torch.optim.AdamW(
            parameters, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    return torch.optim.SGD(  # nt_asgd too: the averaging is the trainer's (WeightAverage)
        parameters, lr=config.lr, weight_decay=config.weight_decay, foreach=True)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


StepNumbers = tuple[torch.Tensor, torch.Tensor]  # (mean loss, pre-clip gradient norm), 0-d, on the device


def alone(bad: torch.Tensor) -> bool:
    """A single process's answer to "was any rank's step bad?": its own."""
    return bool(bad)


class OptimizationStep:
    """Trains `model` one window at a time. `network` is what runs the forward pass: the model itself, or its
    DistributedDataParallel wrapper, which averages the gradients over ranks during backward."""

    def __init__(self, model: LanguageModel, train: TrainConfig, device: torch.device,
                 network: torch.nn.Module | None = None):
        self.model, self.train, self.network = model, train, network or model
        self.parameters = list(model.parameters())
        self.state_dtype = model.embedding.weight.dtype  # the carried hidden state's: the weights' (fp32)
        self.dtype = resolve_precision(train.precision, device)
        self.device = device
        self.optimizer = build_optimizer(self.parameters, train)
        # Loss scaling keeps small fp16 gradients from flushing to zero; bf16 has fp32's range and needs none.
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype is torch.float16)
        # Plain SGD clips by shortening its step instead of scaling the gradients first: the same update with one
        # pass over all the gradients fewer (4 of 12 ms for clipping and updating PTB medium's 20M weights).
        self.clips_by_step_size = (train.optimizer != "adamw" and train.weight_decay == 0
                                   and not self.scaler.is_enabled())

    def __call__(self, inputs: torch.Tensor, targets: torch.Tensor, hidden: Hidden, lr: float,
                 average: WeightAverage | None = None,
                 agree: Callable[[torch.Tensor], bool] = alone) -> tuple[Hidden, StepNumbers | None]:
        """The hidden state after this window, and (mean loss, pre-clip gradient norm) as tensors left on the
        device so that logging does not force a further synchronisation; or None in their place, with the weights
        left as they were, when the loss or the gradient norm is NaN or infinite. `agree` turns this rank's
        verdict into every rank's (see Trainer.agree), so that all ranks skip a bad step or none does."""
        train = self.train
        hidden = detach_hidden(hidden, self.state_dtype)
        regularize = bool(train.ar_alpha or train.tar_beta)
        with autocast(self.device, self.dtype):
            outputs = self.network(inputs, hidden, targets, activations=regularize)
        losses, hidden = outputs[0], outputs[1]  # (T, B), fp32
        mean_loss = losses.mean()
        objective = losses.sum(0).mean() if train.loss_reduction == "time_sum" else mean_loss
        if regularize:
            objective = objective + activation_penalty(*outputs[2], train.ar_alpha, train.tar_beta)
        # With variable BPTT a longer window takes a larger step, as its mean loss averages over more tokens (a
        # time_sum loss grows with the window already).
        scaled = train.variable_bptt and train.loss_reduction == "mean"
        lr = lr * (inputs.size(0) / train.bptt if scaled else 1.0)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(objective).backward()
        self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
        grad_norm, clip = self.gradient_norm()
        # Under fp16 loss scaling an infinite gradient is the scaler's business (it skips the step and lowers the
        # scale), not a bad step.
        bad = ~torch.isfinite(mean_loss)
        if not self.scaler.is_enabled():
            bad |= ~torch.isfinite(grad_norm)
        if agree(bad):
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.update()
            return hidden, None
        if self.clips_by_step_size:  # as clip_grad_norm_ would; the norm is on the host's side of the sync now
            lr *= min(1.0, clip / (grad_norm.item() + 1e-6))
        set_lr(self.optimizer, lr)
        scale = self.scaler.get_scale() if self.scaler.is_enabled() and average is not None else 0.0
        self.scaler.step(self.optimizer)  # skips the step if fp16 gradients overflowed
        self.scaler.update()  # and then lowers the scale
        if average is not None and not (scale and self.scaler.get_scale() < scale):
            average.update()
        return hidden, (mean_loss.detach(), grad_norm.detach())

    def gradient_norm(self) -> tuple[torch.Tensor, float]:
        """The pre-clip norm of all gradients, clipping them to train.clip unless the step size is cut instead;
        and the clip threshold (infinite when train.clip is 0)."""
        clip = self.train.clip or math.inf
        if self.clips_by_step_size:
            return torch.nn.utils.get_total_norm([p.grad for p in self.parameters if p.grad is not None],
                                                 foreach=True), clip
        return torch.nn.utils.clip_grad_norm_(self.parameters, clip, foreach=True), clip


def standalone_step(config: Config, vocab_size: int, device: torch.device) -> OptimizationStep:
    """A step with a model of its own, initialised from train.seed as a training run's is."""
    torch.manual_seed(config.train.seed)
    return OptimizationStep(allocate_model(config.model, vocab_size, device, config.train.optimizer), config.train,
                            device)
